"""The worker's supervision on a manual clock: restart backoff that grows while a task keeps
failing and starts over once the task has run healthily, and a connector status that shows
FAILED, with a reason, while every task is down.

Kafka is replaced by fakes (the admin client, offset store, producer and task runner the worker
module builds), so only the supervisor runs: the runners are scripted by the test.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from connector.config.validate import load_deployment
from connector.runtime import worker as worker_module
from connector.runtime.status import State, TaskStatus
from connector.runtime.worker import Worker
from connector.testing import ManualClock


class ScriptedRunner:
    """Stands in for SourceTaskRunner: started by the worker, run and failed by the test."""

    made: list[ScriptedRunner] = []

    def __init__(self, **kwargs: Any) -> None:
        found = [v for v in kwargs.values() if isinstance(v, TaskStatus)]
        found += [
            v.status for v in kwargs.values() if isinstance(getattr(v, "status", 0), TaskStatus)
        ]
        self.status: TaskStatus = found[0]
        self.alive = False
        self.thread = SimpleNamespace(name=f"scripted-{len(self.made)}")
        self.made.append(self)

    def start(self) -> None:
        self.alive = True  # like the real runner: RUNNING only once the task has started

    def run(self) -> None:
        self.status.set(State.RUNNING)

    def fail(self, message: str) -> None:
        trace = (
            'Traceback (most recent call last):\n  File "task.py", line 1, in poll\n'
            f"connector.api.TaskFailedError: {message}\n"
        )
        self.alive = False
        self.status.set(State.FAILED, trace)

    @property
    def is_alive(self) -> bool:
        return self.alive

    def request_stop(self) -> None:
        if self.alive:
            self.alive = False
            self.status.set(State.STOPPED)

    def join(self, timeout_s: float) -> bool:
        return True


class _Closable:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closed = False

    def start(self, admin: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    ScriptedRunner.made = []
    monkeypatch.setattr(worker_module, "AdminClient", lambda conf: object())
    monkeypatch.setattr(worker_module, "KafkaOffsetStore", _Closable)
    monkeypatch.setattr(worker_module, "DataProducer", _Closable)
    monkeypatch.setattr(worker_module, "SourceTaskRunner", ScriptedRunner)
    yield
    gc.unfreeze()  # in case a test failed before stopping its worker


def _worker(tmp_path: Path, clock: ManualClock, tasks: int = 1, **worker: Any) -> Worker:
    document = {
        "worker": {
            "bootstrap.servers": "127.0.0.1:9",
            "schema.registry.url": "http://127.0.0.1:9",
            **worker,
        },
        "connectors": [
            {
                "name": "orders",
                "plugin": "datagen",
                "tasks.max": tasks,
                "datagen.topic": "orders",
                "datagen.partitions": tasks,
            }
        ],
    }
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(document))
    started = Worker(load_deployment([path], environ={}), clock=clock)
    started.start()
    return started


def _task(worker: Worker, task_id: int = 0) -> dict[str, Any]:
    task: dict[str, Any] = worker.status()[0]["tasks"][task_id]
    return task


def _connector(worker: Worker) -> dict[str, Any]:
    connector: dict[str, Any] = worker.status()[0]["connector"]
    return connector


def _fail_and_restart(worker: Worker, clock: ManualClock, runner: ScriptedRunner) -> float:
    """Fail ``runner``; return the restart delay the supervisor chose, after waiting it out
    (the restarted runner is then the newest one, not yet running)."""
    runner.fail("boom")
    worker.supervise_once()
    task = _task(worker)
    assert task["state"] == "FAILED"
    delay = float(task["details"]["restart_in_s"])  # rounded to 0.1 s
    clock.advance(delay + 0.051)
    worker.supervise_once()
    assert ScriptedRunner.made[-1] is not runner, "restarted once the delay is over"
    return delay


def test_restart_backoff_grows_while_failing_and_starts_over_after_a_healthy_run(
    tmp_path: Path, fake_kafka: None
) -> None:
    clock = ManualClock(100.0)
    worker = _worker(
        tmp_path,
        clock,
        **{"task.restart.backoff.initial.ms": 1000, "task.restart.backoff.max.ms": 8000},
    )
    try:
        delays = []
        for _ in range(5):  # fails right after every start: 1, 2, 4, 8, 8 s (20 % jitter)
            ScriptedRunner.made[-1].run()
            worker.supervise_once()
            delays.append(_fail_and_restart(worker, clock, ScriptedRunner.made[-1]))
        for delay, base in zip(delays, (1, 2, 4, 8, 8), strict=True):
            assert base * 0.8 - 0.05 <= delay <= min(8.0, base * 1.2) + 0.05, delays

        # runs, but shorter than task.restart.backoff.max.ms: still a crash loop, capped delay
        ScriptedRunner.made[-1].run()
        worker.supervise_once()
        clock.advance(7.9)
        worker.supervise_once()
        assert _fail_and_restart(worker, clock, ScriptedRunner.made[-1]) >= 6.4 - 0.05

        # runs for task.restart.backoff.max.ms: healthy again, the next failure starts over
        ScriptedRunner.made[-1].run()
        worker.supervise_once()
        clock.advance(8.0)
        worker.supervise_once()
        assert _task(worker)["state"] == "RUNNING"
        assert _fail_and_restart(worker, clock, ScriptedRunner.made[-1]) <= 1.2 + 0.05
        assert _task(worker)["restarts"] == 7
    finally:
        worker.stop()
    assert gc.get_freeze_count() == 0, "a stopped worker leaves nothing frozen"


def test_the_connector_is_failed_with_a_reason_while_every_task_is_down(
    tmp_path: Path, fake_kafka: None
) -> None:
    clock = ManualClock()
    worker = _worker(
        tmp_path,
        clock,
        tasks=2,
        **{"task.restart.backoff.initial.ms": 1000, "task.restart.backoff.max.ms": 1000},
    )
    try:
        first, second = ScriptedRunner.made
        assert _connector(worker) == {"state": "RUNNING", "worker_id": "local"}  # starting
        first.run()
        second.run()
        worker.supervise_once()
        first.fail("registry refused subject orders-value")
        worker.supervise_once()
        assert _connector(worker)["state"] == "RUNNING", "one task of two still runs"

        second.fail("out of luck")
        worker.supervise_once()
        connector = _connector(worker)
        assert connector["state"] == "FAILED"
        assert connector["trace"].splitlines() == [
            "every task of connector orders is failing:",
            "task 0 (FAILED, 0 restarts): "
            "connector.api.TaskFailedError: registry refused subject orders-value",
            "task 1 (FAILED, 0 restarts): connector.api.TaskFailedError: out of luck",
        ]

        clock.advance(1.0)
        worker.supervise_once()  # both restarted: RESTARTING, with their failure's trace
        tasks = worker.status()[0]["tasks"]
        assert [t["state"] for t in tasks] == ["RESTARTING", "RESTARTING"]
        assert "out of luck" in tasks[1]["trace"]
        assert _connector(worker)["state"] == "FAILED"
        assert "task 1 (RESTARTING, 1 restarts)" in _connector(worker)["trace"]

        ScriptedRunner.made[-2].run()  # task 0 runs again
        assert _connector(worker) == {"state": "RUNNING", "worker_id": "local"}
        assert "trace" not in _task(worker, 0)
    finally:
        worker.stop()
    assert _connector(worker)["state"] == "STOPPED"


def test_a_task_out_of_restarts_keeps_the_connector_failed(
    tmp_path: Path, fake_kafka: None
) -> None:
    clock = ManualClock()
    worker = _worker(tmp_path, clock, **{"task.restart.max.retries": 1})
    try:
        _fail_and_restart(worker, clock, ScriptedRunner.made[-1])
        ScriptedRunner.made[-1].fail("again")
        for _ in range(3):
            clock.advance(120.0)
            worker.supervise_once()
        assert len(ScriptedRunner.made) == 2, "no restart beyond task.restart.max.retries"
        assert _task(worker)["state"] == "FAILED"
        connector = _connector(worker)
        assert connector["state"] == "FAILED"
        assert (
            "task 0 (FAILED, 1 restarts): connector.api.TaskFailedError: again"
            in connector["trace"]
        )
    finally:
        worker.stop()
