from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from connector.backoff import ExponentialBackoff
from connector.buffer import EventBuffer, Frame
from connector.ws.receiver import ReceiverEvent, ReceiverEventKind, Sender, WebSocketReceiver
from connector.ws.testing import LocalWebSocketServer, ServerConnection

pytestmark = pytest.mark.timeout(10)


def wait_until(predicate: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.002)


def drain_count(buffer: EventBuffer, count: int, timeout_s: float = 5.0) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout_s
    while len(frames) < count and time.monotonic() < deadline:
        frames.extend(buffer.drain(1000, 0.05))
    return frames


def fast_backoff() -> ExponentialBackoff:
    return ExponentialBackoff(0.01, 0.05, jitter=0)


@pytest.fixture
def server() -> Iterator[LocalWebSocketServer]:
    with LocalWebSocketServer() as srv:
        yield srv


@pytest.fixture
def receivers() -> Iterator[list[WebSocketReceiver]]:
    """Receivers created by a test; stopped afterwards even if the test fails."""
    created: list[WebSocketReceiver] = []
    yield created
    for receiver in created:
        receiver.stop(2)


class Events:
    """Collects receiver state events for assertions."""

    def __init__(self) -> None:
        self.items: list[ReceiverEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: ReceiverEvent) -> None:
        with self._lock:
            self.items.append(event)

    def kinds(self) -> list[ReceiverEventKind]:
        with self._lock:
            return [event.kind for event in self.items]

    def of(self, kind: ReceiverEventKind) -> list[ReceiverEvent]:
        with self._lock:
            return [event for event in self.items if event.kind == kind]


