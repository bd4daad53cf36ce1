"""Which source offsets are committable: Kafka Connect's ``SubmittedRecords``.

Every record is *submitted* (in poll order, per source partition) before it is produced; the
delivery callback *acks* it from whichever thread runs ``producer.poll()``. The committable
offset of a partition is that of the last record of its acked prefix, so an offset is never
committed ahead of an earlier record that Kafka has not confirmed.

Threads: ``submit`` and ``committable`` run on the task thread; ``Submitted.ack``/``fail`` run
on the producer's polling thread. An ack only flips a flag (atomic under the GIL) and bumps a
counter under the lock; the deques are only touched on the task thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from connector.api import DeliveryError, SourceOffset, SourcePartition


class Submitted:
    """The handle of one produced record; its ``on_delivery`` is the producer callback."""

    __slots__ = ("acked", "offset", "tracker")

    def __init__(self, tracker: SubmittedRecords, offset: SourceOffset | None) -> None:
        self.tracker = tracker
        self.offset = offset
        self.acked = False

    def ack(self) -> None:
        self.acked = True
        self.tracker._on_ack()

    def on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.ack()
        else:
            self.tracker._on_failure(self, err, msg)


class _Partition:
    __slots__ = ("partition", "pending")

    def __init__(self, partition: SourcePartition) -> None:
        self.partition = partition
        self.pending: deque[Submitted] = deque()


class SubmittedRecords:
    """Per-task tracker of in-flight records and their offsets."""

    def __init__(self) -> None:
        self._partitions: dict[Any, _Partition] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self._acked_total = 0
        self._failure: DeliveryError | None = None
        self._failure_handler: Any = None
        self._all_acked = threading.Condition(self._lock)

    def set_failure_handler(self, handler: Any) -> None:
        """``handler(submitted, err, msg) -> bool``: True when the handler took the failed
        record over (for example re-produced it to the dead-letter topic) and will ack or fail
        ``submitted`` itself; False latches the failure."""
        self._failure_handler = handler

    def submit(
        self, partition_key: Any, partition: SourcePartition | None, offset: SourceOffset | None
    ) -> Submitted:
        """Register a record before it is produced. ``partition_key`` is a hashable form of
        ``partition`` (records without a partition are tracked but never committed)."""
        handle = Submitted(self, offset if partition is not None else None)
        state = self._partitions.get(partition_key)
        if state is None:
            state = self._partitions[partition_key] = _Partition(partition or {})
        state.pending.append(handle)
        with self._lock:
            self._in_flight += 1
        return handle

    def submit_acked(
        self, partition_key: Any, partition: SourcePartition | None, offset: SourceOffset | None
    ) -> None:
        """A record that will not be produced (filtered, dead-lettered) still moves its
        partition's offset forward once everything before it is acked."""
        self.submit(partition_key, partition, offset).ack()

    def _on_ack(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._acked_total += 1
            if self._in_flight == 0:
                self._all_acked.notify_all()

    def _on_failure(self, handle: Submitted, err: Any, msg: Any = None) -> None:
        handler = self._failure_handler
        if handler is not None and handler(handle, err, msg):
            return
        self.fail(err)

    def fail(self, err: Any) -> None:
        """Latch ``err`` as this task's delivery failure (the first one wins)."""
        with self._lock:
            if self._failure is None:
                self._failure = DeliveryError(
                    f"Kafka did not accept a record: {err}",
                    code=err.name() if hasattr(err, "name") else str(err),
                    retriable=bool(getattr(err, "retriable", lambda: False)()),
                )

    def raise_if_failed(self) -> None:
        """Raise the first delivery failure seen (latched), on the task thread."""
        failure = self._failure
        if failure is not None:
            raise failure

    def committable(self) -> dict[Any, tuple[SourcePartition, SourceOffset]]:
        """Pop every acked prefix; return ``{partition_key: (partition, last acked offset)}``."""
        result: dict[Any, tuple[SourcePartition, SourceOffset]] = {}
        for key, state in self._partitions.items():
            pending = state.pending
            last: SourceOffset | None = None
            while pending and pending[0].acked:
                handle = pending.popleft()
                if handle.offset is not None:
                    last = handle.offset
            if last is not None:
                result[key] = (state.partition, last)
        return result

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def acked_total(self) -> int:
        return self._acked_total

    def wait_all_acked(self, timeout_s: float) -> bool:
        """Block until nothing is in flight (shutdown), or ``timeout_s``."""
        with self._lock:
            return self._all_acked.wait_for(lambda: self._in_flight == 0, timeout_s)

    def pending_counts(self) -> Mapping[Any, int]:
        return {key: len(state.pending) for key, state in self._partitions.items()}
