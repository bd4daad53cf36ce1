"""Losses under backpressure are never silent, end to end: Kafka is throttled by a broker produce
quota on the connector's client id while the simulator sends 2,000 events/s, so the connector
falls seconds behind and what it has not read waits in the simulator's and the kernel's buffers.
Then a socket is dropped, or the channel is rotated (socket_closing, channel age), and every
ledger event must be in Kafka or inside a reported gap window, with no slack."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import (
    ConnectorProcess,
    InProcessWorker,
    KafkaView,
    Msg,
    ProduceQuota,
    all_topics,
    gap_window,
    gap_windows,
    genesys_block,
    ledger_for,
    quiesce,
    uncovered,
    wait_until,
    write_deployment,
)
from test_e2e_rotation import FastClock

from connector.simulator import GenesysSimulator, LedgerEntry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

Sim = Callable[..., GenesysSimulator]
StartWorker = Callable[..., InProcessWorker]
StartProcess = Callable[[Path], ConnectorProcess]
View = Callable[..., KafkaView]

RATE = 2000
"""Events/s the simulator sends (model mode: its buffers grow while we do not read)."""
QUOTA_BYTES_PER_S = 60_000
"""Produce quota of the connector's client id: a few hundred events/s, well below RATE."""
BEHIND = 6000
"""Ledger events not yet in Kafka before the fault: three seconds of the source at least."""
READ_LAG_MS = 3000
"""How old, at least, the frames the connector reads are before the fault."""

# The connector's queues kept small, so that backpressure reaches the socket within seconds.
SMALL_QUEUES_WORKER: dict[str, Any] = {
    "producer.queue.buffering.max.messages": 2000,
    "producer.linger.ms": 20,
}
SMALL_QUEUES_CONNECTOR: dict[str, Any] = {
    "buffer.capacity": 2000,
    "poll.max.records": 500,
    # the test process decodes thousands of records a second next to the simulator's thread:
    # a slow heartbeat must not look like a dead socket here
    "liveness.timeout.ms": 5000,
}


def deployment(
    tmp_path: Path,
    name: str,
    sim: GenesysSimulator,
    prefix: str,
    bootstrap: str,
    registry: str,
    **connector: Any,
) -> tuple[Path, str]:
    """A deployment whose data producer has its own client id (the quota's target)."""
    client_id = f"{prefix}-producer"
    path = write_deployment(
        tmp_path / f"{name}.yaml",
        bootstrap=bootstrap,
        registry_url=registry,
        prefix=prefix,
        connectors=[
            genesys_block(
                name, sim, prefix, topics=all_topics(sim), **SMALL_QUEUES_CONNECTOR, **connector
            )
        ],
        **{"producer.client.id": client_id, **SMALL_QUEUES_WORKER},
    )
    return path, client_id


class ReadLag:
    """How old the frames the connector reads are: an untimed event's Kafka timestamp is its
    receive time, the ledger has its send time. Seconds of it mean a backlog in the
    simulator's and the kernel's buffers, which a lost socket takes with it."""

    def __init__(self, sim: GenesysSimulator) -> None:
        self.sim = sim
        self.sent_ms: dict[str, float] = {}
        self.position = 0
        self.worst_ms = 0.0

    def observe(self, records: list[Msg]) -> float:
        entries = self.sim.ledger.entries(self.position)
        self.position += len(entries)
        for entry in entries:
            self.sent_ms.setdefault(entry.correlation_id, entry.sent_ns / 1e6)
        for record in records:
            sent = self.sent_ms.get(record.correlation_id or "")
            if sent is not None:
                self.worst_ms = max(self.worst_ms, record.timestamp_ms - sent)
        return self.worst_ms


def fall_behind(sim: GenesysSimulator, view: KafkaView, topics: list[str]) -> float:
    """Wait until the connector is ``BEHIND`` events behind the simulator and reads frames
    ``READ_LAG_MS`` old; return that lag."""
    lag = ReadLag(sim)

    def behind() -> bool:
        new = view.sync()
        return (
            lag.observe(new) >= READ_LAG_MS
            and len(ledger_for(sim, topics)) - len(view.events()) >= BEHIND
        )

    wait_until(behind, 60, f"the connector to read frames {READ_LAG_MS} ms old", 0.25)
    return lag.worst_ms


