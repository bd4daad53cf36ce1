"""The worker: hosts every connector and task of a deployment in one process.

Owns the shared producer, the offset store and the admin client; starts connectors, splits them
into tasks and runs each task on its own thread; supervises them (a failed task is restarted
with bounded exponential backoff, its failure and trace visible in its status, and the
connector shown FAILED while every one of its tasks is); and stops everything gracefully: tasks
stop polling, in-flight records are acked, offsets committed, every Kafka client closed.
Threads: ``run``/``stop`` are called from the main thread; runners have their own threads.

Status, as Kafka Connect shows it (``GET /connectors/{name}/status``), with one difference:
Connect never restarts a failed task by itself, so its connector stays RUNNING while tasks fail;
this worker does restart them, so a task that fails at every start would loop unseen behind a
RUNNING connector. Hence: a task is FAILED (with its trace and ``details.restart_in_s``) while
it waits for its restart, RESTARTING (keeping the trace of the failure) from its restart until
it runs; the connector is FAILED while *every* task is FAILED or RESTARTING, its ``trace`` then
a short reason naming each task's last error; otherwise it is RUNNING (or FAILED with its own
trace if the connector itself failed to start).

Garbage collection: full collections walk every long-lived object (modules, parsed schemas,
compiled writers) while holding the GIL; at 5,000 events/s they were 30-60 ms stalls, the whole
p99 latency. So the worker moves what is alive once a task runs out of the collector's reach
(``gc.freeze()``), after collecting first (``unfreeze``, ``collect``) so that the runners of
stopped or failed tasks do not become immortal, and freezes again (cheaply, no collection) once
a new topic, with its freshly compiled schema, appears. ``stop`` unfreezes everything.
"""

from __future__ import annotations

