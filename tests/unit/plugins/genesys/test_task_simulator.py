"""The real task against an in-process Genesys simulator (loopback only, no Kafka)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connector.api import MalformedInput, SourceRecord
from connector.plugins.genesys.spec import GenesysNotificationsConfig
from connector.plugins.genesys.task import GenesysNotificationsSourceTask
from connector.simulator import ClientConfig, GenesysSimulator, SimulatorConfig
from connector.testing import FakeTaskContext, MemoryOffsetReader, split_polled

pytestmark = pytest.mark.timeout(60)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or predicate}")


class Running:
    """A started task polled on a background thread, like the runtime's task loop."""

    def __init__(self, config: GenesysNotificationsConfig, offsets: MemoryOffsetReader | None):
        self.ctx = FakeTaskContext("genesys-test", config, offset_reader=offsets)
        self.task = GenesysNotificationsSourceTask()
        self.records: list[SourceRecord] = []
        self.malformed: list[MalformedInput] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.task.start(self.ctx)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self.task.poll(0.05)
            except Exception as exc:  # surfaced by the test
                self.errors.append(exc)
                return
            records, malformed = split_polled(batch)
            with self._lock:
                self.records.extend(records)
                self.malformed.extend(malformed)

    def snapshot(self) -> list[SourceRecord]:
        with self._lock:
            return list(self.records)

    def events(self) -> list[SourceRecord]:
        return [r for r in self.snapshot() if r.topic != "genesys.gaps"]

    def gaps(self, reason: str | None = None) -> list[SourceRecord]:
        return [
            r
            for r in self.snapshot()
            if r.topic == "genesys.gaps" and (reason is None or r.value["reason"] == reason)
        ]

    def correlation_ids(self) -> Counter[str]:
        return Counter(r.source_offset["correlation_id"] for r in self.events())

    def stop(self) -> None:
        self.task.stop()
        self._stop.set()
        self._thread.join(5)


def make_config(sim: GenesysSimulator, **overrides: Any) -> GenesysNotificationsConfig:
    queues, users = sim.queue_ids[:2], sim.user_ids[:4]
    config: dict[str, Any] = {
        "genesys.login.url": sim.base_url,
        "genesys.api.url": sim.base_url,
        "genesys.client.id": "demo-client",
        "genesys.client.secret": "demo-secret",
        "genesys.subscriptions": [
            {
                "template": ["queue.conversations", "queue.observations", "queue.users"],
                "ids": queues,
            },
            {
                "template": [
                    "user.presence",
                    "user.routingStatus",
                    "user.activity",
                    "user.conversations",
                ],
                "ids": users,
            },
        ],
        "ping.interval.ms": 300,
        "liveness.timeout.ms": 1500,
        "reconnect.backoff.initial.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "dedupe.window.ms": 2000,
    }
    config.update(overrides)
    return GenesysNotificationsConfig.model_validate(config)


@pytest.fixture
def sim() -> Iterator[GenesysSimulator]:
    simulator = GenesysSimulator(
        SimulatorConfig(
            port=0,
            rate=300,
            heartbeat_interval_s=0.3,
            socket_closing_lead_s=1.0,
            clients=[
                ClientConfig("demo-client", "demo-secret"),
                ClientConfig(
                    "limited",
                    "limited-secret",
                    permissions=("routing:queue:view", "conversation:communication:view"),
                ),
            ],
        )
    )
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def running(sim: GenesysSimulator) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(config: GenesysNotificationsConfig | None = None, offsets: Any = None) -> Running:
        run = Running(config or make_config(sim), offsets)
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop()


def our_ledger(sim: GenesysSimulator, topics: set[str]) -> list[Any]:
    return [e for e in sim.ledger.entries() if e.topic in topics]


def assert_ledger_received(sim: GenesysSimulator, run: Running, topics: set[str]) -> None:
    """Every event the simulator wrote to any of our sockets became a record."""
    sim.set_rate(rate=0)  # runs on the simulator's loop: nothing is ledgered after it returns
    wanted = {e.correlation_id for e in our_ledger(sim, topics)}
    assert wanted, "the simulator sent nothing on our topics"
    wait_for(lambda: wanted <= set(run.correlation_ids()), 10, "every ledger event as a record")


def channel_id(run: Running, index: int = 0) -> str:
    wait_for(lambda: run.ctx.status.get("channels", [{}])[index].get("connected"), 10, "connect")
    return run.ctx.status["channels"][index]["channel_id"]


