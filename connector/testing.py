"""A test kit for plugin authors: drive a SourceTask without Kafka.

>>> clock = ManualClock()
>>> clock.advance(1.5)
>>> clock()
1.5
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from connector.api import (
    MalformedInput,
    Polled,
    SourceOffset,
    SourcePartition,
    SourceRecord,
    SourceTask,
)
from connector.runtime.offset_store import offset_key


class ManualClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class MemoryOffsetReader:
    """An in-memory :class:`~connector.api.OffsetReader` for one connector."""

    def __init__(
        self,
        connector_name: str,
        committed: Mapping[str, tuple[SourcePartition, SourceOffset]] | None = None,
    ) -> None:
        self.connector_name = connector_name
        self._committed: dict[str, tuple[SourcePartition, SourceOffset]] = dict(committed or {})

    def set(self, partition: SourcePartition, offset: SourceOffset) -> None:
        self._committed[offset_key(self.connector_name, partition).decode()] = (partition, offset)

    def offset(self, partition: SourcePartition) -> SourceOffset | None:
        found = self._committed.get(offset_key(self.connector_name, partition).decode())
        return found[1] if found else None

    def offsets(self) -> Mapping[str, tuple[SourcePartition, SourceOffset]]:
        return dict(self._committed)


@dataclass
class FakeTaskContext:
    """A :class:`~connector.api.TaskContext` that records status details and counters."""

    connector_name: str
    config: BaseModel
    task_config: Mapping[str, Any] = field(default_factory=dict)
    task_id: int = 0
    offset_reader: MemoryOffsetReader | None = None
    clock: Any = None
    transaction_context: Any = None
    status: dict[str, Any] = field(default_factory=dict)
    counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.offset_reader is None:
            self.offset_reader = MemoryOffsetReader(self.connector_name)
        if self.clock is None:
            import time

            self.clock = time.monotonic
        self.logger = logging.LoggerAdapter(
            logging.getLogger(f"connector.task.{self.connector_name}"),
            {"connector": self.connector_name, "task": self.task_id},
        )
        self._lock = threading.Lock()

    def set_status_detail(self, name: str, value: Any) -> None:
        with self._lock:
            self.status[name] = value

    def count(self, metric: str, amount: float = 1.0, **labels: str) -> None:
        key = (metric, tuple(sorted(labels.items())))
        with self._lock:
            self.counters[key] = self.counters.get(key, 0.0) + amount

    def gauge(self, metric: str, value: float, **labels: str) -> None:
        with self._lock:
            self.gauges[(metric, tuple(sorted(labels.items())))] = value


def poll_until(
    task: SourceTask, count: int, *, timeout_s: float = 10.0, poll_timeout_s: float = 0.1
) -> list[Polled]:
    """Poll ``task`` until it returned at least ``count`` items (records and malformed input,
    in order) or ``timeout_s`` passed."""
    import time

    deadline = time.monotonic() + timeout_s
    polled: list[Polled] = []
    while len(polled) < count and time.monotonic() < deadline:
        polled.extend(task.poll(poll_timeout_s))
    return polled


def split_polled(polled: list[Polled]) -> tuple[list[SourceRecord], list[MalformedInput]]:
    """Separate what ``poll`` returned into records and malformed input, each in order."""
    records = [item for item in polled if type(item) is SourceRecord]
    malformed = [item for item in polled if type(item) is MalformedInput]
    return records, malformed
