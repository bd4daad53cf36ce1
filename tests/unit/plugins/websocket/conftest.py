"""Fixtures for the websocket plugin tests: a local WebSocket server and task factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connector.plugins.websocket import WebSocketSourceConfig, WebSocketSourceTask
from connector.testing import FakeTaskContext, MemoryOffsetReader
from connector.ws.testing import LocalWebSocketServer

StartTask = Callable[..., tuple[WebSocketSourceTask, FakeTaskContext]]


@pytest.fixture
def server() -> Iterator[LocalWebSocketServer]:
    with LocalWebSocketServer() as srv:
        yield srv


@pytest.fixture
def start_task() -> Iterator[StartTask]:
    """Start a task from dotted config keys; every started task is stopped afterwards."""
    started: list[WebSocketSourceTask] = []

    def start(
        config: dict[str, Any],
        *,
        task_config: dict[str, Any] | None = None,
        offsets: MemoryOffsetReader | None = None,
    ) -> tuple[WebSocketSourceTask, FakeTaskContext]:
        values = {"reconnect.backoff.initial.ms": 10, "reconnect.backoff.max.ms": 50, **config}
        ctx = FakeTaskContext(
            connector_name="ws-test",
            config=WebSocketSourceConfig.model_validate(values),
            task_config=task_config or {},
            offset_reader=offsets,
        )
        task = WebSocketSourceTask()
        started.append(task)
        task.start(ctx)
        return task, ctx

    yield start
    for task in started:
        task.stop()
