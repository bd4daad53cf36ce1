"""One task's loop: poll -> pipeline -> produce -> commit, on the task's own thread.

::

    start:    prepare (topics, schemas)  ->  task.start(ctx)
    loop:     polled = polled or poll()            RetriableError: back off (errors.retry.*)
              polled = pipeline.send(polled)       returns the unsent tail: queue full, registry
              pipeline.resolve_refusals()          records Kafka refused: errors.tolerance
              submitted.raise_if_failed()
              committer.tick()                     the acked prefix, one write in flight
    stop:     task.stop(); drain what it already received; wait for acks; commit
              all within offset.flush.timeout.ms, even when Kafka is unreachable

The stages are small objects of their own (:class:`RecordPipeline`, :class:`ErrorPolicy`,
:class:`OffsetCommitter`) and the loop takes small producer and offset-store interfaces. Offsets
are never committed by flushing the data producer: only the acked prefix of each source
partition is written.

Exactly-once (``transactions`` given, see ``transactions.py``): the same loop with the task's
own transactional producer, :class:`TransactionalCommitter` in place of the offset committer
(``tick`` ends a transaction at its boundary, and says when it aborted one: the loop then drops
the batch it holds, which the :class:`ReplayingTask` wrapper polls again), fencing and the
offsets read before ``task.start``, and no final commit after a failure.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping

from connector.api import AvroSchema, Polled, RetriableError, SourceTask, TaskFailedError
from connector.config.models import ConnectorConfig, WorkerConfig
from connector.runtime.context import RuntimeTaskContext
from connector.runtime.error_policy import ErrorPolicy
from connector.runtime.metrics import WorkerMetrics
from connector.runtime.offset_committer import OffsetCommitter, OffsetWriter
from connector.runtime.pipeline import QUEUE_FULL_WAIT_S, RecordPipeline, Transform
from connector.runtime.producer import RecordProducer
from connector.runtime.status import State, TaskStatus
from connector.runtime.submitted import SubmittedRecords
from connector.runtime.transactions import (
    ProducerFencedError,
    ReplayingTask,
    TaskTransactionContext,
    TransactionalCommitter,
    TransactionRecords,
    TransactionSettings,
)
from connector.serde.converter import Converter

logger = logging.getLogger(__name__)

TopicEnsurer = Callable[[str], None]

POLL_TIMEOUT_S = 0.2
# Of offset.flush.timeout.ms at shutdown, the part kept for the final offsets write.
_FINAL_COMMIT_SHARE = 0.25


class SourceTaskRunner:
    """Runs one :class:`SourceTask` on its own thread until stopped or failed."""

    def __init__(
        self,
        *,
        task: SourceTask,
        ctx: RuntimeTaskContext,
        status: TaskStatus,
        connector_config: ConnectorConfig,
        worker: WorkerConfig,
        producer: RecordProducer,
        offset_store: OffsetWriter,
        key_converter: Converter,
        value_converter: Converter,
        transform: Transform | None,
        ensure_topic: TopicEnsurer,
        metrics: WorkerMetrics,
        value_schemas: Mapping[str, AvroSchema] | None = None,
        clock: Callable[[], float] = time.monotonic,
        transactions: TransactionSettings | None = None,
    ) -> None:
        """``transactions`` switches the task to exactly-once: ``producer`` must then be its
        :class:`TransactionalProducer` and ``offset_store`` the connector's offsets store."""
        self.transactions = transactions
        if transactions is not None:
            task = ReplayingTask(task)
        self.task = task
        self.ctx = ctx
        self.status = status
        self.connector_config = connector_config
        self.worker = worker
        self._producer = producer
        self._value_converter = value_converter
        self._value_schemas = dict(value_schemas or {})
        self._clock = clock
        self._flush_timeout_s = worker.offset_flush_timeout_ms / 1000.0
        self.submitted = SubmittedRecords() if transactions is None else TransactionRecords()
        self.policy = ErrorPolicy(
            connector_config, task_id=ctx.task_id, metrics=metrics, clock=clock
        )
        self.pipeline = RecordPipeline(
            connector_name=ctx.connector_name,
            task_id=ctx.task_id,
            transform=transform,
            key_converter=key_converter,
            value_converter=value_converter,
            producer=producer,
            submitted=self.submitted,
            policy=self.policy,
            ensure_topic=ensure_topic,
            metrics=metrics,
        )
        self.committer: OffsetCommitter | TransactionalCommitter
        if transactions is None:
            self.committer = OffsetCommitter(
                connector_name=ctx.connector_name,
                task_id=ctx.task_id,
                store=offset_store,
                submitted=self.submitted,
                interval_s=worker.offset_flush_interval_ms / 1000.0,
                timeout_s=self._flush_timeout_s,
                on_committed=task.commit,
                metrics=metrics,
                clock=clock,
            )
        else:
            assert isinstance(task, ReplayingTask)
            assert isinstance(self.submitted, TransactionRecords)
            context = ctx.transaction_context
            assert context is None or isinstance(context, TaskTransactionContext)
            self.committer = TransactionalCommitter(
                connector_name=ctx.connector_name,
                task_id=ctx.task_id,
                settings=transactions,
                producer=producer,  # type: ignore[arg-type]
                records=self.submitted,
                source=task,
                store=offset_store,  # type: ignore[arg-type]
                transaction_context=context,
                retries=self.policy.retry_budget("transaction"),
                wait=lambda seconds: self._stop.wait(seconds),
                on_committed=task.commit,
                metrics=metrics,
                clock=clock,
            )
        self._poll_retries = self.policy.retry_budget("poll")
        self._metrics = metrics
        self._polled = metrics.records_polled.labels(
            connector=ctx.connector_name, task=str(ctx.task_id)
        )
        self._stop = threading.Event()
        self._paused = threading.Event()
        self.name = f"{ctx.connector_name}-{ctx.task_id}"
        self.thread = threading.Thread(target=self._run, name=f"task-{self.name}", daemon=True)
        self.error: BaseException | None = None
        self.fenced = False  # a newer instance took the task over: never restart this one

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def request_stop(self) -> None:
        """Ask the loop to finish (any thread). The task's own ``stop`` is called here too, so
        that a blocking ``poll`` returns promptly."""
        self._stop.set()
        self._stop_task_quietly()

    def pause(self) -> None:
        """Stop calling ``poll()`` (any thread); what was polled is still sent, acks are still
        resolved and offsets committed. The task stays started, its source connection open."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def join(self, timeout_s: float) -> bool:
        self.thread.join(timeout_s)
        return not self.thread.is_alive()

    @property
    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def _run(self) -> None:
        try:
            self._run_task()
        finally:
            if self.transactions is not None:
                self.committer.close()

    def _run_task(self) -> None:
        try:
            if self.transactions is not None:
                self.committer.start()  # type: ignore[union-attr]
            if not self._prepare():
                self.status.set(State.STOPPED)
                return
            self.task.start(self.ctx)
            self.status.set(State.RUNNING)
            logger.info("task %s started", self.name)
            unsent = self._loop()
            self._shutdown(unsent)
            self.status.set(State.STOPPED)
            logger.info("task %s stopped", self.name)
        except BaseException as exc:
            self.error = exc
            self.fenced = isinstance(exc, ProducerFencedError)
            self.status.set(State.FAILED, "".join(traceback.format_exception(exc)))
            logger.error("task %s failed: %s", self.name, str(exc))  # no reference to exc kept
            self._stop_task_quietly()
            if self.transactions is not None:
                # Connect skips the final commit of a failed exactly-once task: what it had
                # not committed is aborted, and sent again by the next start.
                if not self.fenced:
                    self.committer.abandon()  # type: ignore[union-attr]
                return
            # Connect's final commit after a failure: wait (bounded) for the acks of records
            # already sent, so that the restarted task does not send them again.
            self.submitted.wait_all_acked(self._flush_timeout_s)
            self._flush_quietly()

    def _loop(self) -> list[Polled]:
        """Poll, send and commit until a stop is requested; return what was polled but not
        sent yet."""
        pipeline, submitted, committer = self.pipeline, self.submitted, self.committer
        # under exactly-once the committer handles a fatal producer error itself
        at_least_once = self.transactions is None
        polled: list[Polled] = []
        while not self._stop.is_set():
            if not polled:
                polled = self._poll_unless_paused()
            if polled:
                result = pipeline.send(polled)
                polled = result.unsent
                if polled and result.retry_in_s:
                    self._stop.wait(result.retry_in_s)
            pipeline.resolve_refusals()
            submitted.raise_if_failed()
            if at_least_once:
                self._check_producer()
            if committer.tick(not polled):
                polled = []  # the transaction was aborted: the task polls its items again
        return polled

    def _prepare(self) -> bool:
        """Before the source is read: create the dead-letter and known target topics and
        resolve the known value schemas in the registry, so that a bad registry or an
        incompatible schema fails the task before any event is consumed. Returns False when
        stopped while waiting for the registry."""
        for topic in [
            self.connector_config.errors_deadletterqueue_topic_name,
            *self._value_schemas,
        ]:
            if topic is not None:
                self.pipeline.ensure_topic(topic)
        resolve = getattr(self._value_converter, "resolve", None)
        if resolve is None:
            return True
        retries = self.policy.retry_budget("registry")
        for topic, schema in self._value_schemas.items():
            while True:
                try:
                    resolve(topic, schema)
                    break
                except RetriableError as exc:
                    delay = retries.failed()
                    if delay is None:
                        raise TaskFailedError(
                            f"schema registry unavailable for {self.ctx.connector_name} "
                            f"after errors.retry.timeout: {exc}"
                        ) from exc
                    logger.warning("%s; retrying in %.1fs", exc, delay)
                    if self._stop.wait(delay):
                        return False
            retries.succeeded()
        return True

    def _poll_unless_paused(self) -> list[Polled]:
        """``poll()``, or while paused wait one poll timeout; the state follows the flag."""
        if self._paused.is_set():
            if self.status.state == State.RUNNING:
                self.status.set(State.PAUSED)
                logger.info("task %s paused", self.name)
            self._stop.wait(POLL_TIMEOUT_S)
            return []
        if self.status.state == State.PAUSED:
            self.status.set(State.RUNNING)
            logger.info("task %s resumed", self.name)
        return self._poll()

    def _poll(self) -> list[Polled]:
        started = time.monotonic()
        try:
            polled = self.task.poll(POLL_TIMEOUT_S)
        except RetriableError as exc:
            delay = self._poll_retries.failed()
            if delay is None:
                raise TaskFailedError(
                    f"task {self.name} poll() kept failing for errors.retry.timeout: {exc}"
                ) from exc
            logger.warning("task %s poll failed, retrying in %.1fs: %s", self.name, delay, exc)
            self._stop.wait(delay)
            return []
        self._poll_retries.succeeded()
        self._metrics.observe_poll(
            self.ctx.connector_name, self.ctx.task_id, time.monotonic() - started, len(polled)
        )
        if polled:
            self._polled.inc(len(polled))
        return polled

    def _check_producer(self) -> None:
        fatal = self._producer.fatal_error
        if fatal is not None:
            raise TaskFailedError(f"Kafka producer failed fatally: {fatal}")

    # -- stop ------------------------------------------------------------------------------

    def _shutdown(self, unsent: list[Polled]) -> None:
        """Graceful stop, bounded by ``offset.flush.timeout.ms`` even when Kafka is down: stop
        the source, send what the task had already received (``poll(0)`` until it returns
        nothing), wait for the acks, and commit the acked prefix. Whatever is not acked by then
        is not committed."""
        clock = self._clock
        deadline = clock() + self._flush_timeout_s
        send_deadline = deadline - self._flush_timeout_s * _FINAL_COMMIT_SHARE
        self._stop_task_quietly()
        pipeline = self.pipeline
        while clock() < send_deadline:
            if not unsent:
                try:
                    unsent = self.task.poll(0)
                except Exception as exc:
                    logger.warning("poll() after stop failed, nothing more drained: %s", exc)
                    break
                if not unsent:
                    break
            result = pipeline.send(unsent)
            unsent = result.unsent
            pipeline.resolve_refusals()
            self.submitted.raise_if_failed()
            if self.committer.tick(not unsent):
                unsent = []
            if unsent:
                time.sleep(min(result.retry_in_s or QUEUE_FULL_WAIT_S, QUEUE_FULL_WAIT_S * 5))
        if unsent:
            logger.warning(
                "task %s: %d polled records not sent within offset.flush.timeout.ms",
                self.name,
                len(unsent),
            )
        while self.submitted.in_flight and clock() < send_deadline:
            pipeline.resolve_refusals()
            self.submitted.raise_if_failed()
            self.submitted.wait_all_acked(0.05)
        if self.submitted.in_flight:
            logger.warning(
                "task %s: %d records unacked at shutdown; their offsets are not committed",
                self.name,
                self.submitted.in_flight,
            )
        if not self.committer.flush(max(0.0, deadline - clock())):
            logger.warning(
                "task %s: final offset commit did not complete; the next start may repeat records",
                self.name,
            )

    def _stop_task_quietly(self) -> None:
        try:
            self.task.stop()
        except Exception:
            logger.exception("task %s stop() failed", self.name)

    def _flush_quietly(self) -> None:
        try:
            self.committer.flush(self._flush_timeout_s)
        except Exception:
            logger.exception("task %s: final offset commit failed", self.name)