import gc
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
from connector.runtime.kafka_logging import LibrdkafkaLogger
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
    running_since: float | None = None
    """When the supervisor first saw the current runner RUNNING (None: not running)."""


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
        self.metrics = WorkerMetrics(status=self.status)
        self._active_topics: dict[str, set[str]] = {}  # per connector (Connect's topic tracking)
        self._new_topics = False  # set by task threads, read by the supervisor
        # A restarted task that stays up this long is healthy again: its next failure starts
        # the backoff over. As long as the longest delay, so that a task failing less often
        # than that is never restarted faster than one failing in a tight loop.
        self._healthy_after_s = self.config.task_restart_backoff_max_ms / 1000.0

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        worker = self.config
        logs = self._kafka_logs.client_config()  # librdkafka's lines through Python logging
        try:
            self._admin = AdminClient({"bootstrap.servers": worker.bootstrap_servers, **logs})
            self._offset_store = KafkaOffsetStore(
                worker.bootstrap_servers,
                worker.offset_storage_topic,
                partitions=worker.offset_storage_partitions,
                replication_factor=worker.offset_storage_replication_factor,
                flush_timeout_s=worker.offset_flush_timeout_ms / 1000.0,
                client_config=logs,
            )
            # Under exactly-once each task reads the offsets itself, once it has fenced its
            # previous generation (whose open transaction would hold a read_committed read).
            self._offset_store.start(self._admin, read=not self._exactly_once)
            if not self._exactly_once:  # exactly-once tasks have a producer each
                self._producer = DataProducer(
                    worker.bootstrap_servers,
                    {**self._producer_observability(), **worker.producer},
                )
        except BaseException:
            self._close_clients()  # Kafka unreachable at start: nothing may stay connected
            raise
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
        if slot.status.restarts:  # a restart after a failure keeps that failure's trace
            slot.status.set(State.RESTARTING, slot.status.trace)
        else:
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
        if slot.connector.state == State.PAUSED:
            slot.runner.pause()  # a restart inside a paused connector stays paused
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
        if topic != connector_config.errors_deadletterqueue_topic_name:
            self._active_topics.setdefault(connector_config.name, set()).add(topic)
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
            self._new_topics = True  # its schema was just compiled: long-lived from now on

    # -- supervise -------------------------------------------------------------------------

    def supervise_once(self) -> None:
        """Restart failed tasks whose backoff has elapsed, reset the backoff of tasks healthy
        again, and tune the GC after a task started. Called periodically by :meth:`run`."""
        now = self._clock()
        started = False
        for runtime in self._connectors.values():
            for slot in runtime.slots:
                started |= self._watch_health(slot, now)
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
        if started or self._new_topics:
            self._new_topics = False
            _freeze_long_lived(collect=started)

    def _watch_health(self, slot: _TaskSlot, now: float) -> bool:
        """Track how long the slot's runner has been RUNNING; reset the slot's restart backoff
        once it has run for ``task.restart.backoff.max.ms``. True when it was just seen
        starting to run."""
        runner = slot.runner
        if runner is None or slot.status.state != State.RUNNING or not runner.is_alive:
            slot.running_since = None
            return False
        if slot.running_since is None:
            slot.running_since = now
            return True
        if slot.backoff.attempts and now - slot.running_since >= self._healthy_after_s:
            slot.backoff.reset()
            logger.info(
                "task %s-%d has run for %.0fs since its restart; restart backoff reset",
                slot.connector.deployment.name,
                slot.task_id,
                now - slot.running_since,
            )
        return False

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
        self._stop_slots([slot for runtime in self._connectors.values() for slot in runtime.slots])
        for runtime in self._connectors.values():
            try:
                runtime.instance.stop()
            except Exception:
                logger.exception("connector %s stop() failed", runtime.deployment.name)
            runtime.state = State.STOPPED
        self._close_clients()
        gc.unfreeze()  # what the worker froze is collectable again once it is stopped
        logger.info("worker stopped")

    def _close_clients(self) -> None:
        """Close every client the worker made, now rather than whenever the collector gets to
        them: a live librdkafka client keeps its threads and keeps reconnecting."""
        if self._producer is not None:
            self._producer.close()
            self._producer = None
        for store in self._connector_stores.values():
            store.close()
        if self._offset_store is not None:
            self._offset_store.close()
            self._offset_store = None
        self._admin = None  # AdminClient has no close(): dropping the last reference destroys it
        for client in self._registry_clients.values():
            client.close()
        self._registry_clients.clear()

    # -- status ----------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Kafka Connect's ``GET /connectors/{name}/status`` shape, for every connector."""
        result = []
        for name, runtime in self._connectors.items():
            tasks = [{**slot.status.snapshot(), "worker_id": "local"} for slot in runtime.slots]
            state, trace = runtime.state, runtime.trace
            if state == State.RUNNING and tasks and all(t["state"] in _DOWN for t in tasks):
                state, trace = State.FAILED, _tasks_failing_reason(name, tasks)
            connector: dict[str, Any] = {"state": state.value, "worker_id": "local"}
            if trace:
                connector["trace"] = trace
            if runtime.ctx.details:
                connector["details"] = dict(runtime.ctx.details)
            result.append({"name": name, "connector": connector, "tasks": tasks, "type": "source"})
        return result

    def runners(self) -> list[SourceTaskRunner]:
        return [
            slot.runner
            for runtime in self._connectors.values()
            for slot in runtime.slots
            if slot.runner is not None
        ]

    # -- operations (the REST API's verbs) -------------------------------------------------
    # Called from REST request threads while the main thread supervises: one lock serialises
    # them with each other; each leaves every slot with a live runner or a final state, so the
    # supervisor never sees a half-done change.

    _operations_lock = threading.Lock()
    _kafka_logs = LibrdkafkaLogger()

    def _producer_observability(self) -> dict[str, Any]:
        """librdkafka statistics into the metrics, its logs into Python logging (worker
        ``producer.statistics.interval.ms`` overrides the interval; 0 turns statistics off)."""
        return {
            "statistics.interval.ms": 15000,
            "stats_cb": self.metrics.producer_statistics,
            **self._kafka_logs.client_config(),
        }

    def started(self) -> bool:
        """True once :meth:`start` has started every connector of the deployment."""
        return self._producer is not None and len(self._connectors) == len(
            self.deployment.connectors
        )

    def connector_state(self, name: str) -> State:
        return self._runtime(name).state

    def pause_connector(self, name: str) -> None:
        """Connect's pause: tasks stop polling but stay started (their source connections
        open where the plugin can); acks and offset commits go on. Idempotent."""
        with self._operations_lock:
            runtime = self._runtime(name)
            if runtime.state in (State.STOPPED, State.FAILED):
                return
            runtime.state = State.PAUSED
            for slot in runtime.slots:
                if slot.runner is not None:
                    slot.runner.pause()
            logger.info("connector %s paused", name)

    def resume_connector(self, name: str) -> None:
        """Resume a paused connector, or start a stopped one again (Connect: both)."""
        with self._operations_lock:
            runtime = self._runtime(name)
            if runtime.state == State.STOPPED:
                self._start_connector(runtime.deployment)
                return
            if runtime.state != State.PAUSED:
                return
            runtime.state = State.RUNNING
            for slot in runtime.slots:
                if slot.runner is not None:
                    slot.runner.resume()
            logger.info("connector %s resumed", name)

    def stop_connector(self, name: str) -> None:
        """Connect's STOPPED: every task shut down gracefully (offsets committed), the connector
        stopped; it lists no tasks until resumed. Required before its offsets are changed."""
        with self._operations_lock:
            runtime = self._runtime(name)
            if runtime.state == State.STOPPED:
                return
            self._stop_slots(runtime.slots)
            runtime.slots = []
            self._stop_instance(runtime)
            runtime.state = State.STOPPED
            runtime.trace = None
            logger.info("connector %s stopped", name)

    def restart_connector(
        self, name: str, *, include_tasks: bool = False, only_failed: bool = False
    ) -> dict[str, Any]:
        """KIP-745 restart. Returns the connector's status as it was when the restart was
        decided, with what is restarted shown as RESTARTING (Connect's 202 body)."""
        with self._operations_lock:
            runtime = self._runtime(name)
            restart_connector = not only_failed or runtime.state == State.FAILED
            slots = [
                slot
                for slot in runtime.slots
                if include_tasks and (not only_failed or slot.status.state == State.FAILED)
            ]
            planned = self._status_of(name)
            if restart_connector:
                planned["connector"]["state"] = State.RESTARTING.value
                planned["connector"].pop("trace", None)
            restarted_ids = {slot.task_id for slot in slots}
            for task in planned["tasks"]:
                if task["id"] in restarted_ids:
                    task["state"] = State.RESTARTING.value
                    task.pop("trace", None)
            if restart_connector and runtime.state == State.FAILED and not runtime.slots:
                self._start_connector(runtime.deployment)  # never got as far as its tasks
                return planned
            if restart_connector and runtime.state != State.STOPPED:
                self._stop_instance(runtime)
                try:
                    runtime.instance.start(runtime.ctx)
                    # as in Connect, the restarted connector generates its task configs again
                    # (a plugin may reserve resources there); changed ones restart their tasks
                    fresh = runtime.instance.task_configs(
                        runtime.deployment.connector_config.tasks_max
                    )
                    for slot, config in zip(runtime.slots, fresh, strict=False):
                        if dict(config) != slot.task_config:
                            slot.task_config = dict(config)
                            if slot not in slots:
                                slots.append(slot)
                    runtime.state = State.PAUSED if runtime.state == State.PAUSED else State.RUNNING
                    runtime.trace = None
                except Exception as exc:
                    runtime.state = State.FAILED
                    runtime.trace = "".join(traceback.format_exception(exc))
                    logger.error("connector %s failed to restart: %s", name, exc)
            for slot in slots:
                self._restart_slot(slot)
            return planned

    def restart_task(self, name: str, task_id: int) -> None:
        """Restart one task now, whatever its state (an operator's restart: its backoff starts
        over)."""
        with self._operations_lock:
            self._restart_slot(self._slot(name, task_id))

    def task_status(self, name: str, task_id: int) -> dict[str, Any]:
        slot = self._slot(name, task_id)
        return {**slot.status.snapshot(), "worker_id": self.worker_id}

    def task_configs(self, name: str) -> list[dict[str, Any]]:
        return [dict(slot.task_config) for slot in self._runtime(name).slots]

    def connector_topics(self, name: str) -> list[str]:
        """Topics the connector's records went to since it started or the last reset."""
        self._runtime(name)
        return sorted(self._active_topics.get(name, ()))

    def reset_connector_topics(self, name: str) -> None:
        runtime = self._runtime(name)
        self._active_topics.pop(name, None)
        for slot in runtime.slots:
            if slot.runner is not None:
                slot.runner.pipeline.forget_topics()

    def connector_offsets(self, name: str) -> list[dict[str, Any]]:
        """Committed offsets of ``name``: Connect's ``[{"partition":..,"offset":..}]``."""
        self._runtime(name)
        assert self._offset_store is not None
        return [
            {"partition": partition, "offset": offset}
            for _, (partition, offset) in sorted(self._offset_store.offsets(name).items())
        ]

    def alter_connector_offsets(
        self, name: str, offsets: list[tuple[dict[str, Any], dict[str, Any] | None]]
    ) -> None:
        """KIP-875 alter: write the listed partitions' offsets (None resets one); only when
        the connector is STOPPED, so no task commits over them."""
        with self._operations_lock:
            self._require_stopped(name)
            assert self._offset_store is not None
            self._offset_store.write(name, offsets)

    def reset_connector_offsets(self, name: str) -> None:
        """KIP-875 reset: tombstone every committed offset of a STOPPED connector."""
        with self._operations_lock:
            self._require_stopped(name)
            assert self._offset_store is not None
            committed = self._offset_store.offsets(name)
            if committed:
                self._offset_store.write(name, [(p, None) for p, _ in committed.values()])

    @property
    def worker_id(self) -> str:
        """Connect's ``worker_id``: where this worker's REST API is advertised."""
        port = self.config.rest_port
        return f"{self.config.rest_host}:{port}" if port else "local"

    _cluster_id: str | None = None

    def kafka_cluster_id(self, timeout_s: float = 5.0) -> str | None:
        """The Kafka cluster id (``GET /``'s ``kafka_cluster_id``); None while unreachable."""
        if self._cluster_id is None and self._admin is not None:
            try:
                self._cluster_id = self._admin.list_topics(timeout=timeout_s).cluster_id
            except Exception as exc:
                logger.debug("cluster id not known yet: %s", exc)
        return self._cluster_id

    def broker_reachable(self, timeout_s: float = 2.0) -> bool:
        """Whether a metadata request to Kafka succeeds within ``timeout_s``."""
        if self._admin is None:
            return False
        try:
            self._admin.list_topics(timeout=timeout_s)
        except Exception:
            return False
        return True

    def _status_of(self, name: str) -> dict[str, Any]:
        for entry in self.status():
            if entry["name"] == name:
                return entry
        raise ConnectorNotFoundError(name)  # pragma: no cover - runtime exists

    def _runtime(self, name: str) -> _ConnectorRuntime:
        runtime = self._connectors.get(name)
        if runtime is None:
            raise ConnectorNotFoundError(name)
        return runtime

    def _slot(self, name: str, task_id: int) -> _TaskSlot:
        runtime = self._runtime(name)
        for slot in runtime.slots:
            if slot.task_id == task_id:
                return slot
        raise TaskNotFoundError(name, task_id)

    def _require_stopped(self, name: str) -> None:
        if self._runtime(name).state != State.STOPPED:
            raise ConnectorStateError(
                "Connectors must be in the STOPPED state before their offsets can be modified. "
                "This can be done for the specified connector by issuing a 'PUT' request to the "
                f"'/connectors/{name}/stop' endpoint"
            )

    def _stop_slots(self, slots: list[_TaskSlot]) -> None:
        for slot in slots:
            slot.restart_at = None
        runners = [slot.runner for slot in slots if slot.runner is not None]
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

    def _stop_instance(self, runtime: _ConnectorRuntime) -> None:
        try:
            runtime.instance.stop()
        except Exception:
            logger.exception("connector %s stop() failed", runtime.deployment.name)

    def _restart_slot(self, slot: _TaskSlot) -> None:
        self._stop_slots([slot])
        slot.restart_at = None
        slot.backoff.reset()
        slot.status.set(State.RESTARTING)
        self._start_task(slot)
        slot.restart_at = None  # the supervisor may have scheduled one meanwhile
        if slot.connector.state == State.PAUSED and slot.runner is not None:
            slot.runner.pause()


