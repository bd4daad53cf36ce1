"""FrameReader: the receiver's own parser of server frames, fed byte streams without sockets."""

from __future__ import annotations

import os
import random
import struct
import time

import pytest
from websocket import (
    ABNF,
    WebSocketConnectionClosedException,
    WebSocketProtocolException,
    WebSocketTimeoutException,
)

from connector.ws.receiver import FrameReader

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


def test_frames_carry_the_time_of_the_read_that_completed_them() -> None:
    whole = frame(TEXT, b"b")
    reads = iter([frame(TEXT, b"a") + whole[:2], whole[2:]])
    reader = FrameReader(lambda _n: next(reads), lambda _p: None, lambda: None)
    before = time.time_ns()
    assert reader.recv_data() == (TEXT, b"a")
    first = reader.read_ns
    assert before <= first
    assert reader.recv_data() == (TEXT, b"b")
    assert first <= reader.read_ns <= time.time_ns()


def test_a_socket_timeout_is_a_websocket_timeout() -> None:
    def read(_n: int) -> bytes:
        raise TimeoutError("timed out")

    with pytest.raises(WebSocketTimeoutException):
        FrameReader(read, lambda _p: None, lambda: None).recv_data()
