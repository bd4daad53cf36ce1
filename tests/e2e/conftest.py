"""Fixtures of the end-to-end tests: per-test names, simulators, workers, processes, Kafka views.

Every test gets a unique prefix (``e2e-<hex>``) used for all of its Kafka topics (data topics via
``topic.routing``, gaps, dead letters, offsets), so tests never see each other's records.
Everything a test starts is stopped at teardown, even when the test fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from e2e_helpers import ConnectorProcess, InProcessWorker, KafkaView

from connector.simulator import ClientConfig, GenesysSimulator, SimulatorConfig


@pytest.fixture
def prefix(admin: AdminClient) -> Iterator[str]:
    """A unique Kafka topic prefix for this test; its topics are deleted afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        doomed = [t for t in admin.list_topics(timeout=10).topics if t.startswith(name)]
        if doomed:
            admin.delete_topics(doomed)  # best effort, not awaited
    except Exception:  # pragma: no cover - cleanup only
        pass


@pytest.fixture
def simulator() -> Iterator[Callable[..., GenesysSimulator]]:
    """Start simulators with scaled time constants; every one is stopped at teardown.

    Live mode: event timestamps track the wall clock, as Genesys stamps them.
    """
    started: list[GenesysSimulator] = []

    def start(**overrides: Any) -> GenesysSimulator:
        settings: dict[str, Any] = {
            "port": 0,
            "rate": 20,
            "heartbeat_interval_s": 0.3,
            "socket_closing_lead_s": 1.0,
            "clients": [ClientConfig("demo-client", "demo-secret")],
        }
        settings.update(overrides)
        sim = GenesysSimulator(SimulatorConfig(**settings))
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def worker() -> Iterator[Callable[..., InProcessWorker]]:
    """Start the real Worker in-process on a deployment file; stopped at teardown."""
    started: list[InProcessWorker] = []

    def start(path: Path, clock: Callable[[], float] | None = None) -> InProcessWorker:
        running = InProcessWorker(path, clock)
        started.append(running)
        return running.start()

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Callable[[Path], ConnectorProcess]]:
    """Start ``python -m connector run FILE`` subprocesses; killed at teardown if still alive."""
    started: list[ConnectorProcess] = []

    def start(path: Path) -> ConnectorProcess:
        proc = ConnectorProcess(path, tmp_path / "connector.log").start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.ensure_stopped()


@pytest.fixture
def kafka_view(
    kafka_bootstrap: str, schema_registry_url: str, prefix: str
) -> Iterator[Callable[..., KafkaView]]:
    """A :class:`KafkaView` of this test's topics (offsets topic excluded; DLQs raw)."""
    views: list[KafkaView] = []

    def make(raw_topics: tuple[str, ...] = ()) -> KafkaView:
        view = KafkaView(
            kafka_bootstrap,
            schema_registry_url,
            prefix,
            raw_topics=raw_topics,
            exclude=(f"{prefix}.offsets",),
        )
        views.append(view)
        return view

    yield make
    for view in views:
        view.close()
