"""The public SPI: everything a plugin needs, and nothing else.

A plugin subclasses :class:`SourceConnector` and :class:`SourceTask`, declares a
:class:`PluginSpec` with a pydantic config model, and registers the connector class under the
``connector.plugins`` entry-point group.
"""

from connector.api.connector import (
    ConnectorTransactionBoundaries,
    ExactlyOnceSupport,
    SourceConnector,
    TaskConfig,
)
from connector.api.context import ConnectorContext, OffsetReader, TaskContext, TransactionContext
from connector.api.errors import (
    ConfigError,
    ConfigIssue,
    ConnectorError,
    ConversionError,
    DeliveryError,
    OffsetStoreError,
    RetriableError,
    TaskFailedError,
)
from connector.api.record import (
    AvroSchema,
    Header,
    MalformedInput,
    Polled,
    SourceOffset,
    SourcePartition,
    SourceRecord,
)
from connector.api.spec import PluginSpec
from connector.api.task import SourceTask

__all__ = [
    "AvroSchema",
    "ConfigError",
    "ConfigIssue",
    "ConnectorContext",
    "ConnectorError",
    "ConnectorTransactionBoundaries",
    "ConversionError",
    "DeliveryError",
    "ExactlyOnceSupport",
    "Header",
    "MalformedInput",
    "OffsetReader",
    "OffsetStoreError",
    "PluginSpec",
    "Polled",
    "RetriableError",
    "SourceConnector",
    "SourceOffset",
    "SourcePartition",
    "SourceRecord",
    "SourceTask",
    "TaskConfig",
    "TaskContext",
    "TaskFailedError",
    "TransactionContext",
]
