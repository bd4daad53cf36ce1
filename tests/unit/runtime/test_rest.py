"""The read-only Connect-style REST API: paths, shapes, and no secrets in what it returns."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connector.runtime.metrics import WorkerMetrics
from connector.runtime.rest import RestServer


class _PluginConfig(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    client_id: str = Field(alias="genesys.client.id")
    client_secret: SecretStr = Field(alias="genesys.client.secret")


@dataclass
class _Envelope:
    plugin: str = "genesys_notifications"
    tasks_max: int = 2


@dataclass
class _Deployed:
    name: str
    plugin_config: BaseModel
    connector_config: _Envelope = field(default_factory=_Envelope)


@dataclass
class _Deployment:
    connectors: list[_Deployed]


class _FakeWorker:
    def __init__(self) -> None:
        config = _PluginConfig.model_validate(
            {"genesys.client.id": "client-1", "genesys.client.secret": "s3cr3t-value"}
        )
        self.deployment = _Deployment([_Deployed("prod", config)])
        self.metrics = WorkerMetrics()
        self.metrics.records_polled.labels(connector="prod", task="0").inc(3)

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "prod",
                "connector": {"state": "RUNNING", "worker_id": "local"},
                "tasks": [
                    {"id": 0, "state": "RUNNING", "worker_id": "local", "restarts": 0},
                    {"id": 1, "state": "FAILED", "trace": "boom", "restarts": 3},
                ],
                "type": "source",
            }
        ]


@pytest.fixture
def base_url() -> Iterator[str]:
    server = RestServer(_FakeWorker(), "127.0.0.1", 0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_lists_connectors_and_their_status(base_url: str) -> None:
    status, body = _get(f"{base_url}/connectors")
    assert (status, json.loads(body)) == (200, ["prod"])
    status, body = _get(f"{base_url}/connectors/prod/status")
    assert status == 200
    payload = json.loads(body)
    assert payload["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in payload["tasks"]] == ["RUNNING", "FAILED"]
    assert payload["tasks"][1]["trace"] == "boom"


def test_unknown_connector_is_a_404_in_connect_shape(base_url: str) -> None:
    status, body = _get(f"{base_url}/connectors/nope/status")
    assert status == 404
    assert json.loads(body)["error_code"] == 404


def test_config_never_returns_the_secret(base_url: str) -> None:
    status, body = _get(f"{base_url}/connectors/prod/config")
    assert status == 200
    config = json.loads(body)
    assert config["genesys.client.id"] == "client-1"
    assert config["tasks.max"] == "2"
    assert b"s3cr3t-value" not in body
    _, described = _get(f"{base_url}/connectors/prod")
    assert b"s3cr3t-value" not in described
    assert json.loads(described)["tasks"] == [
        {"connector": "prod", "task": 0},
        {"connector": "prod", "task": 1},
    ]


def test_metrics_are_in_prometheus_text_format(base_url: str) -> None:
    status, body = _get(f"{base_url}/metrics")
    assert status == 200
    assert b"# TYPE connector_source_record_poll_total counter" in body
    assert b'connector_source_record_poll_total{connector="prod",task="0"} 3.0' in body
