"""Pause and resume through the REST API with the Genesys connector on the simulator: while
paused nothing is polled, the receiver fills its small buffer and then holds the socket
(backpressure, no liveness reconnect), and after resume every event the simulator sent is in
Kafka exactly once, with no gap reported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from e2e_helpers import (
    InProcessWorker,
    KafkaView,
    all_topics,
    genesys_block,
    quiesce,
    sent_events,
    wait_until,
    write_deployment,
)

from connector.runtime.rest import RestServer
from connector.simulator import GenesysSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _polled(running: InProcessWorker) -> float:
    value = running.worker.metrics.registry.get_sample_value(
        "kafka_connect_source_task_source_record_poll_total",
        {"connector": "paused", "task": "0"},
    )
    return value or 0.0


def test_a_paused_genesys_task_holds_its_socket_and_loses_nothing(
    simulator: Callable[..., GenesysSimulator],
    worker: Callable[..., InProcessWorker],
    kafka_view: Callable[..., KafkaView],
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    sim = simulator(rate=100)
    topics = all_topics(sim)
    block = genesys_block("paused", sim, prefix, topics=topics, **{"buffer.capacity": 20})
    path = write_deployment(
        tmp_path / "paused.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[block],
    )
    running = worker(path)
    rest = RestServer(running.worker, "127.0.0.1", 0)
    rest.start()
    view = kafka_view()
    try:
        wait_until(lambda: running.all_connected("paused", 1), 20, "the channel to connect")
        wait_until(lambda: _polled(running) > 20, 20, "events flowing")
        assert requests.put(f"{rest.url}/connectors/paused/pause", timeout=10).status_code == 202
        wait_until(
            lambda: [t["state"] for t in running.status("paused")["tasks"]] == ["PAUSED"],
            10,
            "the task paused",
        )
        paused_at = _polled(running)

        # the simulator keeps sending: more than the 20-frame buffer holds, so the rest waits
        # in the socket (backpressure) while the receiver keeps the connection alive
        sent_while_paused = len(sent_events(sim, topics))
        wait_until(
            lambda: (
                len(sent_events(sim, topics)) > sent_while_paused + 300
            ),  # 3 s: twice liveness.timeout.ms
            20,
            "the simulator to keep sending while paused",
        )
        assert _polled(running) == paused_at, "a paused task was polled"
        assert running.all_connected("paused", 1), "the socket was dropped while paused"
        assert requests.put(f"{rest.url}/connectors/paused/resume", timeout=10).status_code == 202
        wait_until(lambda: _polled(running) > paused_at, 10, "polling again")
        quiesce(sim)
        sent = sent_events(sim, topics)
        wait_until(
            lambda: view.sync() is not None and set(sent) <= set(view.correlation_ids()),
            40,
            "every event sent during the pause in Kafka",
        )
        assert view.correlation_ids() == sent  # exactly once
        gaps = view.on(f"{prefix}.paused.gaps")
        assert {g.value["reason"] for g in gaps} == {"coverage_start"}, "no loss to report"
    finally:
        rest.stop()
