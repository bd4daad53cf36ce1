"""The worker: hosts every connector and task of a deployment in one process.

Owns the shared producer, the offset store and the admin client; starts connectors, splits them
into tasks and runs each task on its own thread; supervises them (a failed task is restarted
with bounded exponential backoff, its failure and trace visible in its status); and stops
everything gracefully: tasks stop polling, in-flight records are acked, offsets committed.
Threads: ``run``/``stop`` are called from the main thread; runners have their own threads.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import AdminClient

from connector.api import SourceConnector, TaskFailedError
from connector.backoff import ExponentialBackoff
from connector.config.validate import ConnectorDeployment, Deployment
from connector.runtime.context import RuntimeConnectorContext, RuntimeTaskContext
from connector.runtime.metrics import WorkerMetrics
from connector.runtime.offset_store import KafkaOffsetStore, StoreOffsetReader
from connector.runtime.producer import DataProducer, RecordProducer
from connector.runtime.status import State, TaskStatus
from connector.runtime.task_runner import SourceTaskRunner
from connector.runtime.topics import ensure_topic
from connector.runtime.transactions import (
    TaskTransactionContext,
    TransactionalProducer,
    TransactionSettings,
    transaction_timeout_ms,
    transactional_id,
)
from connector.serde.factory import make_converter
from connector.transforms.chain import build_chain

logger = logging.getLogger(__name__)


@dataclass
class _TaskSlot:
    """One task position of a connector, across restarts of its runner."""

    connector: _ConnectorRuntime
    task_id: int
    task_config: dict[str, Any]
    status: TaskStatus
    backoff: ExponentialBackoff
    runner: SourceTaskRunner | None = None
    restart_at: float | None = None


@dataclass
class _ConnectorRuntime:
    deployment: ConnectorDeployment
    instance: SourceConnector
    ctx: RuntimeConnectorContext
    state: State = State.UNASSIGNED
    trace: str | None = None
    slots: list[_TaskSlot] = field(default_factory=list)
    value_schemas: dict[str, Any] = field(default_factory=dict)


class Worker:
    """Runs a validated :class:`Deployment`."""

    def __init__(self, deployment: Deployment, *, clock: Callable[[], float] = time.monotonic):
        self.deployment = deployment
        self.config = deployment.worker
        self._clock = clock
        self._admin: AdminClient | None = None
        self._producer: DataProducer | None = None
        self._offset_store: KafkaOffsetStore | None = None
        self._connector_stores: dict[str, KafkaOffsetStore] = {}  # offsets.storage.topic
        self._exactly_once = deployment.worker.exactly_once_source_support == "enabled"
        self._connectors: dict[str, _ConnectorRuntime] = {}
        self._topics: set[str] = set()
        self._topics_lock = threading.Lock()
        self._registry_clients: dict[str, Any] = {}
        self._stopping = threading.Event()
        self.metrics = WorkerMetrics()

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        worker = self.config
        self._admin = AdminClient({"bootstrap.servers": worker.bootstrap_servers})
        self._offset_store = KafkaOffsetStore(
            worker.bootstrap_servers,
            worker.offset_storage_topic,
            partitions=worker.offset_storage_partitions,
            replication_factor=worker.offset_storage_replication_factor,
            flush_timeout_s=worker.offset_flush_timeout_ms / 1000.0,
        )
        # Under exactly-once each task reads the offsets itself, once it has fenced its
        # previous generation (whose open transaction would hold a read_committed read).
        self._offset_store.start(self._admin, read=not self._exactly_once)
        if not self._exactly_once:  # exactly-once tasks have a producer each
            self._producer = DataProducer(worker.bootstrap_servers, worker.producer)
        for deployment in self.deployment.connectors:
            self._start_connector(deployment)

    def _start_connector(self, deployment: ConnectorDeployment) -> None:
        assert self._offset_store is not None
        connector_config = deployment.connector_config
        instance = deployment.connector_class()
        ctx = RuntimeConnectorContext(
            connector_name=connector_config.name,
            config=deployment.plugin_config,
            offset_reader=self._offset_reader(connector_config),
        )
        runtime = _ConnectorRuntime(deployment, instance, ctx)
        self._connectors[connector_config.name] = runtime
        try:
            instance.start(ctx)
            runtime.value_schemas = dict(
                instance.value_schemas(deployment.plugin_config, connector_config.name)
            )
            task_configs = instance.task_configs(connector_config.tasks_max)
            if not task_configs or len(task_configs) > connector_config.tasks_max:
                raise TaskFailedError(
                    f"connector {connector_config.name} produced {len(task_configs)} task configs; "
                    f"expected 1..{connector_config.tasks_max} (tasks.max)"
                )
        except Exception as exc:
            runtime.state = State.FAILED
            runtime.trace = "".join(traceback.format_exception(exc))
            logger.error("connector %s failed to start: %s", connector_config.name, exc)
            return
        runtime.state = State.RUNNING
        for task_id, task_config in enumerate(task_configs):
            slot = _TaskSlot(
                connector=runtime,
                task_id=task_id,
                task_config=dict(task_config),
                status=TaskStatus(connector_config.name, task_id),
                backoff=ExponentialBackoff(  # an initial delay above the cap is capped
                    initial_s=min(
                        self.config.task_restart_backoff_initial_ms,
                        self.config.task_restart_backoff_max_ms,
                    )
                    / 1000.0,
                    max_s=self.config.task_restart_backoff_max_ms / 1000.0,
                ),
            )
            runtime.slots.append(slot)
            self._start_task(slot)
        logger.info(
            "connector %s started with %d task(s)", connector_config.name, len(task_configs)
        )

    def _offsets_store(self, connector_config: Any) -> KafkaOffsetStore:
        """The connector's primary offsets store: its own ``offsets.storage.topic``, else the
        worker's."""
        assert self._offset_store is not None and self._admin is not None
        topic = connector_config.offsets_storage_topic
        if topic is None or topic == self._offset_store.topic:
            return self._offset_store
        store = self._connector_stores.get(topic)
        if store is None:
            worker = self.config
            store = KafkaOffsetStore(
                worker.bootstrap_servers,
                topic,
                partitions=worker.offset_storage_partitions,
                replication_factor=worker.offset_storage_replication_factor,
                flush_timeout_s=worker.offset_flush_timeout_ms / 1000.0,
            )
            store.start(self._admin, read=not self._exactly_once)
            self._connector_stores[topic] = store
        return store

    def _offset_reader(self, connector_config: Any) -> StoreOffsetReader:
        return StoreOffsetReader(
            self._offsets_store(connector_config), connector_config.name, self._offset_store
        )

    def _task_delivery(
        self, connector_config: Any, task_id: int
    ) -> tuple[RecordProducer, TransactionSettings | None, TaskTransactionContext | None]:
        """The task's producer: the worker's shared one, or under exactly-once a
        transactional producer of its own with its transaction settings."""
        worker = self.config
        if not self._exactly_once:
            assert self._producer is not None
            return self._producer, None, None
        interval_ms = (
            connector_config.transaction_boundary_interval_ms or worker.offset_flush_interval_ms
        )
        tid = transactional_id(worker.group_id, connector_config.name, task_id)
        producer = TransactionalProducer(
            worker.bootstrap_servers,
            tid,
            worker.producer,
            transaction_timeout_ms=transaction_timeout_ms(interval_ms),
        )
        settings = TransactionSettings(
            transactional_id=tid,
            offsets_topic=self._offsets_store(connector_config).topic,
            boundary=connector_config.transaction_boundary,
            interval_s=interval_ms / 1000.0,
            transaction_timeout_s=producer.transaction_timeout_s,
        )
        boundary = connector_config.transaction_boundary
        context = TaskTransactionContext() if boundary == "connector" else None
        return producer, settings, context

    def _start_task(self, slot: _TaskSlot) -> None:
        assert self._offset_store is not None
        deployment = slot.connector.deployment
        connector_config = deployment.connector_config
        worker = self.config
        slot.status.set(State.UNASSIGNED)
        producer, transactions, transaction_context = self._task_delivery(
            connector_config, slot.task_id
        )
        if transactions is not None:
            slot.status.detail("transactional.id", transactions.transactional_id)
        ctx = RuntimeTaskContext(
            connector_name=connector_config.name,
            task_id=slot.task_id,
            config=deployment.plugin_config,
            task_config=slot.task_config,
            offset_reader=self._offset_reader(connector_config),
            status=slot.status,
            metrics=self.metrics,
            clock=self._clock,
            transaction_context=transaction_context,
        )
        converters = [
            make_converter(
                kind,
                config,
                is_key=is_key,
                worker_registry_url=worker.schema_registry_url,
                worker_registry_config=worker.schema_registry,
                clients=self._registry_clients,
            )
            for kind, config, is_key in (
                (connector_config.key_converter, connector_config.key_converter_config, True),
                (connector_config.value_converter, connector_config.value_converter_config, False),
            )
        ]
        slot.runner = SourceTaskRunner(
            task=deployment.connector_class.task_class(),
            ctx=ctx,
            status=slot.status,
            connector_config=connector_config,
            worker=worker,
            producer=producer,
            offset_store=self._offsets_store(connector_config),
            key_converter=converters[0],
            value_converter=converters[1],
            transform=build_chain(
                connector_config.transforms,
                connector_config.transforms_config,
                connector_config.predicates,
                connector_config.predicates_config,
            ),
            ensure_topic=lambda topic: self._ensure_topic(topic, connector_config, transactions),
            value_schemas=slot.connector.value_schemas,
            metrics=self.metrics,
            clock=self._clock,
            transactions=transactions,
        )
        slot.runner.start()

    def _ensure_topic(
        self, topic: str, connector_config: Any, transactions: TransactionSettings | None = None
    ) -> None:
        if transactions is not None and topic == transactions.offsets_topic:
            # Connect refuses it too: the task's open transaction would hold its own
            # read_committed read of the offsets.
            raise TaskFailedError(
                f"connector {connector_config.name} may not write records to its own offsets "
                f"topic {topic} under exactly-once"
            )
        with self._topics_lock:
            if topic in self._topics:
                return
            assert self._admin is not None
            if ensure_topic(
                self._admin,
                topic,
                partitions=connector_config.topic_creation_default_partitions,
                replication_factor=connector_config.topic_creation_default_replication_factor,
            ):
                logger.info("created topic %s", topic)
            self._topics.add(topic)

    # -- supervise -------------------------------------------------------------------------

    def supervise_once(self) -> None:
        """Restart failed tasks whose backoff has elapsed. Called periodically by :meth:`run`."""
        now = self._clock()
        for runtime in self._connectors.values():
            for slot in runtime.slots:
                if slot.restart_at is not None:
                    if now >= slot.restart_at and not self._stopping.is_set():
                        slot.restart_at = None
                        slot.status.restarts += 1
                        self._start_task(slot)
                    continue
                runner = slot.runner
                if runner is None or runner.is_alive or slot.status.state != State.FAILED:
                    continue
                if runner.fenced:
                    continue  # a newer instance owns the task: restarting would fence it
                limit = self.config.task_restart_max_retries
                if limit >= 0 and slot.status.restarts >= limit:
                    continue  # stays FAILED, with its trace, until restarted by an operator
                delay = slot.backoff.next_delay()
                slot.restart_at = now + delay
                slot.status.detail("restart_in_s", round(delay, 1))
                logger.warning(
                    "task %s-%d failed; restarting in %.1fs",
                    runtime.deployment.name,
                    slot.task_id,
                    delay,
                )

    def run(self, stop: threading.Event, tick_s: float = 0.2) -> None:
        """Supervise until ``stop`` is set, then stop gracefully."""
        while not stop.wait(tick_s):
            self.supervise_once()
        self.stop()

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        runners = [
            slot.runner
            for runtime in self._connectors.values()
            for slot in runtime.slots
            if slot.runner is not None
        ]
        for runner in runners:
            runner.request_stop()
        # a runner bounds its own stop by offset.flush.timeout.ms; wait a little longer
        grace = max(
            self.config.task_shutdown_graceful_timeout_ms, self.config.offset_flush_timeout_ms
        )
        deadline = time.monotonic() + grace / 1000.0 + 5.0
        for runner in runners:
            if not runner.join(max(0.0, deadline - time.monotonic())):
                logger.error("task %s did not stop in time", runner.thread.name)
        for runtime in self._connectors.values():
            try:
                runtime.instance.stop()
            except Exception:
                logger.exception("connector %s stop() failed", runtime.deployment.name)
            runtime.state = State.STOPPED
        if self._producer is not None:
            self._producer.close()
        for store in self._connector_stores.values():
            store.close()
        if self._offset_store is not None:
            self._offset_store.close()
        logger.info("worker stopped")

    # -- status ----------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Kafka Connect's ``GET /connectors/{name}/status`` shape, for every connector."""
        result = []
        for name, runtime in self._connectors.items():
            connector: dict[str, Any] = {"state": runtime.state.value, "worker_id": "local"}
            if runtime.trace:
                connector["trace"] = runtime.trace
            if runtime.ctx.details:
                connector["details"] = dict(runtime.ctx.details)
            result.append(
                {
                    "name": name,
                    "connector": connector,
                    "tasks": [
                        {**slot.status.snapshot(), "worker_id": "local"} for slot in runtime.slots
                    ],
                    "type": "source",
                }
            )
        return result

    def runners(self) -> list[SourceTaskRunner]:
        return [
            slot.runner
            for runtime in self._connectors.values()
            for slot in runtime.slots
            if slot.runner is not None
        ]
