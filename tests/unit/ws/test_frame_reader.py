"""FrameReader: the receiver's own parser of server frames, fed byte streams without sockets."""

from __future__ import annotations

import os
import random
import struct

import pytest
from websocket import (
    ABNF,
    WebSocketConnectionClosedException,
    WebSocketProtocolException,
    WebSocketTimeoutException,
)

from connector.ws.receiver import Drained, FrameReader

TEXT, BINARY, CONT = ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT
CLOSE, PING, PONG = ABNF.OPCODE_CLOSE, ABNF.OPCODE_PING, ABNF.OPCODE_PONG


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head = bytes([first, bit | n])
    elif n < 65536:
        head = bytes([first, bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, bit | 127]) + struct.pack("!Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


class Stream:
    """A read function serving ``data`` in the given chunk sizes, then end of stream."""

    def __init__(
        self, data: bytes, chunks: list[int] | None = None, timeouts: frozenset[int] = frozenset()
    ):
        self.data, self.pos, self.calls = data, 0, 0
        self.chunks = chunks
        self.timeouts = timeouts
        self.pongs: list[bytes] = []
        self.closes = 0

    def read(self, max_bytes: int) -> bytes:
        self.calls += 1
        if self.calls in self.timeouts:
            raise WebSocketTimeoutException("timed out")
        size = self.chunks[(self.calls - 1) % len(self.chunks)] if self.chunks else max_bytes
        out = self.data[self.pos : self.pos + min(size, max_bytes)]
        self.pos += len(out)
        return out

    def reader(self) -> FrameReader:
        def close() -> None:
            self.closes += 1

        return FrameReader(self.read, self.pongs.append, close)


PAYLOADS = [b"", b"x", os.urandom(125), os.urandom(126), os.urandom(65535), os.urandom(65536)]


@pytest.mark.parametrize("chunks", [None, [1], [7, 3, 1000], [65536]])
def test_data_frames_of_every_length_class_arrive_whole_and_in_order(chunks: list[int] | None):
    opcodes = [TEXT if i % 2 else BINARY for i in range(len(PAYLOADS))]
    data = b"".join(frame(op, p) for op, p in zip(opcodes, PAYLOADS, strict=True))
    reader = Stream(data, chunks).reader()
    assert [reader.recv_data() for _ in PAYLOADS] == list(zip(opcodes, PAYLOADS, strict=True))
    with pytest.raises(WebSocketConnectionClosedException):
        reader.recv_data()


def test_fragments_are_joined_and_control_frames_between_them_are_answered() -> None:
    data = (
        frame(TEXT, b"hel", fin=False)
        + frame(PING, b"p1")
        + frame(CONT, b"lo ", fin=False)
        + frame(PONG, b"")
        + frame(CONT, b"world")
        + frame(BINARY, b"\xff")
    )
    stream = Stream(data, [5])
    reader = stream.reader()
    assert reader.recv_data() == (PING, b"p1")
    assert stream.pongs == [b"p1"]
    assert reader.recv_data() == (PONG, b"")
    assert reader.recv_data() == (TEXT, b"hello world")
    assert reader.recv_data() == (BINARY, b"\xff")


def test_without_control_frames_only_messages_are_returned() -> None:
    stream = Stream(frame(PING, b"a") + frame(PONG, b"b") + frame(TEXT, b"m"))
    assert stream.reader().recv_data(control_frame=False) == (TEXT, b"m")
    assert stream.pongs == [b"a"]


def test_a_close_frame_is_answered_and_returned() -> None:
    stream = Stream(frame(CLOSE, struct.pack("!H", 1001) + b"bye"))
    assert stream.reader().recv_data() == (CLOSE, b"\x03\xe9bye")
    assert stream.closes == 1


def test_masked_frames_are_unmasked() -> None:
    payload = os.urandom(300)
    reader = Stream(frame(TEXT, payload, mask=b"\x01\x02\x03\x04")).reader()
    assert reader.recv_data() == (TEXT, payload)


def test_a_timeout_mid_frame_keeps_what_was_read() -> None:
    payload = os.urandom(1000)
    reader = Stream(frame(BINARY, payload), [300], timeouts=frozenset({2, 3})).reader()
    for _ in range(2):
        with pytest.raises(WebSocketTimeoutException):
            reader.recv_data()
    assert reader.recv_data() == (BINARY, payload)


@pytest.mark.parametrize(
    "data",
    [
        bytes([0x80 | 0x40 | TEXT, 1]) + b"x",  # RSV1 without an extension
        frame(CONT, b"x"),  # continuation without a start
        frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),  # new message inside a fragmented one
        frame(PING, b"x", fin=False),  # fragmented control frame
        frame(PING, b"x" * 126),  # control frame too long
        frame(0x3, b"x"),  # reserved opcode
    ],
)
def test_protocol_violations_raise(data: bytes) -> None:
    reader = Stream(data).reader()
    with pytest.raises(WebSocketProtocolException):
        reader.recv_data()
        reader.recv_data()


