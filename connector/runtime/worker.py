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
from connector.runtime.metrics import WorkerMetrics
from connector.runtime.offset_store import KafkaOffsetStore, StoreOffsetReader
from connector.runtime.producer import DataProducer
from connector.runtime.status import State, TaskStatus
from connector.runtime.task_runner import SourceTaskRunner
from connector.runtime.topics import ensure_topic
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
        self._connectors: dict[str, _ConnectorRuntime] = {}
        self._topics: set[str] = set()
        self._topics_lock = threading.Lock()
        self._registry_clients: dict[str, Any] = {}
        self._stopping = threading.Event()
        self.metrics = WorkerMetrics()
        self._new_topics = False  # set by task threads, read by the supervisor
        # A restarted task that stays up this long is healthy again: its next failure starts
        # the backoff over. As long as the longest delay, so that a task failing less often
        # than that is never restarted faster than one failing in a tight loop.
        self._healthy_after_s = self.config.task_restart_backoff_max_ms / 1000.0

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        worker = self.config
        try:
            self._admin = AdminClient({"bootstrap.servers": worker.bootstrap_servers})
            self._offset_store = KafkaOffsetStore(
                worker.bootstrap_servers,
                worker.offset_storage_topic,
                partitions=worker.offset_storage_partitions,
                replication_factor=worker.offset_storage_replication_factor,
                flush_timeout_s=worker.offset_flush_timeout_ms / 1000.0,
            )
            self._offset_store.start(self._admin)
            self._producer = DataProducer(worker.bootstrap_servers, worker.producer)
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
            offset_reader=StoreOffsetReader(self._offset_store, connector_config.name),
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

    def _start_task(self, slot: _TaskSlot) -> None:
        assert self._producer is not None and self._offset_store is not None
        deployment = slot.connector.deployment
        connector_config = deployment.connector_config
        worker = self.config
        if slot.status.restarts:  # a restart after a failure keeps that failure's trace
            slot.status.set(State.RESTARTING, slot.status.trace)
        else:
            slot.status.set(State.UNASSIGNED)
        ctx = RuntimeTaskContext(
            connector_name=connector_config.name,
            task_id=slot.task_id,
            config=deployment.plugin_config,
            task_config=slot.task_config,
            offset_reader=StoreOffsetReader(self._offset_store, connector_config.name),
            status=slot.status,
            metrics=self.metrics,
            clock=self._clock,
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
            producer=self._producer,
            offset_store=self._offset_store,
            key_converter=converters[0],
            value_converter=converters[1],
            transform=build_chain(
                connector_config.transforms,
                connector_config.transforms_config,
                connector_config.predicates,
                connector_config.predicates_config,
            ),
            ensure_topic=lambda topic: self._ensure_topic(topic, connector_config),
            value_schemas=slot.connector.value_schemas,
            metrics=self.metrics,
            clock=self._clock,
        )
        slot.runner.start()

    def _ensure_topic(self, topic: str, connector_config: Any) -> None:
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
        self._close_clients()
        gc.unfreeze()  # what the worker froze is collectable again once it is stopped
        logger.info("worker stopped")

    def _close_clients(self) -> None:
        """Close every client the worker made, now rather than whenever the collector gets to
        them: a live librdkafka client keeps its threads and keeps reconnecting."""
        if self._producer is not None:
            self._producer.close()
            self._producer = None
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