def test_frames_arrive_in_order_tagged_with_the_source(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    server.on_connect = lambda conn: [conn.send_text(f'{{"n":{n}}}') for n in range(100)]
    buffer = EventBuffer(1000)
    receiver = WebSocketReceiver(server.url + "/feed", buffer, source="chan-1")
    receivers.append(receiver)
    receiver.start()

    frames = drain_count(buffer, 100)

    assert [f.payload for f in frames] == [f'{{"n":{n}}}'.encode() for n in range(100)]
    assert {f.source for f in frames} == {"chan-1"}
    assert all(f.received_ns > 0 for f in frames)
    assert receiver.frames == 100 and receiver.bytes == sum(len(f.payload) for f in frames)
    assert receiver.is_connected and receiver.connected_since is not None
    assert receiver.last_frame_monotonic is not None


def test_source_defaults_to_the_redacted_url(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    receiver = WebSocketReceiver(server.url + "/x?token=s3cret", EventBuffer(10))
    assert receiver.source == server.url + "/x?token=***"


def test_binary_frames_and_non_utf8_text_frames_arrive_as_bytes(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    def send(conn: ServerConnection) -> None:
        conn.send_text(b"\xff\xfe not utf-8")
        conn.send_binary(b"\x00\x01")
        conn.send_text("after")

    server.on_connect = send
    buffer = EventBuffer(10)
    receiver = WebSocketReceiver(server.url, buffer)
    receivers.append(receiver)
    receiver.start()

    frames = drain_count(buffer, 3)

    assert [f.payload for f in frames] == [b"\xff\xfe not utf-8", b"\x00\x01", b"after"]
    assert receiver.is_connected
    assert receiver.reconnects == 0


def test_on_open_runs_on_every_connect_and_reconnects_after_a_drop(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    opened = []

    def subscribe(sender: Sender) -> None:
        opened.append(True)
        sender.send('{"subscribe":"a"}')
        sender.send(b"\x01binary")

    events = Events()
    buffer = EventBuffer(10)
    receiver = WebSocketReceiver(
        server.url, buffer, on_open=subscribe, backoff=fast_backoff(), on_state=events
    )
    receivers.append(receiver)
    receiver.start()

    first = server.wait_for_connection(0)
    assert first.wait_for_messages(2) == ['{"subscribe":"a"}', b"\x01binary"]
    first.drop()
    second = server.wait_for_connection(1)
    assert second.wait_for_messages(2) == ['{"subscribe":"a"}', b"\x01binary"]
    second.send_text("hello again")

    assert [f.payload for f in drain_count(buffer, 1)] == [b"hello again"]
    assert len(opened) == 2
    assert receiver.reconnects == 1
    disconnected = events.of(ReceiverEventKind.DISCONNECTED)
    assert disconnected and disconnected[0].reason == "connection lost"
    assert disconnected[0].retry_in_s is not None
    assert events.kinds().count(ReceiverEventKind.CONNECTED) == 2


def test_a_close_frame_from_the_server_is_reported_with_its_code_and_reconnects(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    events = Events()
    receiver = WebSocketReceiver(
        server.url, EventBuffer(10), backoff=fast_backoff(), on_state=events
    )
    receivers.append(receiver)
    receiver.start()

    server.wait_for_connection(0).send_close(4001, "token expired")
    server.wait_for_connection(1)

    closed = events.of(ReceiverEventKind.SERVER_CLOSED)
    assert [(e.close_code, e.reason) for e in closed] == [(4001, "token expired")]
    assert events.of(ReceiverEventKind.DISCONNECTED)[0].close_code == 4001


def test_application_ping_is_sent_at_the_interval(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    receiver = WebSocketReceiver(
        server.url, EventBuffer(10), ping_interval_s=0.05, ping_message='{"message":"ping"}'
    )
    receivers.append(receiver)
    started = time.monotonic()
    receiver.start()

    messages = server.wait_for_connection(0).wait_for_messages(3)

    assert messages[:3] == ['{"message":"ping"}'] * 3
    assert time.monotonic() - started >= 0.1  # three pings need at least two intervals


def test_without_a_ping_message_a_websocket_ping_frame_is_sent(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    receiver = WebSocketReceiver(server.url, EventBuffer(10), ping_interval_s=0.03)
    receivers.append(receiver)
    receiver.start()

    connection = server.wait_for_connection(0)
    wait_until(lambda: connection.pings >= 2)
    assert connection.received == []


def test_pings_keep_going_while_frames_flow(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    stop_sending = threading.Event()

    def stream(conn: ServerConnection) -> None:
        while not stop_sending.is_set():
            conn.send_text("x")
            time.sleep(0.001)

    server.on_connect = stream
    buffer = EventBuffer(100_000)
    receiver = WebSocketReceiver(server.url, buffer, ping_interval_s=0.05, ping_message="ping")
    receivers.append(receiver)
    receiver.start()
    try:
        server.wait_for_connection(0).wait_for_messages(2)
    finally:
        stop_sending.set()
    assert receiver.frames > 0


def test_watchdog_replaces_a_silent_socket(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    events = Events()
    receiver = WebSocketReceiver(
        server.url,
        EventBuffer(10),
        liveness_timeout_s=0.15,
        backoff=fast_backoff(),
        on_state=events,
    )
    receivers.append(receiver)
    receiver.start()

    first = server.wait_for_connection(0)
    server.wait_for_connection(1)

    assert events.of(ReceiverEventKind.LIVENESS_TIMEOUT)
    wait_until(first.closed.is_set)
    wait_until(lambda: receiver.reconnects == 1)


def test_frames_keep_a_socket_alive_past_the_liveness_timeout(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    stop_sending = threading.Event()

    def trickle(conn: ServerConnection) -> None:
        while not stop_sending.wait(0.02):
            conn.send_text("tick")

    server.on_connect = trickle
    buffer = EventBuffer(1000)
    receiver = WebSocketReceiver(server.url, buffer, liveness_timeout_s=0.1)
    receivers.append(receiver)
    receiver.start()
    try:
        drain_count(buffer, 20)  # ~0.4 s: four liveness windows
    finally:
        stop_sending.set()
    assert len(server.connections) == 1


def test_stop_is_prompt_while_blocked_in_recv_and_closes_politely(
    server: LocalWebSocketServer,
) -> None:
    events = Events()
    receiver = WebSocketReceiver(server.url, EventBuffer(10), on_state=events)
    receiver.start()
    connection = server.wait_for_connection(0)
    wait_until(lambda: receiver.is_connected)

    started = time.monotonic()
    receiver.stop()
    elapsed = time.monotonic() - started

    assert elapsed < 0.3
    assert not receiver.is_running
    assert not receiver.is_connected
    wait_until(connection.closed.is_set)
    assert connection.close_code == 1000
    assert events.kinds()[-1] == ReceiverEventKind.STOPPED
    assert not events.of(ReceiverEventKind.SERVER_CLOSED)  # the close reply is not an error
    receiver.stop()  # idempotent


def test_stop_before_start_and_double_start(server: LocalWebSocketServer) -> None:
    receiver = WebSocketReceiver(server.url, EventBuffer(10))
    receiver.stop()
    receiver.start()  # thread exits at once: stop was requested
    wait_until(lambda: not receiver.is_running)
    with pytest.raises(RuntimeError, match="already started"):
        receiver.start()


def test_backpressure_stops_reading_and_loses_nothing(receivers: list[WebSocketReceiver]) -> None:
    total, size = 200, 32 * 1024
    sent = threading.Event()
    progress = []

    def flood(conn: ServerConnection) -> None:
        for n in range(total):
            conn.send_text(f"{n:08d}".encode() + b"x" * size)
            progress.append(n)
        sent.set()

    with LocalWebSocketServer(flood, send_buffer_bytes=64 * 1024) as server:
        buffer = EventBuffer(2)
        receiver = WebSocketReceiver(
            server.url,
            buffer,
            liveness_timeout_s=0.1,  # must not fire just because *we* stopped reading
            sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)],
        )
        receivers.append(receiver)
        receiver.start()

        wait_until(lambda: buffer.depth == buffer.capacity)
        # The receiver is parked on put: the kernel buffers fill and the server's send blocks.
        assert not sent.wait(0.4)
        assert len(progress) < total
        assert buffer.depth == 2

        frames = drain_count(buffer, total)

        assert [int(f.payload[:8]) for f in frames] == list(range(total))
        assert sent.wait(2)
        assert buffer.blocked_put_s > 0.3
        assert len(server.connections) == 1  # the watchdog stayed quiet


def test_closing_the_buffer_ends_the_receiver(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    server.on_connect = lambda conn: [conn.send_text("x") for _ in range(5)]
    buffer = EventBuffer(1)
    receiver = WebSocketReceiver(server.url, buffer, backoff=fast_backoff())
    receivers.append(receiver)
    receiver.start()
    wait_until(lambda: buffer.depth == 1)
    buffer.close()
    wait_until(lambda: not receiver.is_running)
    assert len(server.connections) == 1


def test_url_and_headers_callables_are_called_per_attempt(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    attempts = []

    def url() -> str:
        attempts.append(len(attempts))
        if len(attempts) == 2:
            raise RuntimeError("no token right now")
        return f"{server.url}/ch?token=t{len(attempts)}"

    events = Events()
    receiver = WebSocketReceiver(
        url,
        EventBuffer(10),
        headers=lambda: {"Authorization": f"Bearer h{len(attempts)}"},
        backoff=fast_backoff(),
        on_state=events,
    )
    receivers.append(receiver)
    receiver.start()

    server.wait_for_connection(0).drop()
    second = server.wait_for_connection(1)

    assert server.connections[0].query == {"token": ["t1"]}
    assert second.query == {"token": ["t3"]}
    assert second.headers["authorization"] == "Bearer h3"
    failed = events.of(ReceiverEventKind.CONNECT_FAILED)
    assert [e.reason for e in failed] == ["provider raised"]
    assert failed[0].retry_in_s is not None


def test_failed_handshakes_are_retried_with_backoff(
    receivers: list[WebSocketReceiver],
) -> None:
    with LocalWebSocketServer(reject_status=503) as server:
        events = Events()
        receiver = WebSocketReceiver(
            server.url, EventBuffer(10), backoff=fast_backoff(), on_state=events
        )
        receivers.append(receiver)
        receiver.start()

        server.wait_for_handshakes(3)
        server.reject_status = None
        server.wait_for_connection(0)

        failed = events.of(ReceiverEventKind.CONNECT_FAILED)
        assert len(failed) >= 3
        assert all(e.reason == "connect failed" for e in failed)
        wait_until(lambda: receiver.is_connected)
        assert receiver.reconnects == 0  # the first successful connection is not a reconnect


def test_without_reconnect_the_thread_ends_after_a_disconnect(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    events = Events()
    receiver = WebSocketReceiver(server.url, EventBuffer(10), reconnect=False, on_state=events)
    receivers.append(receiver)
    receiver.start()
    server.wait_for_connection(0).drop()

    wait_until(lambda: not receiver.is_running)
    assert events.kinds()[-2:] == [ReceiverEventKind.DISCONNECTED, ReceiverEventKind.STOPPED]
    assert events.of(ReceiverEventKind.DISCONNECTED)[0].retry_in_s is None


def test_a_failing_on_open_drops_the_connection_and_retries(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    calls = []

    def on_open(sender: Sender) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("subscribe failed")

    events = Events()
    receiver = WebSocketReceiver(
        server.url, EventBuffer(10), on_open=on_open, backoff=fast_backoff(), on_state=events
    )
    receivers.append(receiver)
    receiver.start()

    server.wait_for_connection(1)
    wait_until(lambda: len(calls) == 2)
    assert events.of(ReceiverEventKind.DISCONNECTED)[0].reason == "on_open failed"


def test_logs_never_show_the_query_string(
    server: LocalWebSocketServer,
    receivers: list[WebSocketReceiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="connector.ws")
    receiver = WebSocketReceiver(
        server.url + "/ch?access_token=SUPERSECRET", EventBuffer(10), backoff=fast_backoff()
    )
    receivers.append(receiver)
    receiver.start()
    server.wait_for_connection(0).drop()
    server.wait_for_connection(1)
    receiver.stop()

    assert "access_token=***" in caplog.text
    assert "SUPERSECRET" not in caplog.text
    assert "SUPERSECRET" not in repr(receiver)


def test_a_raising_on_state_callback_does_not_kill_the_receiver(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    def explode(event: ReceiverEvent) -> None:
        raise RuntimeError("boom")

    server.on_connect = lambda conn: conn.send_text("ok")
    buffer = EventBuffer(10)
    receiver = WebSocketReceiver(server.url, buffer, on_state=explode)
    receivers.append(receiver)
    receiver.start()
    assert [f.payload for f in drain_count(buffer, 1)] == [b"ok"]


PONG = '{"topicName":"channel.metadata","eventBody":{"message":"pong"}}'


def is_pong(data: bytes) -> bool:
    return data == PONG.encode()


def answer_pings(conn: ServerConnection, frames_per_pong: int = 20) -> None:
    """A server that answers every ping in order, then sends frames stamped with its clock."""
    answered = 0
    while not conn.closed.is_set():
        try:
            received = conn.wait_for_messages(answered + 1, timeout_s=10)
        except TimeoutError:
            return
        for _ in received[answered:]:
            conn.send_text(PONG)
            conn.send_many([f"{time.time_ns()}:" + "x" * 2000 for _ in range(frames_per_pong)])
        answered = len(received)


def test_frames_after_a_pong_carry_a_bound_of_their_send_time_even_when_held_back(
    receivers: list[WebSocketReceiver],
) -> None:
    """A frame read late (the buffer held the receiver back) was sent long before it was
    received; the ping answered by the pong before it still bounds when it was sent."""
    with LocalWebSocketServer(answer_pings) as server:
        buffer = EventBuffer(10)
        connecting = time.time_ns()
        receiver = WebSocketReceiver(
            server.url,
            buffer,
            ping_interval_s=0.05,
            ping_message='{"message":"ping"}',
            is_pong=is_pong,
            liveness_timeout_s=5,
        )
        receivers.append(receiver)
        receiver.start()
        wait_until(lambda: buffer.depth == buffer.capacity)
        # held back, the receiver keeps pinging and the server keeps answering into the backlog
        connection = server.wait_for_connection(0)
        wait_until(lambda: len(connection.received) >= 8)
        frames: list[Frame] = []
        wait_until(lambda: frames.extend(buffer.drain(1000, 0.05)) or len(frames) > 200, 10)
        data = [f for f in frames if f.payload != PONG.encode()]
        assert all(f.sent_after_ns is not None for f in frames)
        for f in data:
            server_sent = int(f.payload.split(b":")[0])
            assert connecting <= f.sent_after_ns <= server_sent <= f.received_ns
        late = [f for f in data if f.received_ns - int(f.payload.split(b":")[0]) > 300_000_000]
        assert late, "some frames waited in the buffers for a while"
        # ... and their bound followed the pings sent meanwhile, not the connection start
        assert max(f.sent_after_ns for f in late) > connecting + 100_000_000


def test_drain_ends_once_the_pong_to_a_later_ping_is_read(
    receivers: list[WebSocketReceiver],
) -> None:
    events = Events()
    with LocalWebSocketServer(answer_pings) as server:
        buffer = EventBuffer(10_000)
        receiver = WebSocketReceiver(
            server.url,
            buffer,
            ping_interval_s=3600,  # only the drain's own ping
            ping_message='{"message":"ping"}',
            is_pong=is_pong,
            on_state=events,
            backoff=fast_backoff(),
        )
        receivers.append(receiver)
        receiver.start()
        server.wait_for_connection(0).send_many(["before"] * 5)
        wait_until(lambda: buffer.depth == 5)
        after = time.time_ns()
        receiver.drain(after, timeout_s=10)
        wait_until(lambda: not receiver.is_running)
        frames = buffer.drain(10_000, 0)
        assert [f.payload for f in frames] == [b"before"] * 5 + [PONG.encode()]
        assert frames[-1].sent_after_ns is not None and frames[-1].sent_after_ns >= after
        [disconnected] = events.of(ReceiverEventKind.DISCONNECTED)
        assert disconnected.planned and disconnected.reason == "drained"
        assert disconnected.sent_after_ns is not None and disconnected.sent_after_ns >= after
        assert events.kinds()[-1] is ReceiverEventKind.STOPPED
        assert len(server.connections) == 1, "a drained receiver does not reconnect"


def test_a_drained_receiver_ends_when_the_server_closes(
    receivers: list[WebSocketReceiver],
) -> None:
    events = Events()
    with LocalWebSocketServer() as server:
        receiver = WebSocketReceiver(
            server.url, EventBuffer(10), backoff=fast_backoff(), on_state=events
        )
        receivers.append(receiver)
        receiver.start()
        connection = server.wait_for_connection(0)
        wait_until(lambda: receiver.is_connected)
        receiver.drain(time.time_ns() + 60 * 10**9, timeout_s=30)  # not before the close
        connection.send_close(1001, "going away")
        wait_until(lambda: not receiver.is_running)
        [disconnected] = events.of(ReceiverEventKind.DISCONNECTED)
        assert not disconnected.planned and disconnected.close_code == 1001
        assert len(server.connections) == 1


def test_a_drain_that_cannot_complete_ends_at_its_timeout(
    receivers: list[WebSocketReceiver],
) -> None:
    events = Events()
    with LocalWebSocketServer() as server:  # never answers pings
        receiver = WebSocketReceiver(
            server.url,
            EventBuffer(10),
            ping_interval_s=0.05,
            ping_message='{"message":"ping"}',
            is_pong=is_pong,
            on_state=events,
        )
        receivers.append(receiver)
        receiver.start()
        wait_until(lambda: receiver.is_connected)
        receiver.drain(time.time_ns(), timeout_s=0.3)
        wait_until(lambda: not receiver.is_running)
        [disconnected] = events.of(ReceiverEventKind.DISCONNECTED)
        assert disconnected.planned and disconnected.reason == "drain timed out"
        assert len(server.connections) == 1


def test_disconnected_says_a_stop_was_planned(
    server: LocalWebSocketServer, receivers: list[WebSocketReceiver]
) -> None:
    events = Events()
    receiver = WebSocketReceiver(server.url, EventBuffer(10), on_state=events)
    receivers.append(receiver)
    receiver.start()
    server.wait_for_connection(0)
    wait_until(lambda: receiver.is_connected)
    receiver.stop()
    [disconnected] = events.of(ReceiverEventKind.DISCONNECTED)
    assert disconnected.planned
