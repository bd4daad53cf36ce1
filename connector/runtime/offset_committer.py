"""Commits one task's acked offsets to the offsets topic, ticked from the task loop.

At most one offsets write is in flight per task, so the loop never stalls on the offsets topic
(with 1,000 topics a blocking write took 30-50 ms) and writes land in order: a newer write is
only started once the previous one finished, so the offsets topic never goes back. Offsets acked
meanwhile wait for the next write. :meth:`OffsetCommitter.tick` runs on every loop iteration:

- a finished write is applied at once (``task.commit()`` is called);
- a failed one is retried at once, then with backoff, never waiting a whole flush interval;
- a write in flight longer than ``offset.flush.timeout.ms`` is abandoned and its offsets are
  written again (a late success of the old write is harmless: the new one repeats or supersedes
  it, and lands after it).

Threads: the task thread only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from connector.api import SourceOffset, SourcePartition
from connector.backoff import ExponentialBackoff
from connector.runtime.metrics import RECEIVED_TIME_KEYS, WorkerMetrics
from connector.runtime.submitted import SubmittedRecords

logger = logging.getLogger(__name__)


class PendingWrite(Protocol):
    """An offsets write in flight."""

    error: str | None

    def done(self) -> bool:
        """Whether it finished (successfully or not); never blocks."""
        ...

    def wait(self, timeout_s: float) -> bool:
        """Wait, bounded, for it to finish."""
        ...


class OffsetWriter(Protocol):
    """What the committer needs of the offset store: a Kafka topic today, a transaction later."""

    def write_async(
        self, connector_name: str, offsets: Iterable[tuple[SourcePartition, SourceOffset | None]]
    ) -> PendingWrite:
        """Start writing ``offsets``; never blocks."""
        ...


class OffsetCommitter:
    """The acked prefix of every source partition of one task, written to an
    :class:`OffsetWriter` every ``interval_s`` and on demand."""

    def __init__(
        self,
        *,
        connector_name: str,
        task_id: int,
        store: OffsetWriter,
        submitted: SubmittedRecords,
        interval_s: float,
        timeout_s: float,
        on_committed: Callable[[], None],
        metrics: WorkerMetrics,
        clock: Callable[[], float],
    ) -> None:
        self._connector_name = connector_name
        self._store = store
        self._submitted = submitted
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._on_committed = on_committed
        self._clock = clock
        self._uncommitted: dict[Any, tuple[SourcePartition, SourceOffset]] = {}
        self._committing: dict[Any, tuple[SourcePartition, SourceOffset]] = {}
        self._write: PendingWrite | None = None
        self._write_started = 0.0
        self._next_write = clock() + interval_s
        retry_cap_s = min(interval_s, 10.0)
        self._retry = ExponentialBackoff(min(0.1, retry_cap_s), retry_cap_s, jitter=0.0)
        labels = {"connector": connector_name, "task": str(task_id)}
        self._succeeded = metrics.offset_commits.labels(**labels, outcome="success")
        self._failed = metrics.offset_commits.labels(**labels, outcome="failure")
        self._in_flight = metrics.in_flight.labels(**labels)
        self._metrics, self._task_id = metrics, task_id
        self._e2e_latency = metrics.e2e_latency.labels(**labels)

    def tick(self, batch_sent: bool = True) -> None:
        """Finish the write in flight if it is done, and start the next one when it is due.
        (``batch_sent`` is for the transactional committer: offsets here move per record.)"""
        now = self._clock()
        self._collect()
        write = self._write
        if write is not None:
            if write.done():
                self._finished(write, now)
            elif now - self._write_started >= self._timeout_s:
                self._abandon(now, f"not written within {self._timeout_s:.1f}s")
        if self._write is None and self._uncommitted and now >= self._next_write:
            self._start(now)

    def flush(self, timeout_s: float) -> bool:
        """Write everything committable now and wait, bounded, until it is durable (shutdown,
        failure). True when every offset acked so far is committed."""
        deadline = self._clock() + timeout_s
        while True:
            self._collect()
            write = self._write
            if write is not None:
                if not write.wait(max(0.0, deadline - self._clock())):
                    return False
                self._finished(write, self._clock())
            if not self._uncommitted:
                return self._write is None
            if self._clock() >= deadline:
                return False
            self._start(self._clock())

    def _collect(self) -> None:
        acked = self._submitted.committable()
        if acked:
            self._observe_latency(acked)
        self._uncommitted.update(acked)
        self._in_flight.set(self._submitted.in_flight)

    def _observe_latency(self, acked: dict[Any, tuple[SourcePartition, SourceOffset]]) -> None:
        """Receive-to-ack latency of the newest acked record of each partition."""
        now_ms = time.time() * 1000.0
        for _, offset in acked.values():
            for key in RECEIVED_TIME_KEYS:
                received = offset.get(key)
                if isinstance(received, int | float) and not isinstance(received, bool):
                    self._e2e_latency.observe(max(0.0, now_ms - received) / 1000.0)
                    break

    def _start(self, now: float) -> None:
        try:
            self._write = self._store.write_async(
                self._connector_name, list(self._uncommitted.values())
            )
        except Exception as exc:
            self._failed.inc()
            self._metrics.observe_commit(self._connector_name, self._task_id, None)
            self._next_write = now + self._retry.next_delay()
            logger.warning("offset commit of %s failed, will retry: %s", self._connector_name, exc)
            return
        self._write_started = now
        self._committing, self._uncommitted = self._uncommitted, {}

    def _finished(self, write: PendingWrite, now: float) -> None:
        self._write = None
        if write.error is not None:
            self._abandon(now, write.error)
            return
        self._committing = {}
        self._retry.reset()
        self._next_write = (
            self._write_started + self._interval_s
        )  # the interval runs from the start
        self._succeeded.inc()
        self._metrics.observe_commit(self._connector_name, self._task_id, now - self._write_started)
        self._on_committed()

    def _abandon(self, now: float, reason: str) -> None:
        """The write failed or hung: keep its offsets (newer ones win) and retry soon."""
        self._write = None
        for key, value in self._committing.items():
            self._uncommitted.setdefault(key, value)
        self._committing = {}
        self._failed.inc()
        self._metrics.observe_commit(self._connector_name, self._task_id, None)
        self._next_write = now + self._retry.next_delay()
        logger.warning("offset commit of %s failed, will retry: %s", self._connector_name, reason)
