"""The exception tree. Behaviour follows the *type*, as in Kafka Connect::

    ConnectorError                 root of everything this framework raises
    ├── ConfigError                invalid deployment or plugin config; carries ``issues``
    ├── RetriableError             transient: the runtime backs off and calls poll() again
    ├── ConversionError            a record could not be transformed or converted (DLQ-able)
    ├── DeliveryError              Kafka refused a record; carries librdkafka's code
    ├── OffsetStoreError           the offsets topic could not be read or written
    └── TaskFailedError            what the worker reports for a task that stopped on an error

Third-party errors are wrapped once, at the boundary, with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a deployment: where it is and what is wrong.

    ``path`` uses dotted keys and ``[name]``/``[index]`` selectors, e.g.
    ``connectors[genesys-prod].genesys.topics[3]``. ``file`` and ``line`` point at the YAML
    source when known.
    """

    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else ""
        if self.file and not self.line:
            where = f"{self.file}: "
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"


class ConnectorError(Exception):
    """Root of the framework's exceptions."""


class ConfigError(ConnectorError):
    """A deployment or plugin config is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class RetriableError(ConnectorError):
    """A transient failure: the runtime backs off and retries instead of failing the task."""


class ConversionError(ConnectorError):
    """A record could not be transformed or converted.

    Carries the record's context so that the message, the log line and the dead-letter headers
    can name the connector, topic, source partition and offset.
    """

    def __init__(
        self,
        message: str,
        *,
        stage: str = "VALUE_CONVERTER",
        connector: str | None = None,
        topic: str | None = None,
        source_partition: Mapping[str, Any] | None = None,
        source_offset: Mapping[str, Any] | None = None,
    ) -> None:
        self.reason = message
        self.stage = stage
        self.connector = connector
        self.topic = topic
        self.source_partition = source_partition
        self.source_offset = source_offset
        super().__init__(message)

    def __str__(self) -> str:
        context = [f"stage={self.stage}"]
        if self.connector is not None:
            context.append(f"connector={self.connector}")
        if self.topic is not None:
            context.append(f"topic={self.topic}")
        if self.source_partition is not None:
            context.append(f"source_partition={dict(self.source_partition)}")
        if self.source_offset is not None:
            context.append(f"source_offset={dict(self.source_offset)}")
        return f"{self.reason} ({', '.join(context)})"


class DeliveryError(ConnectorError):
    """Kafka did not accept a record. ``code`` is librdkafka's error name."""

    def __init__(self, message: str, *, code: str | None = None, retriable: bool = False) -> None:
        self.code = code
        self.retriable = retriable
        super().__init__(message)


class OffsetStoreError(ConnectorError):
    """The offsets topic could not be read or written."""


class TaskFailedError(ConnectorError):
    """A task stopped because of an error; the worker's status shows it with its trace."""
