"""One task's loop: poll -> transforms -> converters -> producer -> acks -> offset commit.

The runner owns one thread. Stages are small methods; there are no inheritance hooks. Offsets
are committed from this loop (no committer thread) because ``poll`` returns regularly, and
never by flushing the data producer: only the acked prefix of each source partition is written.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from connector.api import (
    AvroSchema,
    ConversionError,
    MalformedInput,
    RetriableError,
    SourceRecord,
    SourceTask,
    TaskFailedError,
)
from connector.config.models import ConnectorEnvelope, WorkerConfig
from connector.runtime import metrics
from connector.runtime.context import RuntimeTaskContext
from connector.runtime.offset_store import KafkaOffsetStore
from connector.runtime.producer import DataProducer
from connector.runtime.status import State, TaskStatus
from connector.runtime.submitted import Submitted, SubmittedRecords
from connector.serde.converter import Converter
from connector.ws.backoff import ExponentialBackoff

logger = logging.getLogger(__name__)

Transform = Callable[[SourceRecord], SourceRecord | None]
TopicEnsurer = Callable[[str], None]

POLL_TIMEOUT_S = 0.2
_ERROR_HEADER = "__connect.errors."


@dataclass(frozen=True, slots=True)
class DeadLetter:
    payload: bytes | str | None
    reason: str
    source_partition: Any
    source_offset: Any
    stage: str
    exception: BaseException | None

    @staticmethod
    def of(item: MalformedInput) -> DeadLetter:
        return DeadLetter(
            item.payload,
            item.reason,
            item.source_partition,
            item.source_offset,
            "POLL",
            item.exception,
        )


class SourceTaskRunner:
    """Runs one :class:`SourceTask` on its own thread until stopped or failed."""

    def __init__(
        self,
        *,
        task: SourceTask,
        ctx: RuntimeTaskContext,
        status: TaskStatus,
        envelope: ConnectorEnvelope,
        worker: WorkerConfig,
        producer: DataProducer,
        offset_store: KafkaOffsetStore,
        key_converter: Converter,
        value_converter: Converter,
        transform: Transform | None,
        ensure_topic: TopicEnsurer,
        value_schemas: Mapping[str, AvroSchema] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.task = task
        self.ctx = ctx
        self.status = status
        self.envelope = envelope
        self.worker = worker
        self._producer = producer
        self._produce = producer.producer.produce
        self._poll_producer = producer.producer.poll
        self._offset_store = offset_store
        self._key_converter = key_converter
        self._value_converter = value_converter
        self._transform = transform
        self._ensure_topic = ensure_topic
        self._value_schemas = dict(value_schemas or {})
        self._known_topics: set[str] = set()
        self._clock = clock
        self.submitted = SubmittedRecords()
        self.submitted.set_failure_handler(self._on_delivery_failure)
        self._uncommitted: dict[Any, tuple[Any, Any]] = {}
        self._committing: dict[Any, tuple[Any, Any]] = {}
        self._commit_write: Any = None
        self._stop = threading.Event()
        self._labels = {"connector": ctx.connector_name, "task": str(ctx.task_id)}
        self._retry_started: float | None = None
        retry_cap_s = envelope.errors_retry_delay_max_ms / 1000.0
        # Connect's 300 ms first delay, unless the cap is lower (a smaller cap is valid config)
        self._retry_backoff = ExponentialBackoff(initial_s=min(0.3, retry_cap_s), max_s=retry_cap_s)
        self.thread = threading.Thread(
            target=self._run, name=f"task-{ctx.connector_name}-{ctx.task_id}", daemon=True
        )
        self.error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def request_stop(self) -> None:
        """Ask the loop to finish (any thread). The task's own ``stop`` is called from the loop's
        shutdown path, and also here so that a blocking ``poll`` returns promptly."""
        self._stop.set()
        try:
            self.task.stop()
        except Exception:
            logger.exception("task %s-%d stop() failed", self.ctx.connector_name, self.ctx.task_id)

    def join(self, timeout_s: float) -> bool:
        self.thread.join(timeout_s)
        return not self.thread.is_alive()

    @property
    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def _run(self) -> None:
        name = f"{self.ctx.connector_name}-{self.ctx.task_id}"
        pending: list[SourceRecord] = []
        try:
            if not self._prepare():
                self.status.set(State.STOPPED)
                return
            self.task.start(self.ctx)
            self.status.set(State.RUNNING)
            logger.info("task %s started", name)
            next_commit = self._clock() + self.worker.offset_flush_interval_ms / 1000.0
            while not self._stop.is_set():
                if not pending:
                    pending = self._poll_task()
                if pending:
                    pending = self._send(pending)
                self.submitted.raise_if_failed()
                self._check_producer()
                if self._clock() >= next_commit:
                    self.commit()
                    next_commit = self._clock() + self.worker.offset_flush_interval_ms / 1000.0
            self._shutdown(pending)
            self.status.set(State.STOPPED)
            logger.info("task %s stopped", name)
        except BaseException as exc:
            self.error = exc
            self.status.set(State.FAILED, "".join(traceback.format_exception(exc)))
            logger.error("task %s failed: %s", name, exc)
            self._stop_task_quietly()
            # Connect's final commit after a failure: wait (bounded) for the acks of records
            # already sent, so that the restarted task does not send them again.
            self.submitted.wait_all_acked(self.worker.offset_flush_timeout_ms / 1000.0)
            self._commit_quietly()

    def _prepare(self) -> bool:
        """Before the source is read: create the dead-letter and known target topics and
        resolve the known value schemas in the registry, so that a bad registry or an
        incompatible schema fails the task before any event is consumed. Returns False when
        stopped while waiting for the registry."""
        dead_letter_topic = self.envelope.errors_deadletterqueue_topic_name
        for topic in [dead_letter_topic, *self._value_schemas]:
            if topic is not None and topic not in self._known_topics:
                self._ensure_topic(topic)
                self._known_topics.add(topic)
        resolve = getattr(self._value_converter, "resolve", None)
        if resolve is None:
            return True
        for topic, schema in self._value_schemas.items():
            while True:
                try:
                    resolve(topic, schema)
                    break
                except RetriableError as exc:
                    if self._retry_exhausted():
                        raise TaskFailedError(
                            f"schema registry unavailable for {self.ctx.connector_name} "
                            f"after errors.retry.timeout: {exc}"
                        ) from exc
                    delay = self._retry_backoff.next_delay()
                    logger.warning("%s; retrying in %.1fs", exc, delay)
                    if self._stop.wait(delay):
                        return False
        self._retry_started = None
        self._retry_backoff.reset()
        return True

    def _poll_task(self) -> list[SourceRecord]:
        try:
            records = self.task.poll(POLL_TIMEOUT_S)
        except RetriableError as exc:
            delay = self._retry_backoff.next_delay()
            logger.warning("task poll failed, retrying in %.1fs: %s", delay, exc)
            self._stop.wait(delay)
            return []
        if records:
            metrics.RECORDS_POLLED.labels(**self._labels).inc(len(records))
        return records

    def _check_producer(self) -> None:
        fatal = self._producer.fatal_error
        if fatal is not None:
            raise TaskFailedError(f"Kafka producer failed fatally: {fatal}")

    # -- send ------------------------------------------------------------------------------

    def _send(self, records: list[SourceRecord]) -> list[SourceRecord]:
        """Convert and produce ``records``; return the unsent tail when a retriable failure
        (registry outage) or a full producer queue interrupts the batch."""
        produce = self._produce
        submit = self.submitted.submit
        transform = self._transform
        key_convert = self._key_converter.convert
        value_convert = self._value_converter.convert
        dumps = orjson.dumps
        written = 0
        for index, record in enumerate(records):
            if type(record) is MalformedInput:
                self._send_dead_letters([DeadLetter.of(record)])
                continue
            partition = record.source_partition
            partition_key = dumps(partition) if partition is not None else None
            stage = "TRANSFORMATION"
            try:
                if transform is not None:
                    transformed = transform(record)
                    if transformed is None:
                        self.submitted.submit_acked(partition_key, partition, record.source_offset)
                        metrics.RECORDS_FILTERED.labels(**self._labels).inc()
                        continue
                    record = transformed
                topic = record.topic
                stage = "KEY_CONVERTER"
                key = key_convert(topic, record.key, record.key_schema)
                stage = "VALUE_CONVERTER"
                value = value_convert(topic, record.value, record.value_schema)
            except RetriableError as exc:
                if self._retry_exhausted():
                    self._tolerate(record, partition_key, stage, exc)
                    continue
                delay = self._retry_backoff.next_delay()
                logger.warning("%s; retrying in %.1fs", exc, delay)
                self._stop.wait(delay)
                metrics.RECORDS_WRITTEN.labels(**self._labels).inc(written)
                return records[index:]
            except Exception as exc:
                self._tolerate(record, partition_key, stage, exc)
                continue
            if self._retry_started is not None:
                self._retry_started = None
                self._retry_backoff.reset()
            if topic not in self._known_topics:
                self._ensure_topic(topic)
                self._known_topics.add(topic)
            handle = submit(partition_key, partition, record.source_offset)
            self._produce_with_backpressure(
                produce,
                topic,
                value,
                key,
                record.headers,
                record.timestamp_ms or 0,
                handle,
            )
            written += 1
        metrics.RECORDS_WRITTEN.labels(**self._labels).inc(written)
        return []

    def _produce_with_backpressure(
        self,
        produce: Callable[..., None],
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Any,
        timestamp: int,
        handle: Submitted,
    ) -> None:
        while True:
            try:
                produce(
                    topic,
                    value,
                    key,
                    headers=headers,
                    timestamp=timestamp,
                    on_delivery=handle.on_delivery,
                )
                return
            except BufferError:
                # librdkafka's queue is full: Kafka is slower than the source. Wait for acks
                # (the poller thread serves them) rather than dropping or growing memory.
                self._poll_producer(0.05)

    def _retry_exhausted(self) -> bool:
        timeout_ms = self.envelope.errors_retry_timeout
        now = self._clock()
        if self._retry_started is None:
            self._retry_started = now
        return timeout_ms >= 0 and (now - self._retry_started) * 1000.0 >= timeout_ms

    # -- errors ----------------------------------------------------------------------------

    def _tolerate(
        self, record: SourceRecord, partition_key: Any, stage: str, exc: BaseException
    ) -> None:
        """Apply ``errors.tolerance`` to a record that failed ``stage``."""
        name = self.ctx.connector_name
        if isinstance(exc, ConversionError):
            exc.connector, exc.topic, exc.stage = name, record.topic, stage
            exc.source_partition, exc.source_offset = record.source_partition, record.source_offset
        if self.envelope.errors_tolerance == "none":
            raise TaskFailedError(
                f"Tolerance exceeded in error handler: connector {name} failed at stage {stage} "
                f"for topic {record.topic}, source partition {_json(record.source_partition)}, "
                f"source offset {_json(record.source_offset)}: {type(exc).__name__}: {exc}"
            ) from exc
        metrics.ERRORS_TOLERATED.labels(**self._labels).inc()
        payload = _dump_value(record.value)
        self._dead_letter_or_log(
            DeadLetter(
                payload, str(exc), record.source_partition, record.source_offset, stage, exc
            ),
            original_topic=record.topic,
            key=record.key,
            partition_key=partition_key,
        )

    def _send_dead_letters(self, letters: list[DeadLetter]) -> None:
        for letter in letters:
            partition_key = (
                orjson.dumps(letter.source_partition) if letter.source_partition else None
            )
            if self.envelope.errors_deadletterqueue_topic_name is None:
                if self.envelope.errors_tolerance == "none":
                    raise TaskFailedError(
                        f"connector {self.ctx.connector_name} got input it cannot convert at stage "
                        f"{letter.stage} (source partition {_json(letter.source_partition)}, "
                        f"offset {_json(letter.source_offset)}): {letter.reason}; set "
                        "errors.deadletterqueue.topic.name to keep such input and go on"
                    )
                metrics.ERRORS_TOLERATED.labels(**self._labels).inc()
            self._dead_letter_or_log(
                letter, original_topic=None, key=None, partition_key=partition_key
            )

    def _dead_letter_or_log(
        self, letter: DeadLetter, *, original_topic: str | None, key: Any, partition_key: Any
    ) -> None:
        topic = self.envelope.errors_deadletterqueue_topic_name
        envelope = self.envelope
        if envelope.errors_log_enable or topic is None:
            logger.error(
                "Error encountered in task %s-%d. Executing stage '%s'. Reason: %s%s",
                self.ctx.connector_name,
                self.ctx.task_id,
                letter.stage,
                letter.reason,
                f" payload={letter.payload!r}" if envelope.errors_log_include_messages else "",
            )
        if topic is None:
            self.submitted.submit_acked(
                partition_key, letter.source_partition, letter.source_offset
            )
            return
        if topic not in self._known_topics:
            self._ensure_topic(topic)
            self._known_topics.add(topic)
        headers = self._error_headers(letter, original_topic)
        payload = (
            letter.payload.encode("utf-8") if isinstance(letter.payload, str) else letter.payload
        )
        key_bytes = (
            key.encode("utf-8") if isinstance(key, str) else key if isinstance(key, bytes) else None
        )
        handle = self.submitted.submit(partition_key, letter.source_partition, letter.source_offset)
        self._produce_with_backpressure(
            self._produce, topic, payload, key_bytes, headers, 0, handle
        )
        metrics.DEAD_LETTERED.labels(**self._labels).inc()

    def _error_headers(
        self, letter: DeadLetter, original_topic: str | None
    ) -> list[tuple[str, bytes]]:
        exc = letter.exception
        headers = {
            "connector.name": self.ctx.connector_name,
            "task.id": str(self.ctx.task_id),
            "stage": letter.stage,
            "exception.class.name": (
                f"{type(exc).__module__}.{type(exc).__qualname__}" if exc else "MalformedInput"
            ),
            "exception.message": letter.reason,
            "source.partition": _json(letter.source_partition),
            "source.offset": _json(letter.source_offset),
        }
        if original_topic is not None:
            headers["topic"] = original_topic
        if exc is not None:
            headers["exception.stacktrace"] = "".join(traceback.format_exception(exc))[-8000:]
        return [(_ERROR_HEADER + name, value.encode("utf-8")) for name, value in headers.items()]

    def _on_delivery_failure(self, handle: Submitted, err: Any, msg: Any) -> bool:
        """Producer thread: Kafka refused a record (too large, invalid timestamp...).

        Under ``errors.tolerance=all`` with a dead-letter topic, the record's bytes go there with
        stage ``KAFKA_PRODUCE`` and its offset advances only once the DLQ write is acked. Under
        ``all`` without a DLQ it is logged at ERROR and counted (Connect's behaviour). Under
        ``none`` the failure is latched and the task fails.
        """
        if self.envelope.errors_tolerance != "all":
            return False
        metrics.ERRORS_TOLERATED.labels(**self._labels).inc()
        topic = self.envelope.errors_deadletterqueue_topic_name
        if topic is None or msg is None:
            logger.error(
                "Kafka refused a record of %s (source offset %s): %s; tolerated and dropped "
                "(set errors.deadletterqueue.topic.name to keep such records)",
                self.ctx.connector_name,
                _json(handle.offset),
                err,
            )
            handle.ack()
            return True
        letter = DeadLetter(
            None, f"Kafka refused the record: {err}", None, handle.offset, "KAFKA_PRODUCE", None
        )
        headers = list(msg.headers() or []) + self._error_headers(letter, msg.topic())

        def on_dead_letter_delivery(dlq_err: Any, dlq_msg: Any) -> None:
            if dlq_err is None:
                handle.ack()
            else:
                self.submitted.fail(dlq_err)

        try:
            self._produce(
                topic,
                msg.value(),
                msg.key(),
                headers=headers,
                on_delivery=on_dead_letter_delivery,
            )
        except (BufferError, Exception) as exc:  # never lose it silently: fail the task
            self.submitted.fail(exc)
            return True
        metrics.DEAD_LETTERED.labels(**self._labels).inc()
        return True

    # -- commit ----------------------------------------------------------------------------

    def commit(self, wait_s: float = 0.0) -> bool:
        """Write the acked prefix of every source partition to the offsets topic.

        Asynchronous: a write started now is completed on a later call, so the loop never
        stalls on the offsets topic (with 1,000 topics a blocking write took 30-50 ms). Only one
        write is in flight per task; offsets acked meanwhile wait for the next one. With
        ``wait_s`` (shutdown, failure) it waits, bounded, for the writes to finish. Returns True
        when everything committable so far is durable.
        """
        self._uncommitted.update(self.submitted.committable())
        metrics.IN_FLIGHT.labels(**self._labels).set(self.submitted.in_flight)
        if not self._finish_commit(wait_s):
            return False
        if not self._uncommitted:
            return True
        try:
            self._commit_write = self._offset_store.write_async(
                self.ctx.connector_name, list(self._uncommitted.values())
            )
        except Exception as exc:
            metrics.OFFSET_COMMITS.labels(**self._labels, outcome="failure").inc()
            logger.warning("offset commit failed, will retry: %s", exc)
            return False
        self._committing, self._uncommitted = self._uncommitted, {}
        return self._finish_commit(wait_s)

    def _finish_commit(self, wait_s: float) -> bool:
        """Complete the write in flight, if any; False while it is still pending."""
        write = self._commit_write
        if write is None:
            return True
        if not (write.wait(wait_s) if wait_s > 0 else write.done()):
            return False
        self._commit_write = None
        committing, self._committing = self._committing, {}
        if write.error is not None:
            metrics.OFFSET_COMMITS.labels(**self._labels, outcome="failure").inc()
            logger.warning("offset commit failed, will retry: %s", write.error)
            for key, value in committing.items():
                self._uncommitted.setdefault(key, value)  # newer offsets win
            return False
        metrics.OFFSET_COMMITS.labels(**self._labels, outcome="success").inc()
        self.task.commit()
        return True

    def _shutdown(self, pending: list[SourceRecord]) -> None:
        """Graceful stop: stop the source, then drain what the task had already received
        (``poll(0)`` until it returns nothing) and send it, wait (bounded) for the acks, commit.
        Everything is bounded by ``task.shutdown.graceful.timeout.ms``."""
        deadline = self._clock() + self.worker.task_shutdown_graceful_timeout_ms / 1000.0
        self._stop_task_quietly()
        while self._clock() < deadline:
            if not pending:
                try:
                    pending = self.task.poll(0)
                except Exception as exc:
                    logger.warning("poll() after stop failed, nothing more drained: %s", exc)
                    break
                if not pending:
                    break
            pending = self._send(pending)
        if pending:
            logger.warning(
                "task %s-%d: %d polled records not sent within the graceful timeout",
                self.ctx.connector_name,
                self.ctx.task_id,
                len(pending),
            )
        remaining = max(0.0, deadline - self._clock())
        if not self.submitted.wait_all_acked(remaining):
            logger.warning(
                "task %s-%d: %d records unacked at shutdown; their offsets are not committed",
                self.ctx.connector_name,
                self.ctx.task_id,
                self.submitted.in_flight,
            )
        if not self.commit(wait_s=self.worker.offset_flush_timeout_ms / 1000.0):
            logger.warning(
                "final offset commit did not complete; the next start may repeat records"
            )

    def _stop_task_quietly(self) -> None:
        try:
            self.task.stop()
        except Exception:
            logger.exception("task stop() failed")

    def _commit_quietly(self) -> None:
        try:
            self.commit(wait_s=self.worker.offset_flush_timeout_ms / 1000.0)
        except Exception:
            logger.exception("final offset commit failed")


def _json(value: Any) -> str:
    return orjson.dumps(dict(value)).decode() if value is not None else "null"


def _dump_value(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return repr(value).encode("utf-8")
