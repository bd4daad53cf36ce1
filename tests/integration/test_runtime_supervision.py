"""Supervision against the real broker and registry: a task restarted 50 times leaks neither
runners nor memory, and a task that fails at every start (an incompatible schema) shows in the
connector's status, restarted with bounded backoff."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import json
import logging
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from kafka_helpers import datagen, load, running_worker, task_status, wait_until, write_deployment

from connector.api import Polled, TaskContext
from connector.config.validate import Deployment
from connector.plugins.datagen.connector import DatagenSourceConnector, DatagenSourceTask
from connector.runtime.task_runner import SourceTaskRunner
from connector.runtime.worker import Worker

pytestmark = pytest.mark.integration

Names = Callable[[str], str]
STATE_BYTES = 1 << 20


class ShortLivedTask(DatagenSourceTask):
    """Datagen that holds 1 MB of state (as a real task holds buffers and parsed schemas) and
    fails 50 ms after it started."""

    def start(self, ctx: TaskContext) -> None:
        super().start(ctx)
        self._state = b"x" * STATE_BYTES  # touched pages: counted in the RSS
        self._fail_at = time.monotonic() + 0.05

    def poll(self, timeout_s: float) -> list[Polled]:
        if time.monotonic() >= self._fail_at:
            raise RuntimeError("scripted failure after start")
        return super().poll(min(timeout_s, 0.01))


class ShortLivedConnector(DatagenSourceConnector):
    task_class = ShortLivedTask


def _with_connector_class(deployment: Deployment, connector_class: type) -> Deployment:
    connectors = tuple(
        dataclasses.replace(c, connector_class=connector_class) for c in deployment.connectors
    )
    return dataclasses.replace(deployment, connectors=connectors)


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_fifty_task_restarts_leak_neither_runners_nor_memory(
    kafka_bootstrap: str,
    schema_registry_url: str,
    names: Names,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # pytest keeps every log record of a test, and the runner logs its failure with the
    # exception as an argument: the record would hold the traceback, its frames and so the
    # runner. Not a leak of the runtime (no handler of its own buffers records).
    caplog.set_level(logging.CRITICAL, logger="connector.runtime.task_runner")
    topic, offsets = names("short"), names("offsets")
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        task_restart_backoff_initial_ms=1,
        task_restart_backoff_max_ms=5,
        connectors=[datagen("short", topic, datagen_count=20, datagen_records_per_second=200)],
    )
    deployment = _with_connector_class(load(path), ShortLivedConnector)
    seen: list[weakref.ref[SourceTaskRunner]] = []

    def restarts_reach(count: int, worker: Worker) -> Callable[[], bool]:
        def check() -> bool:
            for runner in worker.runners():
                if not any(ref() is runner for ref in seen):
                    seen.append(weakref.ref(runner))
            return bool(task_status(worker, "short")["restarts"] >= count)

        return check

    def live_runners() -> int:
        gc.collect()  # what the collector may free is freed; what was frozen stays
        return sum(ref() is not None for ref in seen)

    def restart_fifty_times() -> tuple[int, int, int, int]:
        """RSS and live runners after 10 and after 50 restarts; the worker is dropped after."""
        with running_worker(deployment) as worker:
            wait_until(restarts_reach(10, worker), 60, "10 restarts", 0.005)
            at_10 = _rss_bytes(), live_runners()
            wait_until(restarts_reach(50, worker), 120, "50 restarts", 0.005)
            at_50 = _rss_bytes(), live_runners()
            assert len(seen) >= 45, "the test must have seen (nearly) every runner"
            trace = wait_until(
                lambda: task_status(worker, "short").get("trace"), 10, "a failure trace", 0.005
            )
            assert "scripted failure after start" in trace
        assert gc.get_freeze_count() == 0, "a stopped worker leaves nothing frozen"
        assert live_runners() == 1, "a stopped worker keeps only its last runner"
        return (*at_10, *at_50)

    rss_at_10, live_at_10, rss_at_50, live_at_50 = restart_fifty_times()
    # the current runner, and the one before it until the next task start collects it
    assert live_at_10 <= 2, f"{live_at_10} of {len(seen)} runners alive after 10 restarts"
    assert live_at_50 <= 2, f"{live_at_50} of {len(seen)} runners alive after 50 restarts"
    growth = rss_at_50 - rss_at_10
    assert growth < 10 * STATE_BYTES, f"RSS grew {growth / 2**20:.1f} MB over 40 restarts"
    assert live_runners() == 0, "no runner outlives its worker"


INCOMPATIBLE = {  # what the subject already holds: seq is a string, created_ms absent
    "type": "record",
    "name": "Event",
    "namespace": "connector.datagen",
    "fields": [
        {"name": "stream", "type": "string"},
        {"name": "seq", "type": "string"},
        {"name": "payload", "type": ["null", "string"], "default": None},
    ],
}


def test_a_task_failing_at_every_start_fails_the_connector_with_the_reason_and_backs_off(
    kafka_bootstrap: str, schema_registry_url: str, names: Names, tmp_path: Path
) -> None:
    topic, offsets = names("orders"), names("offsets")
    subject = f"{topic}-value"
    registry = SchemaRegistryClient({"url": schema_registry_url})
    try:
        registry.register_schema(subject, Schema(json.dumps(INCOMPATIBLE), "AVRO"))
        registry.set_compatibility(subject, "BACKWARD")  # PUT /config/{subject}
        assert registry.get_compatibility(subject) == "BACKWARD"
        path = write_deployment(
            tmp_path,
            bootstrap=kafka_bootstrap,
            registry=schema_registry_url,
            offsets_topic=offsets,
            task_restart_backoff_initial_ms=100,
            task_restart_backoff_max_ms=400,
            connectors=[datagen("orders", topic, datagen_count=100)],
        )
        samples: list[tuple[float, dict[str, Any]]] = []
        with running_worker(load(path)) as worker:
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline or len(samples) < 50:
                samples.append((time.monotonic(), worker.status()[0]))
                time.sleep(0.01)
    finally:
        try:
            registry.delete_subject(subject)
        finally:
            registry.close()

    tasks = [entry["tasks"][0] for _, entry in samples]
    connectors = [entry["connector"] for _, entry in samples]
    # the rule: FAILED while every task is down (FAILED, or restarting after a failure)
    for task, connector in zip(tasks, connectors, strict=True):
        down = task["state"] in ("FAILED", "RESTARTING")
        assert connector["state"] == ("FAILED" if down else "RUNNING"), (task, connector)
    failed = [c for c in connectors if c["state"] == "FAILED"]
    assert len(failed) >= len(connectors) // 2, "a crash loop shows as FAILED most of the time"
    reason = failed[-1]["trace"]
    assert reason.startswith("every task of connector orders is failing:\ntask 0 (")
    assert f"schema registry refused subject {subject}" in reason  # the task's last error
    assert "Incompatible" in reason  # the registry's own words
    assert "\n  File " not in reason, "a short reason, not a traceback"
    last_failure = next(t for t in reversed(tasks) if t["state"] == "FAILED")
    assert "Tolerance exceeded in error handler" in last_failure["trace"]
    assert f"schema registry refused subject {subject}" in last_failure["trace"]

    # bounded backoff: restarts keep coming, never more than the cap (400 ms) apart
    restart_times = [
        at
        for (at, _), prev, task in zip(samples[1:], tasks, tasks[1:], strict=False)
        if task["restarts"] > prev["restarts"]
    ]
    assert tasks[-1]["restarts"] >= 6, f"{tasks[-1]['restarts']} restarts in 5 s"
    gaps = [b - a for a, b in itertools.pairwise(restart_times)]
    assert max(gaps) < 0.4 + 0.5, f"restart gaps {gaps}"  # cap + supervision tick + a run
    delays = {t["details"]["restart_in_s"] for t in tasks if "restart_in_s" in t.get("details", {})}
    assert delays and max(delays) <= 0.4, delays
