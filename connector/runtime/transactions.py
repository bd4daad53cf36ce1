"""Exactly-once delivery (Kafka Connect's KIP-618): each task writes its records, its dead
letters and the offsets that cover exactly them in one Kafka transaction.

::

    start:  init_transactions()        fences the task's previous generation (same
                                       transactional.id <group.id>-<connector>-<task>) and
                                       aborts whatever transaction it left open
            read the offsets topic to its end (read_committed), then task.start()
            begin_transaction()
    loop:   the task loop as for at-least-once; committer.tick(batch_sent) after each step.
            At a boundary (poll: each poll() batch; interval: transaction.boundary.interval.ms;
            connector: where the task asks), once the batch is wholly handed to the producer:
              produce the offset of the last item of every source partition dispatched in the
              transaction, by the same producer, to the connector's offsets topic
              commit_transaction()     then task.commit(), begin_transaction()
    errors: retriable          the same call again, within transaction.timeout.ms
            txn_requires_abort abort_transaction() and re-send the transaction's polled items,
                               which :class:`ReplayingTask` keeps in memory until the commit
            a record Kafka refused inside the transaction: abort, then the task fails (as in
                               Connect, whatever errors.tolerance: nothing of it is visible)
            fatal              the task fails; fenced: it stops for good (a zombie)

Offsets are committed by the transaction commit, never separately, so a ``read_committed``
consumer sees each record once and a restarted task resumes exactly after the last committed
transaction. What the task had polled but not committed is lost with the process: a replayable
source (``datagen``, a durable buffer) polls it again from the committed offset; a live source
reports it as a gap. The seam for a durable buffer: the source offset travels with each record,
``task.commit()`` is called only after a commit (the moment to truncate a buffer), and
:class:`ReplayingTask` is what a source that can rewind itself would replace.

Threads: everything here runs on the task thread, except the delivery callbacks, which only
touch :class:`TransactionRecords` (on the producer's poller thread). ``commit_transaction`` and
``abort_transaction`` serve every delivery report of the transaction before they return, so
the records of a finished transaction get no callback afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from connector.api import (
    Polled,
    SourceOffset,
    SourcePartition,
    SourceTask,
    TaskContext,
    TaskFailedError,
)
from connector.runtime.error_policy import RetryBudget
from connector.runtime.metrics import WorkerMetrics
from connector.runtime.offset_store import KafkaOffsetStore, offset_key
from connector.runtime.producer import (
    DEFAULT_MESSAGE_MAX_BYTES,
    DEFAULT_PRODUCER_CONFIG,
    REQUIRED_PRODUCER_CONFIG,
    DeliveryCallback,
)
from connector.runtime.submitted import Submitted, SubmittedRecords

logger = logging.getLogger(__name__)

# An interval transaction is committed early once it holds this many polled items: they are
# kept in memory until the commit, to be re-sent after an abort.
MAX_OPEN_ITEMS = 20_000
# Broker default of transaction.max.timeout.ms; a longer transaction.timeout.ms is refused.
_MAX_TRANSACTION_TIMEOUT_MS = 900_000
# Each blocking transactional call waits at most this long per try, so that it can be retried.
_CALL_SLICE_S = 5.0
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT, KafkaError._DESTROY})
# Delivery errors caused by a record itself: sending it again cannot succeed.
_RECORD_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
    }
)


_FENCED_CODES = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)


class ProducerFencedError(TaskFailedError):
    """A newer instance of the task's transactional id took over: this one is a zombie and
    stops for good (it is not restarted, which would fence the new owner in turn)."""


def is_fenced(err: KafkaError) -> bool:
    return err.code() in _FENCED_CODES


def transactional_id(group_id: str, connector_name: str, task_id: int) -> str:
    """Connect's ``Worker.taskTransactionalId``: ``<group.id>-<connector>-<task>``."""
    return f"{group_id}-{connector_name}-{task_id}"


def transaction_timeout_ms(interval_ms: int) -> int:
    """Default ``transaction.timeout.ms``: Java's 60 s, or longer for long intervals so that a
    transaction is never timed out by its coordinator before its boundary."""
    return min(_MAX_TRANSACTION_TIMEOUT_MS, max(60_000, 3 * interval_ms))


@dataclass(frozen=True)
class TransactionSettings:
    """What the worker decides for one exactly-once task."""

    transactional_id: str
    offsets_topic: str
    boundary: str  # poll | interval | connector
    interval_s: float
    transaction_timeout_s: float
    init_timeout_s: float = 60.0


