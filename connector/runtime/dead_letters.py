"""Writing a :class:`~connector.runtime.error_policy.Failure` to the dead-letter topic.

The dead letter carries the failed input's bytes and Connect's ``__connect.errors.*`` headers
(stage, exception class, message and stack trace, source partition and offset, original topic),
after the original record's own headers. A payload too large for the producer is cut to fit,
and the headers say so (``payload.truncated``) with its full size and SHA-256, so that a record
of any size still leaves a trace instead of failing the task.

Threads: the task thread only. ``write`` raises ``BufferError`` when the producer's queue is
full; the caller keeps the failure and tries again.
"""

from __future__ import annotations

import hashlib
import traceback

from connector.runtime.error_policy import Failure, to_json
from connector.runtime.producer import RecordProducer
from connector.runtime.submitted import Submitted

ERROR_HEADER_PREFIX = "__connect.errors."
# Room left for the record's framing and headers librdkafka adds beyond key, value and headers.
_FRAMING_BYTES = 512
_STACKTRACE_MAX_CHARS = 8000


class DeadLetterWriter:
    """Produces dead letters of one task to ``errors.deadletterqueue.topic.name``."""

    def __init__(
        self, topic: str, *, connector_name: str, task_id: int, producer: RecordProducer
    ) -> None:
        self.topic = topic
        self._connector_name = connector_name
        self._task_id = str(task_id)
        self._producer = producer

    def write(self, failure: Failure, handle: Submitted) -> None:
        """Produce the dead letter of ``failure``; its ack acks ``handle``."""
        headers = [*failure.headers, *self._error_headers(failure)]
        payload = failure.payload
        limit = self._producer.max_message_bytes - _FRAMING_BYTES - len(failure.key or b"")
        limit -= sum(len(name) + len(value or b"") for name, value in headers)
        if payload is not None and len(payload) > limit:
            headers += _truncation_headers(payload)
            payload = payload[: max(0, limit - 256)]
        self._producer.produce(
            self.topic,
            payload,
            failure.key,
            headers=headers,
            on_delivery=handle.on_dead_letter_delivery,
        )

    def _error_headers(self, failure: Failure) -> list[tuple[str, bytes | None]]:
        exc = failure.exception
        headers = {
            "connector.name": self._connector_name,
            "task.id": self._task_id,
            "stage": failure.stage.value,
            "exception.class.name": (
                f"{type(exc).__module__}.{type(exc).__qualname__}" if exc else "MalformedInput"
            ),
            "exception.message": failure.reason,
            "source.partition": to_json(failure.source_partition),
            "source.offset": to_json(failure.source_offset),
        }
        if failure.topic is not None:
            headers["topic"] = failure.topic
        if exc is not None:
            trace = "".join(traceback.format_exception(exc))
            headers["exception.stacktrace"] = trace[-_STACKTRACE_MAX_CHARS:]
        return [(ERROR_HEADER_PREFIX + name, _utf8(value)) for name, value in headers.items()]


def _truncation_headers(payload: bytes) -> list[tuple[str, bytes | None]]:
    return [
        (ERROR_HEADER_PREFIX + "payload.truncated", b"true"),
        (ERROR_HEADER_PREFIX + "payload.size", str(len(payload)).encode()),
        (ERROR_HEADER_PREFIX + "payload.sha256", hashlib.sha256(payload).hexdigest().encode()),
    ]


def _utf8(text: str) -> bytes:
    """Header text as UTF-8; a lone surrogate quoted from bad input is escaped, not fatal."""
    return text.encode("utf-8", "backslashreplace")
