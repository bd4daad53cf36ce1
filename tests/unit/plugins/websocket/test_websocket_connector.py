from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

import pytest

from connector.plugins.websocket import (
    WebSocketSourceConfig,
    WebSocketSourceConnector,
    WebSocketSourceTask,
)
from connector.plugins.websocket.connector import split_urls
from connector.testing import MemoryOffsetReader

URLS = [f"wss://feed.example.com/{n}" for n in range(5)]


class Ctx:
    """A minimal ConnectorContext."""

    def __init__(self, config: WebSocketSourceConfig) -> None:
        self.config = config
        self.connector_name = "ws"
        self.logger = logging.LoggerAdapter(logging.getLogger("test"), {})
        self.offset_reader = MemoryOffsetReader("ws")

    def set_status_detail(self, name: str, value: Any) -> None:
        pass


def started(values: dict[str, Any]) -> WebSocketSourceConnector:
    connector = WebSocketSourceConnector()
    connector.start(Ctx(WebSocketSourceConfig.model_validate({"topic": "t", **values})))
    return connector


def test_one_task_per_url_up_to_max_tasks() -> None:
    configs = started({"websocket.urls": URLS}).task_configs(10)
    assert configs == [{"urls": [url]} for url in URLS]


def test_urls_are_dealt_round_robin_when_tasks_are_fewer() -> None:
    configs = started({"websocket.urls": URLS}).task_configs(2)
    assert configs == [{"urls": [URLS[0], URLS[2], URLS[4]]}, {"urls": [URLS[1], URLS[3]]}]


def test_a_single_url_makes_a_single_task() -> None:
    assert started({"websocket.url": URLS[0]}).task_configs(4) == [{"urls": [URLS[0]]}]


def test_every_url_is_assigned_exactly_once() -> None:
    for max_tasks in range(1, 8):
        configs = split_urls(URLS, max_tasks)
        assert len(configs) == min(max_tasks, len(URLS))
        assert sorted(url for c in configs for url in c["urls"]) == sorted(URLS)


def test_task_configs_needs_start_and_a_positive_max() -> None:
    with pytest.raises(RuntimeError, match="start"):
        WebSocketSourceConnector().task_configs(1)
    with pytest.raises(ValueError, match="max_tasks"):
        split_urls(URLS, 0)


def test_the_connector_declares_its_spec_and_task() -> None:
    assert WebSocketSourceConnector.spec.name == "websocket"
    assert WebSocketSourceConnector.task_class is WebSocketSourceTask
    assert (
        WebSocketSourceConnector().validate(
            WebSocketSourceConfig.model_validate({"topic": "t", "websocket.url": URLS[0]})
        )
        == []
    )


def test_the_entry_point_loads_the_connector() -> None:
    found = {ep.name: ep for ep in entry_points(group="connector.plugins")}
    assert "websocket" in found, "the package is not installed: pip install -e ."
    assert found["websocket"].load() is WebSocketSourceConnector
