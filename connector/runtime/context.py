"""The runtime's implementations of the contexts handed to connectors and tasks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from connector.api import OffsetReader, TransactionContext
from connector.runtime.metrics import WorkerMetrics
from connector.runtime.status import TaskStatus


class RuntimeTaskContext:
    """:class:`~connector.api.TaskContext` for one task run."""

    def __init__(
        self,
        *,
        connector_name: str,
        task_id: int,
        config: BaseModel,
        task_config: Mapping[str, Any],
        offset_reader: OffsetReader,
        status: TaskStatus,
        metrics: WorkerMetrics,
        clock: Callable[[], float] = time.monotonic,
        transaction_context: TransactionContext | None = None,
    ) -> None:
        self.connector_name = connector_name
        self.metrics = metrics
        self.transaction_context = transaction_context
        self.task_id = task_id
        self.config = config
        self.task_config = task_config
        self.offset_reader = offset_reader
        self.clock = clock
        self.logger = logging.LoggerAdapter(
            logging.getLogger(f"connector.task.{connector_name}"),
            {"connector": connector_name, "task": task_id},
        )
        self._status = status

    def set_status_detail(self, name: str, value: Any) -> None:
        self._status.detail(name, value)

    def count(self, metric: str, amount: float = 1.0, **labels: str) -> None:
        self.metrics.plugin_counter(metric, tuple(sorted(labels))).labels(
            connector=self.connector_name, task=str(self.task_id), **labels
        ).inc(amount)

    def gauge(self, metric: str, value: float, **labels: str) -> None:
        self.metrics.plugin_gauge(metric, tuple(sorted(labels))).labels(
            connector=self.connector_name, task=str(self.task_id), **labels
        ).set(value)


class RuntimeConnectorContext:
    """:class:`~connector.api.ConnectorContext` for one connector."""

    def __init__(
        self, *, connector_name: str, config: BaseModel, offset_reader: OffsetReader
    ) -> None:
        self.connector_name = connector_name
        self.config = config
        self.offset_reader = offset_reader
        self.logger = logging.LoggerAdapter(
            logging.getLogger(f"connector.{connector_name}"), {"connector": connector_name}
        )
        self.details: dict[str, Any] = {}

    def set_status_detail(self, name: str, value: Any) -> None:
        self.details[name] = value
