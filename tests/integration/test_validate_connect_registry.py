"""``connector validate --connect`` finds the schemas the converter will need at run time.

With ``auto.register.schemas=false`` the converter only looks schemas up, and with
``use.latest.version`` it writes with the subject's latest version: a deployment whose subjects
do not hold them must fail validation (exit 2, subject named) against the real registry, and pass
once the schemas are registered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from kafka_helpers import unique

from connector.api import AvroSchema
from connector.config.validate import load_deployment
from connector.simulator import GenesysSimulator, SimulatorConfig

pytestmark = pytest.mark.integration

VALIDATE_TIMEOUT_S = 120


@pytest.fixture
def sim() -> Iterator[GenesysSimulator]:
    """The Genesys simulator, for the plugin's own online check (token and catalogue)."""
    simulator = GenesysSimulator(SimulatorConfig(port=0, rate=0)).start()
    yield simulator
    simulator.stop()


def _deployment(
    path: Path, sim: GenesysSimulator, bootstrap: str, registry: str, **converter: Any
) -> Path:
    prefix = unique("validate")
    document = {
        "worker": {
            "bootstrap.servers": bootstrap,
            "schema.registry.url": registry,
            "offset.storage.topic": f"{prefix}.offsets",
        },
        "connectors": [
            {
                "name": "lookup",
                "plugin": "genesys_notifications",
                "value.converter": "avro",
                **{f"value.converter.{key}": value for key, value in converter.items()},
                "genesys.login.url": sim.base_url,
                "genesys.api.url": sim.base_url,
                "genesys.client.id": "demo-client",
                "genesys.client.secret": "demo-secret",
                "genesys.subscriptions": [
                    {"template": ["queue.conversations"], "ids": [sim.queue_ids[0]]}
                ],
                "topic.routing": f"{prefix}.{{family}}",
                "gaps.topic": f"{prefix}.gaps",
            }
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _subjects(path: Path) -> dict[str, AvroSchema]:
    """Subject (TopicNameStrategy) -> the value schema the connector writes there."""
    connector = load_deployment([path]).connectors[0]
    schemas = connector.connector_class().value_schemas(connector.plugin_config, connector.name)
    return {f"{topic}-value": schema for topic, schema in schemas.items()}


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", "validate", "--connect", str(path)],
        capture_output=True,
        text=True,
        timeout=VALIDATE_TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def registry(schema_registry_url: str) -> Iterator[tuple[SchemaRegistryClient, list[str]]]:
    """A client, and a list of subjects the test registers (deleted afterwards)."""
    client = SchemaRegistryClient({"url": schema_registry_url})
    registered: list[str] = []
    yield client, registered
    for subject in registered:
        try:
            client.delete_subject(subject)
            client.delete_subject(subject, permanent=True)
        except Exception:  # pragma: no cover - cleanup only
            pass


@pytest.mark.parametrize(
    ("converter", "reason"),
    [
        ({"auto.register.schemas": False}, "is not registered under subject {subject}"),
        (
            {"auto.register.schemas": False, "use.latest.version": True},
            "subject {subject} has no registered version",
        ),
    ],
    ids=["lookup", "use-latest"],
)
def test_unregistered_schemas_fail_until_registered(
    sim: GenesysSimulator,
    kafka_bootstrap: str,
    schema_registry_url: str,
    registry: tuple[SchemaRegistryClient, list[str]],
    tmp_path: Path,
    converter: dict[str, Any],
    reason: str,
) -> None:
    path = _deployment(
        tmp_path / "lookup.yaml", sim, kafka_bootstrap, schema_registry_url, **converter
    )
    subjects = _subjects(path)
    assert len(subjects) >= 2  # the routed family and the gaps topic at least

    before = _validate(path)
    assert before.returncode == 2, before.stdout + before.stderr
    for subject in subjects:
        assert reason.format(subject=subject) in before.stderr, before.stderr
    assert "valid:" not in before.stdout

    client, registered = registry
    for subject, schema in subjects.items():
        client.register_schema(subject, Schema(json.dumps(schema.definition), "AVRO"))
        registered.append(subject)

    after = _validate(path)
    assert after.returncode == 0, after.stderr
    assert after.stdout == "valid: 1 connector(s) (lookup)\n"
    assert "subject" not in after.stderr, after.stderr


def test_a_different_registered_schema_is_not_the_one_looked_up(
    sim: GenesysSimulator,
    kafka_bootstrap: str,
    schema_registry_url: str,
    registry: tuple[SchemaRegistryClient, list[str]],
    tmp_path: Path,
) -> None:
    """A subject that exists but holds another schema still fails the lookup, naming it."""
    path = _deployment(
        tmp_path / "other.yaml",
        sim,
        kafka_bootstrap,
        schema_registry_url,
        **{"auto.register.schemas": False},
    )
    subjects = _subjects(path)
    client, registered = registry
    (subject, schema), *rest = subjects.items()
    other = {
        "type": "record",
        "name": "Other",
        "namespace": "connector.test",
        "fields": [{"name": "id", "type": "string"}],
    }
    client.register_schema(subject, Schema(json.dumps(other), "AVRO"))
    registered.append(subject)
    for name, each in rest:
        client.register_schema(name, Schema(json.dumps(each.definition), "AVRO"))
        registered.append(name)

    result = _validate(path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"schema {schema.name} is not registered under subject {subject}" in result.stderr
    assert all(name not in result.stderr for name, _ in rest), result.stderr
