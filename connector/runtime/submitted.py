"""Which source offsets are committable: Kafka Connect's ``SubmittedRecords``.

Everything that leaves ``poll()`` with a source offset is *submitted* here in poll order, per
source partition, before it is produced: records, dead letters, and records that will never be
produced (filtered, or skipped under ``errors.tolerance=all``), which are submitted already
acked. The delivery callback *acks* a record from whichever thread runs ``producer.poll()``.
The committable offset of a partition is that of the last record of its acked prefix, so an
offset is never committed ahead of an earlier record that Kafka has not confirmed.

A record Kafka *refuses* is not acked: the callback queues it as a :class:`Refusal`, and the
task thread decides (``errors.tolerance``) whether to dead-letter it, whose ack then acks the
refused record in its place, to skip it, or to fail. Callbacks never produce or log.

Threads: ``submit``, ``retract``, ``take_refusals`` and ``committable`` run on the task thread;
``Submitted.on_delivery`` and ``on_dead_letter_delivery`` on the producer's polling thread. An
ack only flips a flag (atomic under the GIL) and bumps a counter under the lock; the deques are
only touched on the task thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.api import DeliveryError, SourceOffset, SourcePartition


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record Kafka did not accept, as the delivery callback saw it."""

    handle: Submitted
    error: Any
    topic: str | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


class Submitted:
    """The handle of one submitted record; its ``on_delivery`` is the producer callback."""

    __slots__ = ("acked", "offset", "partition", "tracker")

    def __init__(
        self,
        tracker: SubmittedRecords,
        partition: SourcePartition | None,
        offset: SourceOffset | None,
    ) -> None:
        self.tracker = tracker
        self.partition = partition
        self.offset = offset
        self.acked = False

    def ack(self) -> None:
        if not self.acked:
            self.acked = True
            self.tracker._on_ack()

    def on_delivery(self, err: Any, msg: Any) -> None:
        """Producer callback of the record itself."""
        if err is None:
            self.ack()
        else:
            self.tracker._refused(self, err, msg)

    def on_dead_letter_delivery(self, err: Any, msg: Any) -> None:
        """Producer callback of the dead letter written in this record's place: its ack acks
        the record; its refusal fails the task (a dead letter is never dead-lettered again)."""
        if err is None:
            self.ack()
        else:
            self.tracker.fail(err)


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
        self._refusals: deque[Refusal] = deque()  # appended by callbacks, popped by the task
        self._all_acked = threading.Condition(self._lock)

    def submit(
        self, partition_key: Any, partition: SourcePartition | None, offset: SourceOffset | None
    ) -> Submitted:
        """Register a record before it is produced. ``partition_key`` is a hashable form of
        ``partition`` (records without a partition are tracked but never committed)."""
        handle = Submitted(self, partition, offset if partition is not None else None)
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
        """A record that will not be produced (filtered, skipped) still moves its partition's
        offset forward once everything before it is acked."""
        self.submit(partition_key, partition, offset).ack()

    def retract(self, partition_key: Any, handle: Submitted) -> None:
        """Undo the latest :meth:`submit` of ``partition_key``: the producer did not take the
        record (its queue was full) and it will be submitted again, in the same place."""
        pending = self._partitions[partition_key].pending
        if not pending or pending[-1] is not handle or handle.acked:
            raise RuntimeError("only the latest unacked submission of a partition can be retracted")
        pending.pop()
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._all_acked.notify_all()

    def _on_ack(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._acked_total += 1
            if self._in_flight == 0:
                self._all_acked.notify_all()

    def _refused(self, handle: Submitted, err: Any, msg: Any) -> None:
        if msg is None:
            self.fail(err)
            return
        self._refusals.append(
            Refusal(handle, err, msg.topic(), msg.key(), msg.value(), list(msg.headers() or []))
        )

    def take_refusals(self) -> list[Refusal]:
        """The records Kafka refused since the last call (task thread)."""
        refusals = self._refusals
        taken = []
        while refusals:
            taken.append(refusals.popleft())
        return taken

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
