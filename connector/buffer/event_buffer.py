"""The bounded buffer between receiver threads (producers) and the task thread (consumer).

Receivers ``put`` one frame at a time; the task ``drain``\\s a whole batch at once. When the
buffer is full, ``put`` *blocks*: the receiver stops reading its socket, the kernel's receive
window fills up and TCP backpressure reaches the server. Nothing is ever dropped here.

Hot-path notes (the target is ~50k frames/s per process): ``put`` takes one lock, appends to a
deque and signals the consumer only when it is actually waiting; ``drain`` swaps the whole deque
out under the lock when the batch takes everything, so the lock is held O(1) in the common case
and the copy to a list happens outside it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import NamedTuple


class Frame(NamedTuple):
    """One raw message as received, before any parsing.

    Attributes:
        payload: the message body. The WebSocket receiver always passes ``bytes`` (text frames
            too: UTF-8 is validated by the task, not on the receiver thread).
        received_ns: wall-clock receive time, ``time.time_ns()`` (the WebSocket receiver stamps
            the time of the socket read that completed the frame).
        source: where the frame came from (a redacted URL, a channel id), so that a task can
            keep per-source state or drop duplicates across two overlapping sockets.
        sent_after_ns: a lower bound of the time the server *sent* the frame (``None``:
            unknown). Its receive time is none: a receiver that has fallen behind reads frames
            that waited long in the server's and the kernel's buffers, and so may what is still
            in flight. The WebSocket receiver knows one from its pings (see
            :mod:`connector.ws.receiver`).
    """

    payload: str | bytes
    received_ns: int
    source: str
    sent_after_ns: int | None = None


class EventBuffer:
    """A bounded, thread-safe FIFO of :class:`Frame` with blocking backpressure.

    Several producers (receiver threads) call :meth:`put`; one consumer (the task thread) calls
    :meth:`drain`. :meth:`close` may be called from any thread and wakes everyone: blocked
    producers get ``False``, the consumer drains what is left and then gets ``[]``.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._items: deque[Frame] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        # Waiter counts let the hot path skip Condition.notify (which is not free) when nobody
        # waits, which is the steady state under load.
        self._waiting_consumers = 0
        self._waiting_producers = 0
        self._closed = False
        self._high_watermark = 0
        self._total_put = 0
        self._total_drained = 0
        self._blocked_put_ns = 0

    def put(self, frame: Frame, timeout_s: float | None = None) -> bool:
        """Append ``frame``, blocking while the buffer is full.

        Args:
            frame: the frame to append.
            timeout_s: how long to wait for room; ``None`` waits until there is room or the
                buffer is closed.

        Returns:
            ``True`` when appended; ``False`` when the buffer is closed or ``timeout_s`` passed
            while it stayed full (the frame was *not* appended: the caller still owns it).
        """
        with self._lock:
            if self._closed:
                return False
            if len(self._items) >= self._capacity and not self._wait_for_room(timeout_s):
                return False
            items = self._items
            items.append(frame)
            self._total_put += 1
            depth = len(items)
            if depth > self._high_watermark:
                self._high_watermark = depth
            if self._waiting_consumers:
                self._not_empty.notify()
            return True

    def _wait_for_room(self, timeout_s: float | None) -> bool:
        """Wait (lock held) until there is room; False if closed or timed out first."""
        started = time.monotonic_ns()
        deadline = None if timeout_s is None else started / 1e9 + timeout_s
        self._waiting_producers += 1
        try:
            while len(self._items) >= self._capacity and not self._closed:
                if deadline is None:
                    self._not_full.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._not_full.wait(remaining)
            return not self._closed
        finally:
            self._waiting_producers -= 1
            self._blocked_put_ns += time.monotonic_ns() - started

    def drain(self, max_items: int, timeout_s: float) -> list[Frame]:
        """Take up to ``max_items`` frames, oldest first.

        Waits up to ``timeout_s`` for the first frame, then returns at once with whatever is
        there (no lingering for a fuller batch). Returns ``[]`` on timeout, and once the buffer
        is closed *and* empty. Meant for a single consumer thread.
        """
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        with self._lock:
            if not self._items and not self._closed and timeout_s > 0:
                deadline = time.monotonic() + timeout_s
                self._waiting_consumers += 1
                try:
                    while not self._items and not self._closed:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._not_empty.wait(remaining)
                finally:
                    self._waiting_consumers -= 1
            items = self._items
            count = len(items)
            if count == 0:
                return []
            if count <= max_items:
                # Swap the deque out: O(1) under the lock, the copy happens below without it.
                self._items = deque()
                taken: deque[Frame] | list[Frame] = items
            else:
                popleft = items.popleft
                taken = [popleft() for _ in range(max_items)]
                count = max_items
            self._total_drained += count
            if self._waiting_producers:
                self._not_full.notify_all()
        return taken if isinstance(taken, list) else list(taken)

    def close(self) -> None:
        """Close the buffer and wake every waiting producer and consumer. Idempotent.

        Frames already buffered can still be drained; further puts return ``False``.
        """
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def capacity(self) -> int:
        """The maximum number of buffered frames."""
        return self._capacity

    @property
    def depth(self) -> int:
        """The number of frames buffered now."""
        return len(self._items)

    @property
    def high_watermark(self) -> int:
        """The largest depth seen since creation."""
        return self._high_watermark

    @property
    def total_put(self) -> int:
        """Frames appended since creation."""
        return self._total_put

    @property
    def total_drained(self) -> int:
        """Frames handed to the consumer since creation."""
        return self._total_drained

    @property
    def blocked_put_s(self) -> float:
        """Total seconds producers spent blocked on a full buffer (backpressure)."""
        return self._blocked_put_ns / 1e9

    def stats(self) -> dict[str, float | int]:
        """A snapshot for status details and metrics."""
        with self._lock:
            return {
                "depth": len(self._items),
                "capacity": self._capacity,
                "high_watermark": self._high_watermark,
                "total_put": self._total_put,
                "total_drained": self._total_drained,
                "blocked_put_s": round(self._blocked_put_ns / 1e9, 6),
            }
