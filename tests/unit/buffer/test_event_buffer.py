from __future__ import annotations

import threading
import time

import pytest

from connector.buffer import EventBuffer, Frame


def frame(n: int, source: str = "s") -> Frame:
    return Frame(f"m{n}".encode(), n, source)


def run_in_thread(target, *args) -> tuple[threading.Thread, list]:
    """Run ``target(*args)`` in a daemon thread; its return value lands in the list."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(target(*args)), daemon=True)
    thread.start()
    return thread, result


def wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.001)


def test_drain_returns_frames_in_put_order() -> None:
    buffer = EventBuffer(10)
    for n in range(5):
        assert buffer.put(frame(n))
    assert [f.received_ns for f in buffer.drain(100, 0)] == [0, 1, 2, 3, 4]
    assert buffer.depth == 0


def test_drain_takes_at_most_max_items_per_batch() -> None:
    buffer = EventBuffer(100)
    for n in range(7):
        buffer.put(frame(n))
    assert [f.received_ns for f in buffer.drain(3, 0)] == [0, 1, 2]
    assert [f.received_ns for f in buffer.drain(3, 0)] == [3, 4, 5]
    assert [f.received_ns for f in buffer.drain(3, 0)] == [6]
    assert buffer.total_drained == 7


def test_drain_returns_empty_list_promptly_on_timeout() -> None:
    buffer = EventBuffer(10)
    started = time.monotonic()
    assert buffer.drain(10, 0.05) == []
    elapsed = time.monotonic() - started
    assert 0.04 <= elapsed < 0.5


@pytest.mark.timeout(10)
def test_drain_wakes_up_when_a_frame_arrives() -> None:
    buffer = EventBuffer(10)
    thread, result = run_in_thread(buffer.drain, 10, 5.0)
    buffer.put(frame(1))
    thread.join(2)
    assert not thread.is_alive()
    assert result == [[frame(1)]]


def test_stats_track_depth_high_watermark_and_totals() -> None:
    buffer = EventBuffer(10)
    for n in range(4):
        buffer.put(frame(n))
    buffer.drain(3, 0)
    buffer.put(frame(9))
    assert (buffer.depth, buffer.high_watermark, buffer.total_put) == (2, 4, 5)
    assert buffer.stats()["depth"] == 2
    assert buffer.capacity == 10


def test_put_times_out_when_full_and_keeps_the_contents() -> None:
    buffer = EventBuffer(2)
    assert buffer.put(frame(0)) and buffer.put(frame(1))
    assert buffer.put(frame(2), timeout_s=0.02) is False
    assert [f.received_ns for f in buffer.drain(10, 0)] == [0, 1]
    assert buffer.blocked_put_s > 0.01


@pytest.mark.timeout(10)
def test_put_blocks_while_full_until_the_consumer_drains() -> None:
    buffer = EventBuffer(2)
    buffer.put(frame(0))
    buffer.put(frame(1))
    thread, result = run_in_thread(buffer.put, frame(2))
    # The producer is parked: nothing was dropped and the buffer did not grow.
    wait_until(lambda: buffer._waiting_producers == 1)
    assert thread.is_alive()
    assert buffer.depth == 2

    assert [f.received_ns for f in buffer.drain(1, 0)] == [0]
    thread.join(2)
    assert result == [True]
    assert [f.received_ns for f in buffer.drain(10, 0)] == [1, 2]
    assert buffer.blocked_put_s > 0


@pytest.mark.timeout(10)
def test_close_wakes_a_blocked_put_with_false() -> None:
    buffer = EventBuffer(1)
    buffer.put(frame(0))
    thread, result = run_in_thread(buffer.put, frame(1))
    wait_until(lambda: buffer._waiting_producers == 1)
    buffer.close()
    thread.join(2)
    assert result == [False]
    assert buffer.closed


@pytest.mark.timeout(10)
def test_close_wakes_a_waiting_drain_and_leftovers_can_still_be_drained() -> None:
    buffer = EventBuffer(4)
    thread, result = run_in_thread(buffer.drain, 10, 30.0)
    wait_until(lambda: buffer._waiting_consumers == 1)
    started = time.monotonic()
    buffer.close()
    thread.join(2)
    assert result == [[]]
    assert time.monotonic() - started < 1.0


def test_frames_buffered_before_close_are_still_drained() -> None:
    buffer = EventBuffer(4)
    buffer.put(frame(0))
    buffer.close()
    assert buffer.put(frame(1)) is False
    assert buffer.drain(10, 1.0) == [frame(0)]
    assert buffer.drain(10, 1.0) == []


@pytest.mark.timeout(10)
def test_several_producers_lose_nothing_and_keep_per_source_order() -> None:
    buffer = EventBuffer(16)
    producers, per_producer = 4, 2000
    start = threading.Event()

    def produce(source: str) -> None:
        start.wait()
        for n in range(per_producer):
            assert buffer.put(Frame(b"x", n, source))

    threads = [
        threading.Thread(target=produce, args=(f"p{i}",), daemon=True) for i in range(producers)
    ]
    for thread in threads:
        thread.start()
    start.set()
    received: list[Frame] = []
    deadline = time.monotonic() + 8
    while len(received) < producers * per_producer and time.monotonic() < deadline:
        received.extend(buffer.drain(100, 0.1))
    for thread in threads:
        thread.join(2)

    assert len(received) == producers * per_producer
    for i in range(producers):
        sequence = [f.received_ns for f in received if f.source == f"p{i}"]
        assert sequence == list(range(per_producer))
    assert buffer.high_watermark <= 16


def test_invalid_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="capacity"):
        EventBuffer(0)
    with pytest.raises(ValueError, match="max_items"):
        EventBuffer(1).drain(0, 0)