def account(
    sim: GenesysSimulator,
    view: KafkaView,
    topics: list[str],
    gaps_topic: str,
    late_after_ms: float,
) -> tuple[list[LedgerEntry], list[LedgerEntry], list[Msg]]:
    """Quiesce; wait until every ledger event is in Kafka or inside a gap window (no slack);
    return ``(ledger, missing, gaps)``. Events sent after ``late_after_ms`` must all arrive."""
    wait_until(
        lambda: time.time() * 1000 > late_after_ms + 1000,
        10,
        "a second of events after the fault",
    )
    quiesce(sim)
    ledger = ledger_for(sim, topics)
    late = {e.correlation_id for e in ledger if e.sent_ns / 1e6 > late_after_ms}
    assert late, "events were sent after the fault was over"
    state: dict[str, Any] = {}

    def settled() -> bool:
        view.sync()
        arrived = set(view.correlation_ids())
        gaps = [g for g in view.on(gaps_topic) if g.value["reason"] != "coverage_start"]
        missing = [e for e in ledger if e.correlation_id not in arrived]
        bad, _ = uncovered(missing, gap_windows(gaps), {g.value["reason"] for g in gaps}, 0)
        state.update(missing=missing, bad=bad, gaps=gaps, late=late - arrived)
        return not bad and not state["late"]

    try:
        wait_until(settled, 40, "every ledger event in Kafka or inside a gap window")
    except AssertionError:
        pass  # asserted below with the details
    bad, missing = state["bad"], state["missing"]
    assert not state["late"], f"{len(state['late'])} events sent after the fault never arrived"
    if bad:
        windows = sorted(
            {
                (*gap_window(g), g.value.get("from_basis"), g.value["channel_id"])
                for g in state["gaps"]
            },
            key=lambda w: w[0] or 0,
        )
        first = min(e.sent_ns for e in bad) / 1e6
        raise AssertionError(
            f"{len(bad)} of {len(missing)} lost events are outside every gap window: sent from "
            f"{first:.3f} ms on channels {sorted({e.channel_id for e in bad})}; windows {windows}"
        )
    return ledger, missing, state["gaps"]


