"""``errors.*``: one object decides what happens to every failure, whatever its source.

Connect's ``RetryWithToleranceOperator`` in two small parts, each asked by every path of the
task loop (a transform or converter error, input the plugin returned as malformed, a record
Kafka refused, a registry outage):

- :class:`RetryBudget`: ``errors.retry.timeout`` and ``errors.retry.delay.max.ms`` for one kind
  of retriable operation. It says how long to back off, or that the budget is spent, and resets
  on the first success, so a poll error's backoff never carries over to the next outage.
- :class:`ErrorPolicy`: ``errors.tolerance``. ``none`` fails the task and never uses the
  dead-letter topic; ``all`` dead-letters the failure when a topic is set, and otherwise logs it
  and skips it. Every tolerated failure is counted by stage.

Threads: both are used on the task thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from connector.api import ConversionError, TaskFailedError
from connector.backoff import ExponentialBackoff
from connector.config.models import ConnectorConfig
from connector.runtime.metrics import WorkerMetrics

logger = logging.getLogger(__name__)

# Connect's first retry delay; a lower errors.retry.delay.max.ms caps it.
_FIRST_RETRY_DELAY_S = 0.3


class Stage(StrEnum):
    """Where a record failed: Connect's ``ErrorHandlingMetrics`` stage names."""

    POLL = "POLL"  # the plugin returned it as MalformedInput
    TRANSFORMATION = "TRANSFORMATION"
    KEY_CONVERTER = "KEY_CONVERTER"
    VALUE_CONVERTER = "VALUE_CONVERTER"
    KAFKA_PRODUCE = "KAFKA_PRODUCE"


@dataclass(frozen=True, slots=True)
class Failure:
    """One record or input that could not be delivered as it was, with everything the
    dead-letter topic and the task's error message need."""

    stage: Stage
    reason: str
    payload: bytes | None
    source_partition: Mapping[str, Any] | None
    source_offset: Mapping[str, Any] | None
    topic: str | None = None
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes | None]] = ()
    exception: BaseException | None = None


class Disposition(StrEnum):
    """What :meth:`ErrorPolicy.tolerate` decided for a failure it did not raise on."""

    DEAD_LETTER = "DEAD_LETTER"
    SKIP = "SKIP"


class RetryBudget:
    """Retries of one retriable operation within ``errors.retry.timeout``.

    ``-1`` retries forever, ``0`` never retries (Connect's meaning). Delays grow exponentially
    from 300 ms up to ``errors.retry.delay.max.ms``.
    """

    def __init__(
        self,
        timeout_ms: int,
        delay_max_ms: int,
        clock: Callable[[], float],
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        cap_s = delay_max_ms / 1000.0
        self._on_retry = on_retry
        self._timeout_ms = timeout_ms
        self._clock = clock
        self._backoff = ExponentialBackoff(initial_s=min(_FIRST_RETRY_DELAY_S, cap_s), max_s=cap_s)
        self._first_failure: float | None = None
        self.retrying = False  # a plain attribute: read once per record on the hot path

    def failed(self) -> float | None:
        """A retriable failure happened: the delay before the next try, or ``None`` when
        ``errors.retry.timeout`` has passed since the first failure of this run."""
        now = self._clock()
        if self._first_failure is None:
            self._first_failure = now
            self.retrying = True
        elapsed_ms = (now - self._first_failure) * 1000.0
        if self._timeout_ms >= 0 and elapsed_ms >= self._timeout_ms:
            return None
        if self._on_retry is not None:
            self._on_retry()
        return self._backoff.next_delay()

    def succeeded(self) -> None:
        """The operation worked: the next failure starts a fresh budget and backoff."""
        if self._first_failure is not None:
            self._first_failure = None
            self.retrying = False
            self._backoff.reset()


class ErrorPolicy:
    """``errors.tolerance``, ``errors.log.*`` and the dead-letter topic of one task."""

    def __init__(
        self,
        connector_config: ConnectorConfig,
        *,
        task_id: int,
        metrics: WorkerMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.connector_name = connector_config.name
        self.task_id = task_id
        self.tolerate_all = connector_config.errors_tolerance == "all"
        self.dead_letter_topic = connector_config.errors_deadletterqueue_topic_name
        self._log_enable = connector_config.errors_log_enable
        self._log_messages = connector_config.errors_log_include_messages
        self._retry_timeout_ms = connector_config.errors_retry_timeout
        self._retry_delay_max_ms = connector_config.errors_retry_delay_max_ms
        self._clock = clock
        self._tolerated = metrics.errors_tolerated
        self._labels = {"connector": connector_config.name, "task": str(task_id)}
        self._metrics = metrics
        self._retried = metrics.retries.labels(**self._labels).inc
        self._retries_by_cause = metrics.retries_by_cause
        self._logged = metrics.errors_logged.labels(**self._labels)

    def retry_budget(self, cause: str = "other") -> RetryBudget:
        """A fresh budget for one kind of retriable operation of this task; ``cause`` labels
        its retries in the metrics (``registry``, ``poll``)."""
        by_cause = self._retries_by_cause.labels(**self._labels, cause=cause).inc
        total = self._retried

        def retried() -> None:
            total()
            by_cause()

        return RetryBudget(self._retry_timeout_ms, self._retry_delay_max_ms, self._clock, retried)

    def tolerate(self, failure: Failure) -> Disposition:
        """Decide for one failure. Raises :class:`TaskFailedError` under ``none``. The caller
        acts on the decision, then reports it with :meth:`tolerated`."""
        self._metrics.observe_error(self.connector_name, self.task_id)
        if isinstance(failure.exception, ConversionError):
            exc = failure.exception
            exc.connector, exc.topic, exc.stage = self.connector_name, failure.topic, failure.stage
            exc.source_partition, exc.source_offset = (
                failure.source_partition,
                failure.source_offset,
            )
        if not self.tolerate_all:
            raise TaskFailedError(
                f"Tolerance exceeded in error handler: connector {self.connector_name} failed "
                f"at stage {failure.stage} for topic {failure.topic}, source partition "
                f"{to_json(failure.source_partition)}, source offset "
                f"{to_json(failure.source_offset)}: {failure.reason}"
            ) from failure.exception
        return Disposition.DEAD_LETTER if self.dead_letter_topic else Disposition.SKIP

    def tolerated(self, failure: Failure) -> None:
        """Count (and, per ``errors.log.*``, log) a failure once it was dead-lettered or
        skipped; a skipped one is always logged, since no other trace of it remains."""
        self._tolerated.labels(**self._labels, stage=failure.stage.value).inc()
        if self._log_enable or self.dead_letter_topic is None:
            self._logged.inc()
            logger.error(
                "Error encountered in task %s-%d. Executing stage '%s'. Reason: %s; "
                "source offset %s%s",
                self.connector_name,
                self.task_id,
                failure.stage,
                failure.reason,
                to_json(failure.source_offset),
                f" payload={failure.payload!r:.2000}" if self._log_messages else "",
            )


def to_json(value: Mapping[str, Any] | None) -> str:
    """A source partition or offset as Connect prints it (compact JSON)."""
    if value is None:
        return "null"
    try:
        return orjson.dumps(dict(value)).decode()
    except TypeError:
        return repr(dict(value))