def test_events_arrive_as_typed_records(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    config = make_config(sim)
    run = running(config)
    wait_for(lambda: len(run.events()) >= 60, 15, "events")
    assert_ledger_received(sim, run, set(config.topics()))
    families = {r.topic for r in run.events()}
    assert {"genesys.queue.conversations", "genesys.queue.observations"} <= families
    for record in run.events()[:50]:
        assert record.value_schema is not None
        assert dict(record.headers)["genesys.topic"] == record.source_partition["topic"]
        assert record.key
    # first start: coverage starts, no loss reported
    assert len(run.gaps("coverage_start")) == len(config.topics())
    assert not [g for g in run.gaps() if g.value["reason"] != "coverage_start"]
    assert run.malformed == [] and not run.errors
    assert run.correlation_ids().most_common(1)[0][1] == 1  # no duplicates


def test_socket_closing_rotates_make_before_break_without_loss(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    config = make_config(sim)
    run = running(config)
    first = channel_id(run)
    wait_for(lambda: len(run.events()) >= 20, 10, "events")
    sim.faults.socket_closing(first, lead_s=1.0)
    wait_for(lambda: channel_id(run) != first, 10, "rotation to a new channel")
    wait_for(
        lambda: not {c["id"]: c for c in sim.channels()}[first]["connected"],
        10,
        "the old socket to close after the lead time",
    )
    assert_ledger_received(sim, run, set(config.topics()))
    assert [g.value["reason"] for g in run.gaps() if g.value["reason"] != "coverage_start"] == []
    assert run.correlation_ids().most_common(1)[0][1] == 1, "overlap duplicates were dropped"
    assert run.ctx.status["channels"][0]["generation"] == 2
    channels = {c["id"]: c for c in sim.channels()}
    assert not channels[first]["connected"]


def test_unplanned_drop_reconnects_and_reports_the_gap(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    run = running()
    first = channel_id(run)
    wait_for(lambda: len(run.events()) >= 10, 10, "events")
    sim.faults.drop(first)
    wait_for(lambda: run.gaps("disconnect"), 10, "a disconnect gap")
    gap = run.gaps("disconnect")[0].value
    assert gap["from_time"] <= gap["to_time"]
    assert gap["connector"] == "genesys-test"
    assert channel_id(run) == first, "the same channel is reused after a plain disconnect"
    assert run.ctx.counters[("gaps", (("reason", "disconnect"),))] >= 1
    assert run.ctx.status["last_gap"]["reason"] == "disconnect"


def test_silent_socket_is_replaced_by_the_watchdog(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    run = running()
    first = channel_id(run)
    sim.faults.stall(first)
    wait_for(lambda: run.gaps("disconnect"), 10, "the watchdog to replace the silent socket")
    sim.faults.unstall(first)


def test_expired_channel_404_is_replaced_and_the_gap_reported(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    run = running()
    first = channel_id(run)
    sim.faults.expire_channel(first)
    wait_for(lambda: run.gaps("channel_lost"), 10, "a channel_lost gap")
    assert channel_id(run) != first
    wait_for(lambda: run.ctx.status["channels"][0]["connected"], 5, "connected again")


def test_no_longer_subscribed_moves_to_a_new_channel(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    run = running()
    first = channel_id(run)
    sim.faults.no_longer_subscribed(first)
    wait_for(lambda: channel_id(run) != first, 10, "a new channel")
    wait_for(lambda: run.gaps("no_longer_subscribed"), 10, "the gap")


def test_rejected_topics_are_reported_without_failing_the_rest(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    config = make_config(
        sim,
        **{
            "genesys.client.id": "limited",
            "genesys.client.secret": "limited-secret",
            "genesys.subscriptions": [
                {"template": "queue.observations", "ids": sim.queue_ids[:1]},
                {"template": "queue.conversations", "ids": sim.queue_ids[:1]},
            ],
        },
    )
    run = running(config)
    wait_for(lambda: run.ctx.status.get("rejected_topics"), 10, "rejected topics in the status")
    rejected = run.ctx.status["rejected_topics"]
    assert [r["topic"] for r in rejected] == [
        f"v2.analytics.queues.{sim.queue_ids[0]}.observations"
    ]
    assert rejected[0]["missing_permissions"] == ["analytics:queueObservation:view"]
    wait_for(lambda: run.events(), 10, "events of the permitted topic")
    assert {r.topic for r in run.events()} == {"genesys.queue.conversations"}


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("malformed", "bad JSON"), ("truncated", "bad JSON"), ("non_utf8", "undecodable text")],
)
def test_malformed_frames_are_dead_lettered_and_the_stream_goes_on(
    sim: GenesysSimulator, running: Callable[..., Running], kind: str, reason: str
) -> None:
    run = running()
    first = channel_id(run)
    sim.faults.bad_frame(kind, first)
    wait_for(lambda: run.malformed, 10, "a dead letter")
    letter = run.malformed[0]
    assert reason in letter.reason and letter.payload
    count = len(run.events())
    wait_for(lambda: len(run.events()) > count + 5, 10, "events after the bad frame")
    assert not run.errors


def test_oversized_events_are_records(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    config = make_config(sim)
    run = running(config)
    sim.faults.bad_frame("oversized", channel_id(run), size=1_100_000)
    assert_ledger_received(sim, run, set(config.topics()))
    assert run.malformed == []


def test_restart_reports_the_gap_from_committed_offsets(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    config = make_config(sim)
    run = running(config)
    wait_for(lambda: len(run.events()) >= 30, 10, "events")
    run.stop()
    offsets = MemoryOffsetReader("genesys-test")
    last: dict[str, Any] = {}
    for record in run.snapshot():
        last[record.source_partition["topic"]] = record.source_offset
    for topic, offset in last.items():
        offsets.set({"topic": topic}, offset)
    again = running(config, offsets)
    wait_for(lambda: again.gaps("restart"), 10, "restart gaps")
    gaps = {g.value["genesys_topic"]: g.value for g in again.gaps("restart")}
    assert set(gaps) == set(config.topics())
    for topic, gap in gaps.items():
        assert gap["from_time"] == last[topic]["seen_ms"]
        assert gap["to_time"] >= gap["from_time"]
    assert again.gaps("coverage_start") == []


def test_token_revocation_gets_a_new_token_and_channel(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    run = running()
    first = channel_id(run)
    sim.faults.revoke_token(client_id="demo-client")
    wait_for(lambda: channel_id(run) != first, 15, "a new channel after revocation")
    assert run.gaps("token_revoked") or run.gaps("channel_lost")