class ConnectorNotFoundError(KeyError):
    """No connector of that name (REST: 404)."""

    def __str__(self) -> str:
        return f"Connector {self.args[0]} not found"


class TaskNotFoundError(KeyError):
    """No task of that id (REST: 404)."""

    def __str__(self) -> str:
        return f"Task {self.args[0]}-{self.args[1]} not found"


class ConnectorStateError(Exception):
    """The operation is not allowed in the connector's current state (REST: 400)."""


_DOWN = (State.FAILED.value, State.RESTARTING.value)
"""Task states after a failure and before the task runs again."""


def _tasks_failing_reason(connector: str, tasks: list[dict[str, Any]]) -> str:
    """The connector's ``trace`` while every task is down: one line per task with its state,
    restarts so far and last error (the last line of its trace)."""
    lines = [f"every task of connector {connector} is failing:"]
    for task in tasks:
        trace = (task.get("trace") or "").strip()
        last = trace.splitlines()[-1][:500] if trace else "no trace"
        lines.append(f"task {task['id']} ({task['state']}, {task['restarts']} restarts): {last}")
    return "\n".join(lines)


def _freeze_long_lived(*, collect: bool) -> None:
    """Move every object alive now out of the cyclic collector's reach (see the module doc).

    With ``collect``, first collect everything, frozen before or not, so that what died since
    the last freeze (a stopped task's runner and its state) is freed rather than kept forever.
    Frozen objects that die are still freed by reference counting; only cycles wait.
    """
    if collect:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