def test_socket_drop_under_backpressure_is_covered_by_its_gap(
    simulator: Sim,
    process: StartProcess,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    sim = simulator(rate=RATE)
    topics = all_topics(sim)
    path, client_id = deployment(
        tmp_path, "bpdrop", sim, prefix, kafka_bootstrap, schema_registry_url
    )
    view = kafka_view()
    with ProduceQuota(kafka_bootstrap, client_id).set(QUOTA_BYTES_PER_S) as quota:
        running = process(path)
        [channel] = wait_until(
            lambda: [c for c in sim.channels() if c["connected"]], 30, "a connected channel"
        )
        read_lag_ms = fall_behind(sim, view, topics)
        drop_ms = time.time() * 1000
        sim.faults.drop(channel["id"])
        quota.remove()  # let the backlog through
        gaps_topic = f"{prefix}.bpdrop.gaps"
        wait_until(
            lambda: (
                view.sync() is not None
                and len([g for g in view.on(gaps_topic) if g.value["reason"] == "disconnect"])
                >= len(topics)
            ),
            60,
            "the gap records of the drop",
        )
        reconnected_ms = max(gap_window(g)[1] for g in view.on(gaps_topic))
        ledger, missing, gaps = account(sim, view, topics, gaps_topic, reconnected_ms)
    assert running.terminate() == 0, running.log_tail()

    lost = [e for e in missing if e.sent_ns / 1e6 <= drop_ms]
    assert lost, "the drop lost events that were in flight"
    first_lost_ms = min(e.sent_ns for e in lost) / 1e6
    # the scenario: what was lost had been waiting for seconds, not a few ms
    assert drop_ms - first_lost_ms > 1000, (drop_ms, first_lost_ms)
    # the drop's gap, one record per topic (a slow test machine may add a watchdog gap or
    # two, which the accounting above covers as well)
    [((from_ms, to_ms, _), basis)] = {
        (gap_window(g), g.value["from_basis"])
        for g in gaps
        if g.value["reason"] == "disconnect"
        and (gap_window(g)[0] or 0) <= drop_ms
        and drop_ms <= gap_window(g)[1]
    }
    # bounded by the receiver's pings (the simulator's events rarely carry an event time)
    assert basis in ("event_time", "ping"), basis
    assert from_ms is not None and from_ms <= first_lost_ms <= drop_ms <= to_ms
    # and tight: about a ping interval (0.3 s) before the first lost event, not seconds
    assert first_lost_ms - from_ms < 2000, (first_lost_ms, from_ms)
    print(
        f"drop under backpressure (reading frames {read_lag_ms:.0f} ms old): "
        f"{len(ledger)} ledger events, {len(missing)} lost, the first "
        f"sent {drop_ms - first_lost_ms:.0f} ms before the drop; gap from "
        f"{first_lost_ms - from_ms:.0f} ms before it ({basis})"
    )


def test_socket_closing_under_backpressure_reports_the_servers_close(
    simulator: Sim,
    process: StartProcess,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    """Genesys announces a close and closes a second later, but the announcement waits behind
    seconds of unread frames. Either the close cuts the connection (our pings arrive at a
    closed socket, which answers with a reset: the backlog and the announcement are gone) and
    the receiver reconnects to the channel, or the announcement is read after the close and the
    channel is rotated then. Either way what was sent between the last frame delivered and the
    next socket is lost, and must be inside a reported gap."""
    sim = simulator(rate=RATE)
    topics = all_topics(sim)
    path, client_id = deployment(
        tmp_path, "bpclosing", sim, prefix, kafka_bootstrap, schema_registry_url
    )
    view = kafka_view()
    gaps_topic = f"{prefix}.bpclosing.gaps"
    with ProduceQuota(kafka_bootstrap, client_id).set(QUOTA_BYTES_PER_S) as quota:
        running = process(path)
        [channel] = wait_until(
            lambda: [c for c in sim.channels() if c["connected"]], 30, "a connected channel"
        )
        fall_behind(sim, view, topics)
        sim.faults.socket_closing(channel["id"], lead_s=1.0)
        wait_until(
            lambda: not any(c["connected"] for c in sim.channels() if c["id"] == channel["id"]),
            10,
            "the simulator to close the old socket",
        )
        closed_ms = time.time() * 1000
        quota.remove()
        wait_until(
            lambda: (
                view.sync() is not None
                and any(g.value["reason"] != "coverage_start" for g in view.on(gaps_topic))
            ),
            60,
            "the gap of the server's close",
        )
        ledger, missing, gaps = account(sim, view, topics, gaps_topic, time.time() * 1000)
    assert running.terminate() == 0, running.log_tail()
    lost = [e for e in missing if e.sent_ns / 1e6 <= closed_ms]
    assert lost, "events in flight at the close were lost"
    assert any(
        (gap_window(g)[0] or 0) <= min(e.sent_ns for e in lost) / 1e6
        and closed_ms <= gap_window(g)[1]
        for g in gaps
    ), "one gap spans the close"
    assert {g.value["from_basis"] for g in gaps} <= {"event_time", "ping"}
    print(
        f"socket_closing under backpressure: {len(ledger)} ledger events, {len(missing)} lost, "
        f"gaps {sorted({(g.value['reason'], g.value['from_basis']) for g in gaps})}"
    )


def test_channel_age_rotation_under_backpressure_reports_the_discarded_backlog(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    """Planned rotations while Kafka is throttled: the old socket is still read after the new
    one connected, but it cannot catch up, so what it had not delivered when it is closed is
    reported as a gap; once Kafka keeps up again, rotations lose nothing."""
    sim = simulator(rate=RATE)
    topics = all_topics(sim)
    clock = FastClock(30.0)  # 60 s rotation interval -> 2 s real
    path, client_id = deployment(
        tmp_path,
        "bpage",
        sim,
        prefix,
        kafka_bootstrap,
        schema_registry_url,
        **{"channel.rotate.interval.ms": 60_000, "channel.rotate.on.token.expiry": False},
    )
    view = kafka_view()
    gaps_topic = f"{prefix}.bpage.gaps"
    with ProduceQuota(kafka_bootstrap, client_id).set(QUOTA_BYTES_PER_S) as quota:
        running = worker(path, clock)
        wait_until(lambda: running.all_connected("bpage", 1), 30, "the channel to connect")
        fall_behind(sim, view, topics)
        [before] = running.channels("bpage")
        wait_until(
            lambda: running.channels("bpage")[0]["generation"] > before["generation"],
            45,
            "a rotation under backpressure",
        )
        # the old socket cannot catch up in time: it is closed with a backlog (after
        # DRAIN_WAIT_S of draining), which must be reported
        wait_until(
            lambda: (
                not any(c["connected"] for c in sim.channels() if c["id"] == before["channel_id"])
            ),
            30,
            "the old socket to be closed",
        )
        quota.remove()
        # Kafka keeps up again: the next rotations lose nothing more
        [now] = running.channels("bpage")
        wait_until(
            lambda: running.channels("bpage")[0]["generation"] >= now["generation"] + 2,
            30,
            "two more rotations",
        )
        calm_ms = time.time() * 1000
        ledger, missing, gaps = account(sim, view, topics, gaps_topic, calm_ms)
    backlog_gaps = [g for g in gaps if g.value["reason"] == "rotation_backlog"]
    assert backlog_gaps, "the discarded backlog was reported"
    assert all(gap_window(g)[1] < calm_ms for g in gaps), "no gap once Kafka kept up"
    print(
        f"channel-age rotations under backpressure: {len(ledger)} ledger events, "
        f"{len(missing)} lost, {len(backlog_gaps) // len(topics)} rotation_backlog gaps, "
        f"{len(gaps) // len(topics)} gaps in all"
    )