class TransactionalProducer:
    """One task's transactional producer (a :class:`RecordProducer`), plus its poller thread.

    ``produce`` never lets a transaction-state error reach the pipeline as a refused record:
    when the open transaction can take no more records (it must be aborted, or the producer
    is fenced), it raises ``BufferError`` like a full queue, so the pipeline keeps the rest of
    the batch and the committer aborts at its next tick.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        transactional_id: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        transaction_timeout_ms: int = 60_000,
    ) -> None:
        self.transactional_id = transactional_id
        self._fatal: KafkaError | None = None
        self.abortable: KafkaError | None = None
        self.produced = 0  # records queued in the open transaction
        conf: dict[str, Any] = {
            **DEFAULT_PRODUCER_CONFIG,
            "transaction.timeout.ms": transaction_timeout_ms,
            **dict(overrides or {}),
            **REQUIRED_PRODUCER_CONFIG,
            "bootstrap.servers": bootstrap_servers,
            "transactional.id": transactional_id,
            "error_cb": self._on_error,
        }
        self._conf = conf
        self.transaction_timeout_s = int(conf["transaction.timeout.ms"]) / 1000.0
        self.max_message_bytes = int(conf.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
        self._open()

    def _open(self) -> None:
        self.producer = Producer(self._conf)
        self._produce = self.producer.produce
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._poll_loop, name=f"producer-{self.transactional_id}", daemon=True
        )
        self._thread.start()

    def renew(self, init_timeout_s: float) -> None:
        """Replace the librdkafka producer after a fatal error that was not a real fencing
        (the coordinator aborted a transaction that outlived ``transaction.timeout.ms``): the
        new one takes the same transactional id over with ``init_transactions``."""
        self.close()
        self._fatal = None
        self.abortable = None
        self._open()
        self.init_transactions(init_timeout_s)

    @property
    def fatal_error(self) -> KafkaError | None:
        return self._fatal

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
            if is_fenced(err):
                logger.error("%s: fenced by a newer instance", self.transactional_id)
            else:
                logger.error("Kafka producer %s fatal error: %s", self.transactional_id, err)
        else:
            logger.warning("Kafka producer %s: %s", self.transactional_id, err)

    def _poll_loop(self) -> None:
        poll, stop = self.producer.poll, self._stop
        while not stop.is_set():
            try:
                poll(0.05)
            except KafkaException as exc:  # a fatal error surfaces here too (fenced)
                err = exc.args[0]
                if err.fatal() and self._fatal is None:
                    self._on_error(err)
                stop.wait(0.05)

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Any = None,
        timestamp: int = 0,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        try:
            self._produce(
                topic, value, key, headers=headers, timestamp=timestamp, on_delivery=on_delivery
            )
            self.produced += 1
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in (KafkaError._STATE, KafkaError._FATAL) or err.txn_requires_abort():
                if self.abortable is None:
                    self.abortable = err
                raise BufferError(f"the open transaction takes no more records: {err}") from None
            raise

    def produce_offset(self, topic: str, key: bytes, value: bytes | None, timeout_s: float) -> None:
        """Queue one offsets record of the open transaction, waiting (bounded) for room."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._produce(topic, value, key)
                return
            except BufferError:
                if time.monotonic() >= deadline:
                    raise
                self.producer.poll(0.01)

    # -- the transactional calls, each retried while it says it is retriable ---------------

    def init_transactions(self, timeout_s: float) -> None:
        self._call(self.producer.init_transactions, timeout_s)

    def begin_transaction(self) -> None:
        self.producer.begin_transaction()
        self.produced = 0

    def commit_transaction(self, timeout_s: float) -> None:
        self._call(self.producer.commit_transaction, timeout_s)

    def abort_transaction(self, timeout_s: float) -> None:
        self._call(self.producer.abort_transaction, timeout_s)
        self.abortable = None

    def _call(self, call: Callable[[float], None], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                call(max(0.1, min(_CALL_SLICE_S, remaining)))
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or time.monotonic() >= deadline:
                    raise
                logger.debug("%s: retrying %s: %s", self.transactional_id, call.__name__, err)

    def close(self) -> None:
        """Stop the poller. An open transaction is left to the next instance's
        ``init_transactions`` (or the coordinator's timeout) to abort."""
        self._stop.set()
        self._thread.join(timeout=2.0)


class TransactionRecords(SubmittedRecords):
    """:class:`SubmittedRecords` of the open transaction.

    Every item dispatched in the transaction is submitted here in order, as for
    at-least-once, so the offsets to commit are those of the last item of each source
    partition. A delivery error is the transaction's, not a refusal to dead-letter: the
    commit fails and the transaction is aborted as a whole. Purge reports (records dropped by
    an abort) are expected and ignored.
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[Any] = []

    def _refused(self, handle: Submitted, err: Any, msg: Any) -> None:
        if err.code() not in _PURGED:
            self.errors.append(err)

    def fail(self, err: Any) -> None:
        if err.code() not in _PURGED:
            self.errors.append(err)

    def dispatched(self) -> tuple[int, dict[Any, tuple[SourcePartition, SourceOffset]]]:
        """How many items the transaction holds, and the offset of the last item of each
        source partition (what its commit makes durable)."""
        count = 0
        offsets: dict[Any, tuple[SourcePartition, SourceOffset]] = {}
        for key, state in self._partitions.items():
            pending = state.pending
            count += len(pending)
            for handle in reversed(pending):
                if handle.offset is not None:
                    offsets[key] = (state.partition, handle.offset)
                    break
        return count, offsets

    def discard(self) -> None:
        """The transaction ended (committed or aborted): forget its items."""
        for state in self._partitions.values():
            state.pending.clear()
        self.errors = []
        self.take_refusals()
        with self._lock:
            self._in_flight = 0
            self._all_acked.notify_all()


class ReplayingTask(SourceTask):
    """Wraps the plugin's task: keeps every batch ``poll()`` returned since the last commit,
    and after an abort returns them again, in order, before polling the task for more."""

    def __init__(self, task: SourceTask) -> None:
        self.task = task
        self._open: list[list[Polled]] = []
        self._replay: deque[list[Polled]] = deque()
        self.open_items = 0

    def start(self, ctx: TaskContext) -> None:
        self.task.start(ctx)

    def poll(self, timeout_s: float) -> list[Polled]:
        batch = self._replay.popleft() if self._replay else self.task.poll(timeout_s)
        if batch:
            self._open.append(batch)
            self.open_items += len(batch)
        return batch

    @property
    def replaying(self) -> bool:
        """Some batches of an aborted transaction are still to be polled again."""
        return bool(self._replay)

    def committed(self) -> None:
        """The open transaction is durable (or dropped on purpose): nothing to re-send."""
        self._open = []
        self.open_items = 0

    def rewind(self) -> int:
        """The open transaction was aborted: its batches are polled again first."""
        self._replay.extendleft(reversed(self._open))
        rewound = self.open_items
        self.committed()
        return rewound

    def commit(self) -> None:
        self.task.commit()

    def stop(self) -> None:
        self.task.stop()


class TaskTransactionContext:
    """:class:`~connector.api.TransactionContext`: the task's requests, taken by the committer
    at the next batch boundary. An abort request wins over a commit request."""

    def __init__(self) -> None:
        self._request: str | None = None

    def commit_transaction(self) -> None:
        if self._request is None:
            self._request = "commit"

    def abort_transaction(self) -> None:
        self._request = "abort"

    def take(self) -> str | None:
        request, self._request = self._request, None
        return request


class TransactionalCommitter:
    """Ends the task's transactions at their boundaries; the exactly-once counterpart of
    :class:`~connector.runtime.offset_committer.OffsetCommitter` (same ``tick``/``flush``)."""

    def __init__(
        self,
        *,
        connector_name: str,
        task_id: int,
        settings: TransactionSettings,
        producer: TransactionalProducer,
        records: TransactionRecords,
        source: ReplayingTask,
        store: KafkaOffsetStore,
        transaction_context: TaskTransactionContext | None,
        retries: RetryBudget,
        wait: Callable[[float], bool],
        on_committed: Callable[[], None],
        metrics: WorkerMetrics,
        clock: Callable[[], float],
    ) -> None:
        self._connector_name = connector_name
        self._name = f"{connector_name}-{task_id}"
        self._settings = settings
        self._producer = producer
        self._records = records
        self._source = source
        self._store = store
        self._context = transaction_context
        self._retries = retries
        self._wait = wait
        self._on_committed = on_committed
        self._clock = clock
        self._timeout_s = producer.transaction_timeout_s
        self._opened_at = clock()  # the interval runs from the end of the previous transaction
        self._first_sent_at: float | None = None  # the coordinator's timer runs from here
        self._resend = False  # re-sending an aborted transaction: commit it once re-sent
        self._interval = settings.boundary == "interval"
        self._poll = settings.boundary == "poll"
        labels = {"connector": connector_name, "task": str(task_id)}
        self._committed = metrics.transactions.labels(**labels, outcome="committed")
        self._aborted = metrics.transactions.labels(**labels, outcome="aborted")
        self._commit_seconds = metrics.transaction_commit_seconds.labels(**labels)
        self._size = metrics.transaction_size.labels(**labels)
        self._in_flight = metrics.in_flight.labels(**labels)

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        """Fence the previous generation of this task, then read the committed offsets (only
        now: an open transaction of the fenced instance would hold a read_committed read)."""
        settings = self._settings
        try:
            self._producer.init_transactions(settings.init_timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal():
                raise self._failure(err) from None
            raise TaskFailedError(
                f"task {self._name}: init_transactions for transactional.id "
                f"{settings.transactional_id} failed: {err.str()} (does the broker support "
                "transactions? a single broker needs transaction.state.log.replication.factor=1 "
                "and transaction.state.log.min.isr=1)"
            ) from None
        self._store.read_to_end(
            timeout_s=30.0 + settings.interval_s, connector=self._connector_name
        )
        self._producer.begin_transaction()
        self._opened_at = self._clock()
        logger.info(
            "task %s: exactly-once, transactional.id %s, boundary %s",
            self._name,
            settings.transactional_id,
            settings.boundary,
        )

    # -- the loop --------------------------------------------------------------------------

    def tick(self, batch_sent: bool = True) -> bool:
        """End the transaction when its boundary is reached and the batch is wholly sent.
        Returns True when the transaction was aborted and its items will be polled again:
        the caller drops what it still holds of the batch."""
        producer = self._producer
        if producer.fatal_error is not None:
            return self._on_fatal(producer.fatal_error)
        if producer.abortable is not None or self._records.errors:
            return self._abort("the transaction failed")
        if self._first_sent_at is None and producer.produced:
            self._first_sent_at = self._clock()
        if not batch_sent:
            return False
        if self._resend:
            due = not self._source.replaying
        elif self._poll:
            due = True
        elif self._interval:
            due = (
                self._clock() - self._opened_at >= self._settings.interval_s
                or self._source.open_items >= MAX_OPEN_ITEMS
            )
        else:
            assert self._context is not None
            request = self._context.take()
            if request == "abort":
                return self._drop()
            due = request == "commit"
        return self._commit(self._timeout_s) if due else False

    def flush(self, timeout_s: float) -> bool:
        """Commit the open transaction now (graceful stop). True when nothing is left
        uncommitted."""
        producer = self._producer
        if (
            producer.fatal_error is not None
            or producer.abortable is not None
            or (self._records.errors)
        ):
            logger.warning(
                "task %s: the open transaction failed at stop and is not committed; its records "
                "are not delivered (a replayable source sends them again from the committed "
                "offset)",
                self._name,
            )
            return False
        return not self._commit(max(0.1, timeout_s))

    def abandon(self) -> None:
        """The task failed: abort the open transaction (best effort), never commit it."""
        if self._producer.fatal_error is not None:
            return
        try:
            self._producer.abort_transaction(2.0)
        except KafkaException as exc:
            logger.warning("task %s: abort after failure: %s", self._name, exc.args[0])
        self._records.discard()

    def close(self) -> None:
        self._producer.close()

    # -- ending transactions ---------------------------------------------------------------

    def _commit(self, timeout_s: float) -> bool:
        count, offsets = self._records.dispatched()
        if not count:
            self._opened_at = self._clock()
            return False
        started = self._clock()
        written = self._produce_offsets(offsets, timeout_s)
        try:
            self._producer.commit_transaction(timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal():
                return self._on_fatal(err)
            return self._abort(f"commit failed: {err.str()}", err)
        self._finished(written, count, started)
        return False

    def _produce_offsets(
        self, offsets: Mapping[Any, tuple[SourcePartition, SourceOffset]], timeout_s: float
    ) -> dict[bytes, bytes | None]:
        written: dict[bytes, bytes | None] = {}
        for partition, offset in offsets.values():
            key = offset_key(self._connector_name, partition)
            written[key] = orjson.dumps(dict(offset))
        topic = self._settings.offsets_topic
        try:
            for key, value in written.items():
                self._producer.produce_offset(topic, key, value, timeout_s)
        except BufferError:
            pass  # the transaction cannot take them: its commit fails and aborts it
        return written

    def _finished(self, written: dict[bytes, bytes | None], count: int, started: float) -> None:
        self._store.apply(written)
        self._records.discard()
        self._source.committed()
        self._retries.succeeded()
        self._resend = False
        self._committed.inc()
        self._size.observe(count)
        self._commit_seconds.observe(self._clock() - started)
        self._in_flight.set(0)
        self._begin()
        self._on_committed()

    def _begin(self) -> None:
        self._producer.begin_transaction()
        self._opened_at = self._clock()
        self._first_sent_at = None

    def _drop(self) -> bool:
        """The task asked for an abort: its records are dropped, their offsets committed
        anyway (Connect does the same, so that the task does not read them again)."""
        _, offsets = self._records.dispatched()
        fatal = self._end_by_abort()
        if fatal is not None:
            raise self._failure(fatal)
        self._source.committed()
        if not offsets:
            return False
        started = self._clock()
        written = self._produce_offsets(offsets, self._timeout_s)
        try:
            self._producer.commit_transaction(self._timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal():
                raise self._failure(err) from None
            raise TaskFailedError(
                f"task {self._name}: could not commit the offsets of an aborted transaction: "
                f"{err.str()}"
            ) from None
        self._finished(written, 0, started)
        return False

    def _end_by_abort(self) -> KafkaError | None:
        """Abort the open transaction; the producer's fatal error instead, when it has one
        (then nothing could be aborted, and the caller decides)."""
        try:
            self._producer.abort_transaction(self._timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal():
                return err  # type: ignore[no-any-return]
            raise TaskFailedError(
                f"task {self._name}: could not abort its transaction: {err.str()}"
            ) from None
        self._aborted.inc()
        self._records.discard()
        self._in_flight.set(0)
        self._begin()
        return None

    def _abort(self, reason: str, err: KafkaError | None = None) -> bool:
        """Abort after a failure; re-send the transaction's items, or fail the task when a
        record itself was refused (sending it again would fail again)."""
        causes = [*self._records.errors, *([err] if err is not None else [])]
        if self._producer.abortable is not None:
            causes.append(self._producer.abortable)
        refused = next((e for e in causes if e.code() in _RECORD_ERRORS), None)
        fatal = self._end_by_abort()
        if fatal is not None:  # fenced (or timed out) while the transaction failed
            return self._on_fatal(fatal)
        if refused is not None:
            self._source.committed()
            raise TaskFailedError(
                f"task {self._name}: Kafka refused a record of the transaction "
                f"({refused.str()}); the transaction was aborted: none of its records is "
                "visible to read_committed consumers and no offset moved. Under exactly-once a "
                "record Kafka refuses fails the task whatever errors.tolerance (as in Connect)"
            )
        return self._resend_later(next((e.str() for e in causes), reason))

    def _resend_later(self, why: str) -> bool:
        """The transaction is gone: back off, then re-send its polled items and commit them
        as soon as they are sent again, whatever the boundary (so that recovery converges)."""
        delay = self._retries.failed()
        if delay is None:
            self._source.committed()
            raise TaskFailedError(
                f"task {self._name}: transactions kept failing for errors.retry.timeout: {why}"
            )
        rewound = self._source.rewind()
        self._resend = True
        logger.warning(
            "task %s: transaction aborted (%s); re-sending its %d polled items in %.1fs",
            self._name,
            why,
            rewound,
            delay,
        )
        self._wait(delay)
        return True

    def _on_fatal(self, err: KafkaError) -> bool:
        """A fatal producer error. librdkafka reports a transaction the coordinator aborted
        for outliving ``transaction.timeout.ms`` as fenced: when the open transaction is that
        old, take the transactional id over again with a new producer and re-send; otherwise
        a newer instance fenced this one, or the producer cannot go on: the task fails."""
        producer = self._producer
        started = self._first_sent_at
        timed_out = (
            is_fenced(err)
            and started is not None
            and self._clock() - started >= producer.transaction_timeout_s
        )
        if not timed_out:
            raise self._failure(err)
        self._aborted.inc()
        self._records.discard()
        self._in_flight.set(0)
        logger.warning(
            "task %s: the coordinator aborted a transaction open longer than "
            "transaction.timeout.ms (%.0f s): raise producer.transaction.timeout.ms, lower "
            "transaction.boundary.interval.ms or use transaction.boundary poll",
            self._name,
            producer.transaction_timeout_s,
        )
        try:
            producer.renew(self._settings.init_timeout_s)
        except KafkaException as exc:
            raise self._failure(exc.args[0]) from None
        self._begin()
        return self._resend_later(f"transaction timed out: {err.str()}")

    def _failure(self, err: KafkaError) -> TaskFailedError:
        tid = self._settings.transactional_id
        if is_fenced(err):
            return ProducerFencedError(
                f"task {self._name} fenced: another instance with transactional.id {tid} took "
                "this task over (a worker with the same group.id runs the same connector); "
                f"this instance stops and commits nothing more ({err.str()})"
            )
        return TaskFailedError(f"task {self._name}: Kafka producer failed fatally: {err.str()}")
