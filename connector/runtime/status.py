"""Status snapshots of connectors and tasks, read by the CLI, REST API and metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """Kafka Connect's state names."""

    UNASSIGNED = "UNASSIGNED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RESTARTING = "RESTARTING"
    FAILED = "FAILED"
    STOPPED = "STOPPED"


@dataclass
class TaskStatus:
    """Mutable status of one task, updated by its runner and read by anyone (under its lock)."""

    connector: str
    task_id: int
    state: State = State.UNASSIGNED
    trace: str | None = None
    restarts: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, state: State, trace: str | None = None) -> None:
        with self._lock:
            self.state = state
            self.trace = trace

    def detail(self, name: str, value: Any) -> None:
        with self._lock:
            self.details[name] = value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            result: dict[str, Any] = {"id": self.task_id, "state": self.state.value}
            if self.trace:
                result["trace"] = self.trace
            result["restarts"] = self.restarts
            if self.details:
                result["details"] = dict(self.details)
            return result
