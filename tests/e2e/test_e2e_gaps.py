"""Unplanned losses are never silent, end to end: a hard socket drop (in-process worker) and
process restarts (``python -m connector run`` killed with SIGKILL, then stopped with SIGTERM)
produce gap records whose windows cover every ledger event that did not reach Kafka."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import (
    GAP_SLACK_MS,
    ConnectorProcess,
    InProcessWorker,
    KafkaView,
    Msg,
    all_topics,
    gap_window,
    gap_windows,
    genesys_block,
    ledger_for,
    quiesce,
    read_offsets,
    uncovered,
    wait_until,
    write_deployment,
)

from connector.simulator import GenesysSimulator, LedgerEntry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

Sim = Callable[..., GenesysSimulator]
StartWorker = Callable[..., InProcessWorker]
StartProcess = Callable[[Path], ConnectorProcess]
View = Callable[..., KafkaView]


def gaps_of(view: KafkaView, topic: str, reason: str) -> list:
    return [g for g in view.on(topic) if g.value["reason"] == reason]


def settle(
    view: KafkaView,
    ledger: list[LedgerEntry],
    late: set[str],
    gaps: list[Msg],
    reasons: set[str],
) -> tuple[list[LedgerEntry], list[LedgerEntry], int]:
    """Wait until every event sent after the last reconnect is in Kafka and every other ledger
    event is in Kafka or inside a gap window (records of other partitions may still be on
    their way); return ``(missing, uncovered, max slack ms)`` as last seen."""
    windows = gap_windows(gaps)
    state: dict[str, Any] = {}

    def settled() -> bool:
        view.sync()
        arrived = set(view.correlation_ids())
        state["missing"] = [e for e in ledger if e.correlation_id not in arrived]
        state["bad"], state["slack"] = uncovered(state["missing"], windows, reasons)
        return late <= arrived and not state["bad"]

    try:
        wait_until(settled, 30, "every ledger event in Kafka or inside a gap window")
    except AssertionError:
        pass  # the caller asserts on what was seen, with the details
    return state["missing"], state["bad"], state["slack"]


def test_hard_socket_drop_is_reported_as_a_gap_covering_every_lost_event(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    # flood mode (~1,000 events/s over our topics): the drop happens mid-stream
    sim = simulator(rate=1000, mode="flood")
    topics = all_topics(sim)
    path = write_deployment(
        tmp_path / "drop.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[genesys_block("drop", sim, prefix, topics=topics)],
    )
    running = worker(path)
    view = kafka_view()
    gaps_topic = f"{prefix}.drop.gaps"
    drops: list[float] = []
    for round_ in (1, 2):
        channel_id = wait_until(
            lambda: running.all_connected("drop", 1) and running.channels("drop")[0]["channel_id"],
            20,
            "a connected channel",
        )
        view.sync()
        before = len(view.events())
        wait_until(
            lambda before=before: view.sync() is not None and len(view.events()) >= before + 10,
            30,
            "events before the drop",
        )
        drops.append(time.time() * 1000)
        sim.faults.drop(channel_id)
        wait_until(
            lambda round_=round_: (
                view.sync() is not None
                and len(gaps_of(view, gaps_topic, "disconnect")) >= round_ * len(topics)
            ),
            30,
            f"the gap records of drop {round_}",
        )
    after_ms = max(gap_window(g)[1] for g in gaps_of(view, gaps_topic, "disconnect"))
    before = len(view.events())
    wait_until(
        lambda: view.sync() is not None and len(view.events()) >= before + 10,
        30,
        "events after the reconnect",
    )

    quiesce(sim)
    ledger = ledger_for(sim, topics)
    late = {e.correlation_id for e in ledger if e.sent_ns / 1e6 > after_ms}
    assert late
    gaps = gaps_of(view, gaps_topic, "disconnect")
    assert len(gaps) == 2 * len(topics), "one gap record per topic of the channel and drop"
    missing, bad, slack = settle(view, ledger, late, gaps, {"disconnect"})
    assert bad == [], f"{len(bad)} of {len(missing)} lost events outside every gap window"
    # each drop lies inside the windows reported for it, on every topic
    for drop_ms in drops:
        for topic, windows in gap_windows(gaps).items():
            assert any(
                start is not None and start - GAP_SLACK_MS <= drop_ms <= end
                for start, end, _ in windows
            ), (topic, drop_ms, windows)
    for gap in gaps:
        start, end, _ = gap_window(gap)
        assert start is not None and start <= end
        assert gap.value["channel_id"] and gap.value["connector"] == "drop"
    status = running.status("drop")["tasks"][0]
    assert status["state"] == "RUNNING"
    assert status["details"]["last_gap"]["reason"] == "disconnect"
    print(f"drop: {len(ledger)} ledger events, {len(missing)} lost, max slack {slack} ms")


def test_process_restarts_report_gaps_covering_every_lost_event(
    simulator: Sim,
    process: StartProcess,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    # flood mode: ~800 events/s spread over our topics, so a SIGKILL catches events in flight
    sim = simulator(rate=800, mode="flood")
    topics = all_topics(sim)
    name = "restart"
    path = write_deployment(
        tmp_path / "restart.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[genesys_block(name, sim, prefix, topics=topics)],
    )
    view = kafka_view()
    gaps_topic = f"{prefix}.{name}.gaps"
    offsets_topic = f"{prefix}.offsets"

    def connected() -> bool:
        return any(c["connected"] for c in sim.channels())

    def all_committed() -> bool:
        return len(read_offsets(kafka_bootstrap, offsets_topic)) == len(topics)

    first = process(path)
    try:
        wait_until(connected, 30, "the first process to connect")
        wait_until(
            lambda: view.sync() is not None and len(view.events()) >= 500, 30, "first events"
        )
        wait_until(all_committed, 30, "an offset committed for every topic")
    except AssertionError:
        print(first.log_tail())
        raise
    assert first.kill() == -signal.SIGKILL
    killed_ms = time.time() * 1000  # the process is gone (waited for)
    wait_until(lambda: not connected(), 10, "the simulator to see the socket go")

    second = process(path)
    wait_until(
        lambda: (
            view.sync() is not None and len(gaps_of(view, gaps_topic, "restart")) >= len(topics)
        ),
        40,
        "restart gaps after SIGKILL",
    )
    count = len(view.events())
    wait_until(
        lambda: view.sync() is not None and len(view.events()) >= count + 500,
        30,
        "events after the restart",
    )
    # SIGTERM is graceful: the process keeps receiving until it stops, so its gap starts
    # after the signal, and before the exit
    assert second.terminate() == 0, second.log_tail()
    terminated_ms = time.time() * 1000
    wait_until(lambda: not connected(), 10, "the simulator to see the socket go")

    third = process(path)
    wait_until(
        lambda: (
            view.sync() is not None and len(gaps_of(view, gaps_topic, "restart")) >= 2 * len(topics)
        ),
        40,
        "restart gaps after SIGTERM",
    )
    restarted_ms = max(gap_window(g)[1] for g in gaps_of(view, gaps_topic, "restart"))
    count = len(view.events())
    wait_until(
        lambda: view.sync() is not None and len(view.events()) >= count + 200,
        30,
        "events after the second restart",
    )
    quiesce(sim)
    ledger = ledger_for(sim, topics)
    late = {e.correlation_id for e in ledger if e.sent_ns / 1e6 > restarted_ms}
    assert late
    restarts = gaps_of(view, gaps_topic, "restart")
    assert len(restarts) == 2 * len(topics), "one restart gap per topic and restart"
    assert len(gaps_of(view, gaps_topic, "coverage_start")) == len(topics), "first start only"
    missing, bad, slack = settle(view, ledger, late, restarts, {"restart"})
    assert third.terminate() == 0, third.log_tail()
    assert bad == [], f"{len(bad)} of {len(missing)} lost events outside every restart gap"
    # each process exit lies inside one restart window of every topic
    for stopped_ms in (killed_ms, terminated_ms):
        for topic, windows in gap_windows(restarts).items():
            assert any(
                start is not None and start <= stopped_ms <= end for start, end, _ in windows
            ), (topic, stopped_ms, windows)
    first_restart_ms = min(gap_window(g)[1] for g in restarts)
    after_kill = sum(1 for e in missing if e.sent_ns / 1e6 <= first_restart_ms)
    print(
        f"restart: {len(ledger)} ledger events, {len(missing)} lost ({after_kill} at SIGKILL, "
        f"{len(missing) - after_kill} at SIGTERM), max slack {slack} ms, "
        f"{sum(view.correlation_ids().values()) - len(view.correlation_ids())} duplicates"
    )
