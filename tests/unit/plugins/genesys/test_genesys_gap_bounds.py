"""Where gap windows start, and when a socket's end is covered by another: the task's view of
connection changes through ``poll()``, frames and control frames scripted into its buffer (the
channel supervisor replaced by a recorder). Times are in ms; the receive order is the buffer's,
which under backpressure is not the order in which things happened."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from genesys_helpers import USER_1, base_config

from connector.api import SourceRecord
from connector.buffer import EventBuffer, Frame
from connector.plugins.genesys import topics
from connector.plugins.genesys.events import RecordBuilder
from connector.plugins.genesys.session import CONTROL_PREFIX, ChannelSession
from connector.plugins.genesys.spec import GenesysNotificationsConfig
from connector.plugins.genesys.task import GenesysNotificationsSourceTask, _SessionState
from connector.testing import FakeTaskContext, split_polled

OLD, NEW = "t-0/ch0/g1/old", "t-0/ch0/g2/new"
HEARTBEAT = b'{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}'
ROUTING_TOPIC = f"v2.users.{USER_1}.routingStatus"


class Supervisor:
    """Stands in for the ChannelManager: one session, requests recorded."""

    def __init__(self, session: ChannelSession) -> None:
        self.session = session
        self.caught_up_sources: list[str] = []
        self.requests: list[tuple[Any, ...]] = []

    def session_of(self, source: str) -> ChannelSession:
        return self.session

    @property
    def sessions(self) -> list[ChannelSession]:
        return [self.session]

    def status(self) -> list[dict[str, Any]]:
        return []

    def request(self, *args: Any, **kwargs: Any) -> None:
        self.requests.append(args)

    def caught_up(self, index: int, source: str) -> None:
        self.caught_up_sources.append(source)


class Scripted:
    """The task with a scripted buffer: ``connected``/``disconnected``/``frame`` then ``poll``."""

    def __init__(self) -> None:
        config = GenesysNotificationsConfig.model_validate(
            base_config(**{"genesys.subscriptions": [{"topics": [ROUTING_TOPIC]}]})
        )
        self.task = GenesysNotificationsSourceTask()
        task = self.task
        task._ctx = FakeTaskContext("gaps", config)
        task._config = config
        task._buffer = EventBuffer(1000)
        session = ChannelSession(0, (ROUTING_TOPIC,), permitted=(ROUTING_TOPIC,))
        self.supervisor = Supervisor(session)
        task._manager = self.supervisor  # type: ignore[assignment]
        rule, overrides = config.routing()
        task._builder = RecordBuilder(topics.Router(rule, overrides, "gaps"))
        task._states = {0: _SessionState()}
        task._subscribed = frozenset(session.topics)  # what start() takes from the plan
        self.records: list[SourceRecord] = []

    def control(self, kind: str, source: str, at_ms: int, **detail: Any) -> Scripted:
        payload = orjson.dumps({"kind": kind, "source": source, **detail})
        assert self.task._buffer is not None
        self.task._buffer.put(Frame(payload, at_ms * 1_000_000, CONTROL_PREFIX + source))
        return self

    def connected(self, source: str, at_ms: int) -> Scripted:
        return self.control("connected", source, at_ms)

    def disconnected(
        self, source: str, at_ms: int, *, planned: bool, sent_after_ms: int | None = None
    ) -> Scripted:
        after = None if sent_after_ms is None else sent_after_ms * 1_000_000
        return self.control(
            "disconnected", source, at_ms, planned=planned, reason="x", sent_after_ns=after
        )

    def frame(
        self, source: str, received_ms: int, sent_after_ms: int, payload: bytes = HEARTBEAT
    ) -> Scripted:
        assert self.task._buffer is not None
        frame = Frame(payload, received_ms * 1_000_000, source, sent_after_ms * 1_000_000)
        self.task._buffer.put(frame)
        return self

    def poll(self) -> Scripted:
        records, malformed = split_polled(self.task.poll(0))
        assert not malformed
        self.records += records
        return self

    def gaps(self) -> list[tuple[int | None, int, str, str | None]]:
        return [
            (r.value["from_time"], r.value["to_time"], r.value["reason"], r.value["from_basis"])
            for r in self.records
            if r.topic == "genesys.gaps" and r.value["reason"] != "coverage_start"
        ]


def routing_event(start_ms: int, correlation: str = "c-1") -> bytes:
    start = f"2026-01-01T00:00:{start_ms // 1000:02d}.{start_ms % 1000:03d}Z"
    return orjson.dumps(
        {
            "topicName": ROUTING_TOPIC,
            "eventBody": {"id": USER_1, "routingStatus": {"status": "IDLE", "startTime": start}},
            "metadata": {"CorrelationId": correlation},
        }
    )


BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def script() -> Scripted:
    return Scripted().connected(OLD, 1_000).poll()


def test_a_server_close_read_after_the_rotation_connected_is_a_gap_up_to_the_new_socket(
    script: Scripted,
) -> None:
    """Under backpressure the old socket's close is read after the rotation (triggered by the
    late announcement) connected the new channel: it was closed long before that."""
    script.frame(OLD, received_ms=9_000, sent_after_ms=2_000)
    script.connected(NEW, 10_000).disconnected(OLD, 11_000, planned=False, sent_after_ms=2_500)
    assert script.poll().gaps() == [(2_500, 10_000, "disconnect", "ping")]


def test_an_old_socket_that_delivered_past_the_new_ones_start_leaves_no_gap(
    script: Scripted,
) -> None:
    script.connected(NEW, 5_000).frame(OLD, received_ms=7_000, sent_after_ms=6_000)
    script.disconnected(OLD, 7_500, planned=True)
    assert script.poll().gaps() == []


def test_a_retired_socket_that_had_not_delivered_everything_is_a_rotation_backlog_gap(
    script: Scripted,
) -> None:
    script.frame(OLD, received_ms=4_000, sent_after_ms=2_000).connected(NEW, 5_000)
    script.disconnected(OLD, 9_000, planned=True, sent_after_ms=3_000)
    assert script.poll().gaps() == [(3_000, 5_000, "rotation_backlog", "ping")]


def test_a_drop_without_another_socket_starts_at_the_ping_bound_not_the_receive_time(
    script: Scripted,
) -> None:
    script.frame(OLD, received_ms=9_000, sent_after_ms=4_000)
    script.disconnected(OLD, 9_100, planned=False).poll()
    assert script.gaps() == []  # open until a socket is back
    script.connected(OLD, 12_000)
    assert script.poll().gaps() == [(4_000, 12_000, "disconnect", "ping")]


def test_an_event_time_later_than_the_ping_bound_starts_the_gap_and_bounds_seen_ms() -> None:
    script = Scripted().connected(OLD, BASE_MS).poll()
    event_ms = BASE_MS + 30_500
    script.frame(OLD, event_ms + 9_000, BASE_MS + 1_000, routing_event(30_500)).poll()
    [record] = [r for r in script.records if r.topic != "genesys.gaps"]
    # the restart gap of a committed offset starts when the event was sent at the earliest
    assert record.source_offset == {
        "event_time_ms": event_ms,
        "correlation_id": "c-1",
        "seen_ms": event_ms - 1,
    }
    script.disconnected(OLD, event_ms + 9_500, planned=False).connected(OLD, event_ms + 10_000)
    assert script.poll().gaps() == [(event_ms - 1, event_ms + 10_000, "disconnect", "event_time")]


def test_the_task_says_when_the_old_socket_of_a_rotation_has_delivered_past_the_new_one() -> None:
    script = Scripted().connected(OLD, BASE_MS).poll()
    script.connected(NEW, BASE_MS + 5_000)
    script.frame(OLD, BASE_MS + 6_000, BASE_MS + 1_000, routing_event(4_000, "c-1"))
    assert script.poll().supervisor.caught_up_sources == []
    script.frame(OLD, BASE_MS + 7_000, BASE_MS + 1_000, routing_event(5_500, "c-2"))
    assert script.poll().supervisor.caught_up_sources == [OLD]
