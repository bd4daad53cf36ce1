"""The source connector contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar

from pydantic import BaseModel

from connector.api.context import ConnectorContext
from connector.api.errors import ConfigIssue
from connector.api.record import AvroSchema
from connector.api.spec import PluginSpec
from connector.api.task import SourceTask

TaskConfig = Mapping[str, Any]
"""One task's share of the work; JSON-compatible so it can be shown and stored."""


class ExactlyOnceSupport(Enum):
    """Connect's ``ExactlyOnceSupport``: whether a connector's tasks, run with transactions,
    deliver each record once. That needs a source the task can resume exactly at a committed
    offset (or, for a live source, a guarantee stated from what the task received on)."""

    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"


class ConnectorTransactionBoundaries(Enum):
    """Connect's ``ConnectorTransactionBoundaries``: whether the tasks can decide where
    transactions end (``transaction.boundary=connector``) through
    :attr:`~connector.api.TaskContext.transaction_context`."""

    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"


class SourceConnector(ABC):
    """Splits a source into tasks. Lives on the worker's main thread.

    Subclasses set :attr:`spec` and :attr:`task_class`, and implement :meth:`task_configs`.
    """

    spec: ClassVar[PluginSpec]
    task_class: ClassVar[type[SourceTask]]

    def validate(self, config: BaseModel) -> list[ConfigIssue]:
        """Cross-field checks beyond the config model (which the runtime applies first).

        Offline only: no network. Returns every issue found; empty when valid.
        """
        return []

    def check_connection(self, config: BaseModel) -> list[ConfigIssue]:
        """Online checks for ``connector validate --connect`` (credentials, permissions)."""
        return []

    def value_schemas(self, config: BaseModel, connector_name: str) -> Mapping[str, AvroSchema]:
        """Kafka topic -> the Avro value schema this connector writes there, when known ahead.

        The runtime registers (or looks up) these before a task starts, so a missing or
        incompatible schema fails before any source is read; ``connector validate --connect``
        checks them for compatibility against the registry. Default: none known.
        """
        return {}

    def exactly_once_support(self, config: BaseModel) -> ExactlyOnceSupport | None:
        """Whether exactly-once delivery holds for this configuration (Connect's
        ``exactlyOnceSupport``). ``connector validate`` refuses ``exactly.once.support:
        required`` unless this returns ``SUPPORTED``. Default ``None``: not declared, treated
        as unsupported."""
        return None

    def can_define_transaction_boundaries(
        self, config: BaseModel
    ) -> ConnectorTransactionBoundaries:
        """Whether the tasks define their own transaction boundaries (Connect's
        ``canDefineTransactionBoundaries``); required by ``transaction.boundary: connector``.
        Default: unsupported."""
        return ConnectorTransactionBoundaries.UNSUPPORTED

    def start(self, ctx: ConnectorContext) -> None:  # noqa: B027
        """Called once before :meth:`task_configs`, with the validated config in ``ctx``."""

    @abstractmethod
    def task_configs(self, max_tasks: int) -> list[TaskConfig]:
        """Split the work into at most ``max_tasks`` task configs (at least one)."""

    def stop(self) -> None:  # noqa: B027
        """Called once when the connector stops, after its tasks have stopped."""
