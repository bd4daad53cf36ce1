"""What the runtime gives a connector and its tasks. Plugins get everything through these."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pydantic import BaseModel

from connector.api.record import SourceOffset, SourcePartition


class OffsetReader(Protocol):
    """Reads committed source offsets (the last record *delivered*) for this connector."""

    def offset(self, partition: SourcePartition) -> SourceOffset | None:
        """Return the committed offset of ``partition``, or ``None`` if nothing was committed."""
        ...

    def offsets(self) -> Mapping[str, tuple[SourcePartition, SourceOffset]]:
        """Return every committed (partition, offset) of this connector, keyed by the JSON key."""
        ...


class TransactionContext(Protocol):
    """Given to tasks under ``transaction.boundary: connector`` (Connect's
    ``TransactionContext``): the task says where a transaction ends. A request applies once
    the batch returned by the current ``poll()`` (or the next one, when called between polls)
    is handed to Kafka. Thread-safe."""

    def commit_transaction(self) -> None:
        """Commit the open transaction (records, dead letters and their offsets) after the
        current batch."""
        ...

    def abort_transaction(self) -> None:
        """Abort the open transaction after the current batch: its records are dropped, and
        their offsets are committed anyway (in a transaction of their own), so that the task
        does not see the same input again."""
        ...


class ConnectorContext(Protocol):
    """Given to :meth:`SourceConnector.start`."""

    connector_name: str
    config: BaseModel
    logger: logging.LoggerAdapter[logging.Logger]
    offset_reader: OffsetReader

    def set_status_detail(self, name: str, value: Any) -> None:
        """Publish a detail (for example rejected topics) in the connector's status."""
        ...


class TaskContext(Protocol):
    """Given to :meth:`SourceTask.start`. Thread-safe: the task may keep it and use it from its
    own receiver threads.

    Attributes:
        connector_name: the connector this task belongs to.
        task_id: 0-based index of the task.
        config: the connector's validated plugin config model.
        task_config: this task's share of the work, as returned by ``task_configs``.
        offset_reader: committed offsets of this connector.
        logger: a logger adapter that already names the connector and task.
        clock: monotonic seconds; injected so tests can drive time.
        transaction_context: set only under exactly-once with
            ``transaction.boundary: connector``; ``None`` otherwise.
    """

    connector_name: str
    task_id: int
    config: BaseModel
    task_config: Mapping[str, Any]
    offset_reader: OffsetReader
    logger: logging.LoggerAdapter[logging.Logger]
    clock: Callable[[], float]
    transaction_context: TransactionContext | None

    def set_status_detail(self, name: str, value: Any) -> None:
        """Publish a detail (for example the buffer depth or a gap) in the task's status."""
        ...

    def count(self, metric: str, amount: float = 1.0, **labels: str) -> None:
        """Increment a plugin counter; exported as ``connector_plugin_<metric>_total``."""
        ...

    def gauge(self, metric: str, value: float, **labels: str) -> None:
        """Set a plugin gauge (a depth, a connection count, an epoch-seconds expiry); exported
        as ``connector_plugin_<metric>``. docs/OPERATIONS.md names the ones streaming sources
        share, so that one dashboard and one set of alerts fit every such plugin."""
        ...
