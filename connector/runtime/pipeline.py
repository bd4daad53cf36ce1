"""One task's record pipeline: transform -> convert -> submit -> produce, in poll order.

Everything ``poll()`` returned goes through :meth:`RecordPipeline.send` in order, records and
malformed input alike, so every item is submitted to :class:`SubmittedRecords` at its place in
its source partition and committed offsets only move forward. Each failure (malformed input, a
transform or converter error, a record the producer or Kafka refuses) becomes one
:class:`Failure` that the :class:`ErrorPolicy` decides on: fail, dead-letter or skip.

``send`` never blocks: when the producer's queue is full or the registry is retrying, it stops
and returns the unsent tail with how long to wait, and the task loop waits (interruptibly, so a
stop request is honoured) and sends the tail again.

Threads: the task thread only; delivery callbacks only touch :class:`SubmittedRecords`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from connector.api import (
    AvroSchema,
    MalformedInput,
    Polled,
    RetriableError,
    SourceRecord,
    TaskFailedError,
)
from connector.runtime.dead_letters import DeadLetterWriter
from connector.runtime.error_policy import Disposition, ErrorPolicy, Failure, Stage
from connector.runtime.metrics import WorkerMetrics
from connector.runtime.producer import RecordProducer
from connector.runtime.submitted import Refusal, Submitted, SubmittedRecords
from connector.serde.converter import Converter, StringConverter
from connector.serde.encoded import EncodedAvro, materialised

logger = logging.getLogger(__name__)

Transform = Callable[[SourceRecord], SourceRecord | None]

# How long the loop waits for room when librdkafka's queue is full before trying again.
QUEUE_FULL_WAIT_S = 0.01


@dataclass(frozen=True, slots=True)
class SendResult:
    """What :meth:`RecordPipeline.send` could not send yet, and when to try again."""

    unsent: list[Polled]
    retry_in_s: float = 0.0


_SENT = SendResult([])


class RecordPipeline:
    """Transforms, converts, submits and produces the items of one task, in order."""

    def __init__(
        self,
        *,
        connector_name: str,
        task_id: int,
        transform: Transform | None,
        key_converter: Converter,
        value_converter: Converter,
        producer: RecordProducer,
        submitted: SubmittedRecords,
        policy: ErrorPolicy,
        ensure_topic: Callable[[str], None],
        metrics: WorkerMetrics,
    ) -> None:
        self._transform = transform
        self._key_convert = key_converter.convert
        self._value_convert = value_converter.convert
        # Hot-path shortcuts with the converters' own results: a text key is encoded inline,
        # and a value the native path already encoded (EncodedAvro) gets its topic's framing
        # (cached per topic and schema) instead of a converter call per record.
        self._text_keys = type(key_converter) is StringConverter
        self._framing_of: Callable[[str, AvroSchema], bytes] | None = getattr(
            value_converter, "framing", None
        )
        self._framings: dict[tuple[str, str], bytes] = {}
        self._producer = producer
        self._submitted = submitted
        self._policy = policy
        self._ensure_topic = ensure_topic
        self._known_topics: set[str] = set()
        self._convert_retries = policy.retry_budget("registry")  # converters retry the registry
        self._dead_letters = (
            DeadLetterWriter(
                policy.dead_letter_topic,
                connector_name=connector_name,
                task_id=task_id,
                producer=producer,
            )
            if policy.dead_letter_topic is not None
            else None
        )
        labels = {"connector": connector_name, "task": str(task_id)}
        self._written = metrics.records_written.labels(**labels)
        self._filtered = metrics.records_filtered.labels(**labels)
        self._dead_lettered = metrics.dead_lettered.labels(**labels)
        self._dead_letter_failures = metrics.dead_letter_failures.labels(**labels)
        self._refusals: list[Refusal] = []  # refused records still to be decided on

    def ensure_topic(self, topic: str) -> None:
        """Create ``topic`` once (the worker knows whether it exists)."""
        if topic not in self._known_topics:
            self._ensure_topic(topic)
            self._known_topics.add(topic)

    def forget_topics(self) -> None:
        """Ask the worker about each topic again on its next record (after a topic-tracking
        reset, so that the topics still in use are tracked again)."""
        self._known_topics = set()

    # -- send ------------------------------------------------------------------------------

    def send(self, batch: list[Polled]) -> SendResult:
        """Send ``batch`` in order; return the unsent tail when the producer's queue is full or
        a retriable failure (registry outage) interrupts it."""
        produce = self._producer.produce
        submit = self._submitted.submit
        retract = self._submitted.retract
        transform = self._transform
        key_convert = self._key_convert
        value_convert = self._value_convert
        text_keys = self._text_keys
        framing_of = self._framing_of
        framings = self._framings
        known_topics = self._known_topics
        convert_retries = self._convert_retries
        dumps = orjson.dumps
        written = 0
        try:
            for index, item in enumerate(batch):
                partition = item.source_partition
                try:
                    partition_key = dumps(partition) if partition is not None else None
                except TypeError as exc:  # it could never be committed: fail it, move no offset
                    item = _unkeyable(item, exc)
                    partition, partition_key = None, None
                if type(item) is MalformedInput:
                    failure = _malformed(item)
                    if not self._fail(failure, partition_key):
                        return SendResult(batch[index:], QUEUE_FULL_WAIT_S)
                    continue
                record: SourceRecord = item  # type: ignore[assignment]
                stage = Stage.TRANSFORMATION
                try:
                    if transform is not None:
                        transformed = transform(record)
                        if transformed is None:
                            self._submitted.submit_acked(
                                partition_key, partition, record.source_offset
                            )
                            self._filtered.inc()
                            continue
                        record = transformed
                    topic = record.topic
                    stage = Stage.KEY_CONVERTER
                    key = record.key
                    if text_keys and type(key) is str:
                        key = key.encode("utf-8")  # StringConverter.convert, inline
                    else:
                        key = key_convert(topic, key, record.key_schema)
                    stage = Stage.VALUE_CONVERTER
                    value = record.value
                    schema = record.value_schema
                    if type(value) is EncodedAvro and framing_of is not None and schema:
                        prefix = framings.get((topic, schema.name))  # the converter's cache key
                        if prefix is None:
                            prefix = framings[(topic, schema.name)] = framing_of(topic, schema)
                        if prefix and value.schema is schema:
                            value = prefix + value.body
                        else:
                            value = value_convert(topic, value, schema)
                    else:
                        value = value_convert(topic, value, schema)
                except RetriableError as exc:
                    delay = self._convert_retries.failed()
                    if delay is not None:
                        logger.warning("%s; retrying in %.1fs", exc, delay)
                        return SendResult(batch[index:], delay)
                    failure = _record_failure(record, stage, exc)
                    if not self._fail(failure, partition_key):
                        return SendResult(batch[index:], QUEUE_FULL_WAIT_S)
                    continue
                except Exception as exc:
                    failure = _record_failure(record, stage, exc)
                    if not self._fail(failure, partition_key):
                        return SendResult(batch[index:], QUEUE_FULL_WAIT_S)
                    continue
                if convert_retries.retrying:
                    convert_retries.succeeded()
                if topic not in known_topics:
                    self.ensure_topic(topic)
                headers = record.headers
                if headers and not _header_names_are_utf8(headers):
                    # librdkafka crashes the process on such a name: never hand it over
                    failure = _record_failure(
                        record, Stage.KAFKA_PRODUCE, ValueError("a header name is not UTF-8")
                    )
                    if not self._fail(failure, partition_key):
                        return SendResult(batch[index:], QUEUE_FULL_WAIT_S)
                    continue
                handle = submit(partition_key, partition, record.source_offset)
                try:
                    produce(
                        topic,
                        value,
                        key,
                        headers=headers,
                        timestamp=record.timestamp_ms or 0,
                        on_delivery=handle.on_delivery,
                    )
                except BufferError:
                    retract(partition_key, handle)
                    return SendResult(batch[index:], QUEUE_FULL_WAIT_S)
                except Exception as exc:  # refused at once: too large, a header not UTF-8...
                    retract(partition_key, handle)
                    failure = _record_failure(record, Stage.KAFKA_PRODUCE, exc, key, value)
                    if not self._fail(failure, partition_key):
                        return SendResult(batch[index:], QUEUE_FULL_WAIT_S)
                    continue
                written += 1
            return _SENT
        finally:
            self._written.inc(written)

    def _fail(self, failure: Failure, partition_key: Any) -> bool:
        """Apply the policy to a failure at its place in its partition. False when the dead
        letter could not be queued yet (the producer's queue is full): nothing was submitted
        and the caller sends the item again later."""
        disposition = self._policy.tolerate(failure)
        submitted = self._submitted
        if disposition is Disposition.SKIP:
            submitted.submit_acked(partition_key, failure.source_partition, failure.source_offset)
        else:
            handle = submitted.submit(
                partition_key, failure.source_partition, failure.source_offset
            )
            if not self._write_dead_letter(failure, handle):
                submitted.retract(partition_key, handle)
                return False
        self._policy.tolerated(failure)
        return True

    def _write_dead_letter(self, failure: Failure, handle: Submitted) -> bool:
        writer = self._dead_letters
        assert writer is not None
        self.ensure_topic(writer.topic)
        try:
            writer.write(failure, handle)
        except BufferError:
            return False
        except Exception as exc:
            self._dead_letter_failures.inc()
            raise TaskFailedError(
                f"could not write a dead letter to {writer.topic} (stage {failure.stage}, "
                f"reason: {failure.reason}): {type(exc).__name__}: {exc}"
            ) from exc
        self._dead_lettered.inc()
        return True

    # -- refusals --------------------------------------------------------------------------

    def resolve_refusals(self) -> bool:
        """Decide on every record Kafka refused since the last call. The refused record keeps
        its place in its partition: its dead letter's ack acks it, so offsets stay ordered.
        Returns False while some dead letters wait for room in the producer's queue."""
        self._refusals.extend(self._submitted.take_refusals())
        while self._refusals:
            refusal = self._refusals[0]
            handle = refusal.handle
            failure = Failure(
                Stage.KAFKA_PRODUCE,
                f"Kafka refused the record: {refusal.error}",
                refusal.value,
                handle.partition,
                handle.offset,
                topic=refusal.topic,
                key=refusal.key,
                headers=refusal.headers,
            )
            if self._policy.tolerate(failure) is Disposition.SKIP:
                handle.ack()
            elif not self._write_dead_letter(failure, handle):
                return False
            self._policy.tolerated(failure)
            self._refusals.pop(0)
        return True


def _header_names_are_utf8(headers: Any) -> bool:
    for header in headers:
        name = header[0]
        if not name.isascii():
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def _unkeyable(item: Polled, exc: TypeError) -> MalformedInput:
    """An item whose source partition is not JSON: dead-letter it without a partition."""
    malformed = type(item) is MalformedInput
    payload = item.payload if malformed else _record_bytes(item.value)  # type: ignore[union-attr]
    return MalformedInput(
        payload,
        f"source partition {item.source_partition!r:.200} cannot be stored as JSON: {exc}",
        exception=exc,
    )


def _malformed(item: MalformedInput) -> Failure:
    payload = item.payload
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")  # keep the input as it came
    return Failure(
        Stage.POLL,
        item.reason,
        payload,
        item.source_partition,
        item.source_offset,
        exception=item.exception,
    )


def _record_failure(
    record: SourceRecord,
    stage: Stage,
    exc: BaseException,
    key: bytes | None = None,
    value: bytes | None = None,
) -> Failure:
    return Failure(
        stage,
        f"{type(exc).__name__}: {exc}",
        value if value is not None else _record_bytes(record.value),
        record.source_partition,
        record.source_offset,
        topic=record.topic,
        key=key if key is not None else _key_bytes(record.key),
        headers=_safe_headers(record.headers),
        exception=exc,
    )


def _safe_headers(headers: Any) -> list[tuple[str, bytes | None]]:
    """The record's headers as the dead letter carries them: any text made valid UTF-8, so
    that what made the record fail cannot fail its dead letter too."""
    safe: list[tuple[str, bytes | None]] = []
    for name, value in headers or ():
        if isinstance(value, str):
            value = value.encode("utf-8", "backslashreplace")
        safe.append((name.encode("utf-8", "backslashreplace").decode("utf-8"), value))
    return safe


def _record_bytes(value: Any) -> bytes | None:
    """The record's value as the dead letter's payload (JSON for structured values)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    try:
        # default: a native value (EncodedAvro) is written as the dict the Python path makes
        return orjson.dumps(value, default=materialised, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # not JSON-able, a lone surrogate inside, nested too deep
        try:
            return repr(value).encode("utf-8", "backslashreplace")
        except RecursionError:
            return f"<{type(value).__name__} nested too deep to print>".encode()


def _key_bytes(key: Any) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    return str(key).encode("utf-8", "surrogatepass")