def test_random_streams_match_the_frames_sent() -> None:
    rng = random.Random(7)
    messages = [
        (rng.choice((TEXT, BINARY)), os.urandom(rng.choice((0, 10, 200, 70000)))) for _ in range(60)
    ]
    data = b"".join(frame(op, p) for op, p in messages)
    reader = Stream(data, [rng.randint(1, 5000) for _ in range(50)]).reader()
    assert [reader.recv_data() for _ in messages] == messages


class Scripted:
    """A socket scripted read by read, a clock the test moves, and a buffer's blocked-put count.

    Each script entry is the bytes one read returns, or ``None`` for a read that times out.
    ``drained`` answers the reader's question "is the socket empty now?": after a read it is
    empty unless the next scripted read already holds data the test marked as waiting.
    """

    def __init__(self, reads: list[bytes | None]) -> None:
        self.reads = list(reads)
        self.now = 1_000_000_000
        self.blocked = 0
        self.waiting = False  # more data is already in the socket after the current read

    def read(self, max_bytes: int) -> bytes:
        self.now += 1_000_000  # each read takes 1 ms
        entry = self.reads.pop(0)
        if entry is None:
            raise TimeoutError("timed out")
        return entry

    def reader(self) -> FrameReader:
        return FrameReader(
            self.read,
            lambda _p: None,
            lambda: None,
            blocked_puts=lambda: self.blocked,
            drained=lambda: not self.waiting,
            clock=lambda: self.now,
        )


def test_frames_carry_the_time_of_the_read_that_completed_them() -> None:
    script = Scripted([frame(TEXT, b"a") + frame(TEXT, b"b")[:2], frame(TEXT, b"b")[2:]])
    reader = script.reader()
    assert reader.recv_data() == (TEXT, b"a")
    first_read = reader.read_ns
    assert reader.recv_data() == (TEXT, b"b")
    assert reader.read_ns == first_read + 1_000_000
    assert reader.behind_since_ns is None


def test_a_blocked_put_marks_the_frames_read_afterwards_behind_until_the_socket_drains() -> None:
    chunk = b"".join(frame(TEXT, b"%d" % n) for n in range(3))
    script = Scripted([chunk] * 8)
    reader = script.reader()
    assert [reader.recv_data()[1] for _ in range(3)] == [b"0", b"1", b"2"]
    keeping_up_read = reader.read_ns
    script.blocked += 1  # putting one of those frames had to wait: the receiver falls behind
    script.waiting = True  # and the server's data waits in the socket
    reader.recv_data()
    assert reader.behind_since_ns == keeping_up_read
    # still behind while reads come back full, even without further blocks
    for _ in range(5):
        reader.recv_data()
    assert reader.behind_since_ns == keeping_up_read
    script.waiting = False  # the backlog is read: reads now empty the socket...
    script.now += 10_000_000
    for _ in range(3):
        reader.recv_data()  # ...but one such read alone does not prove the server holds nothing
    assert reader.behind_since_ns == keeping_up_read
    script.now += 60_000_000  # empty reads for longer than the settle time: caught up
    reader.recv_data()
    assert reader.behind_since_ns is None
    assert reader.caught_up_ns is not None and reader.caught_up_ns > keeping_up_read


def test_a_read_timeout_without_a_blocked_put_means_caught_up() -> None:
    script = Scripted([frame(TEXT, b"x"), None, frame(TEXT, b"y")])
    reader = script.reader()
    reader.recv_data()
    script.blocked += 1
    script.waiting = True
    with pytest.raises(WebSocketTimeoutException):
        reader.recv_data()  # the put waited before this read: a timeout proves nothing yet
    assert reader.behind_since_ns is not None and reader.caught_up_ns is None
    script.reads[:0] = [None]
    with pytest.raises(WebSocketTimeoutException):
        reader.recv_data()  # nothing came for a whole timeout and nothing held us back
    assert reader.behind_since_ns is None and reader.caught_up_ns is not None


def test_a_drain_ends_once_a_read_begun_after_it_found_the_socket_empty() -> None:
    script = Scripted([frame(TEXT, b"1"), frame(TEXT, b"2"), None, frame(TEXT, b"3")[:2]])
    reader = script.reader()
    assert reader.recv_data() == (TEXT, b"1")
    reader.drain_after_ns = script.now + 500_000  # before the next read begins
    assert reader.recv_data() == (TEXT, b"2")  # everything read is returned first
    with pytest.raises(WebSocketTimeoutException):
        reader.recv_data()  # a timeout after the drain point: nothing more was sent before it
    with pytest.raises(Drained):
        reader.recv_data()


def test_a_drain_waits_for_a_partly_read_frame() -> None:
    whole = frame(TEXT, b"payload")
    script = Scripted([whole[:3], None, whole[3:]])
    reader = script.reader()
    reader.drain_after_ns = 0
    with pytest.raises(WebSocketTimeoutException):
        reader.recv_data()  # three bytes of a frame, then nothing for a whole timeout
    assert reader.caught_up_ns is not None  # caught up, but a frame is only partly read
    assert reader.recv_data() == (TEXT, b"payload")
    with pytest.raises(Drained):
        reader.recv_data()
