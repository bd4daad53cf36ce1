"""Prometheus metrics of one worker, named the way the Prometheus JMX exporter names Connect's
JMX metrics (Strimzi's widely used rules), so that existing Connect dashboards and alerts apply.

Connect MBean ``kafka.connect:type=<group>-metrics,connector=..,task=..`` attribute ``<name>``
is exported as ``kafka_connect_<group>_<name>`` with ``-`` as ``_`` and labels ``connector``,
``task``. For example ``source-task-metrics`` / ``source-record-poll-total`` is
``kafka_connect_source_task_source_record_poll_total``; ``task-error-metrics`` /
``total-record-errors`` is ``kafka_connect_task_error_total_record_errors``; a status
attribute becomes one gauge per state (``kafka_connect_connector_task_status{status=..}``, 1
for the current state). ``docs/OPERATIONS.md`` lists every series.

Every series of every task the worker knows exists from the start, at 0, so an alert on it
evaluates before the first failure. Each :class:`WorkerMetrics` owns its own registries:
nothing is registered at import, and two workers in one process never share a counter.

The runtime writes into a private store (prometheus counters, thread-safe) and a few windowed
statistics (Connect's 2 x 30 s samples for rates, averages and maxima); one collector renders
the exported families from them at scrape time, together with the worker's task states, the
plugins' counters and gauges, and librdkafka's statistics.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LABELS = ("connector", "task")
# Connect's status values, as its status attributes show them.
TASK_STATES = ("running", "paused", "failed", "unassigned", "restarting")
CONNECTOR_STATES = (*TASK_STATES, "stopped")
_WINDOW_S = 30.0  # Connect's metrics.sample.window.ms
_SAMPLES = 2  # Connect's metrics.num.samples

StatusProvider = Callable[[], list[dict[str, Any]]]
E2E_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
RETRY_CAUSES = ("registry", "poll")
RECEIVED_TIME_KEYS = ("received_ms", "seen_ms")
"""Source-offset fields that hold when the source record was received (epoch ms): the
WebSocket plugin's ``received_ms``, the Genesys plugin's ``seen_ms``."""


class WindowedStat:
    """Count, sum and max of observations over the last ``samples`` windows (Connect's
    sampled stats): cheap enough for every poll of a fast task."""

    def __init__(
        self, window_s: float = _WINDOW_S, samples: int = _SAMPLES, clock: Any = time.monotonic
    ) -> None:
        self._window_s = window_s
        self._samples = samples
        self._clock = clock
        self._buckets: list[list[float]] = []  # [start, count, sum, max]
        self._lock = threading.Lock()

    def record(self, value: float) -> None:
        now = self._clock()
        with self._lock:
            buckets = self._buckets
            if not buckets or now - buckets[-1][0] >= self._window_s:
                buckets.append([now, 0.0, 0.0, float("-inf")])
                if len(buckets) > self._samples:
                    del buckets[0]
            bucket = buckets[-1]
            bucket[1] += 1
            bucket[2] += value
            if value > bucket[3]:
                bucket[3] = value

    def _live(self) -> list[list[float]]:
        horizon = self._clock() - self._window_s * self._samples
        return [b for b in self._buckets if b[0] >= horizon]

    def snapshot(self) -> tuple[float, float, float, float]:
        """(count, sum, max, elapsed seconds) over the live windows; max 0 when empty."""
        with self._lock:
            live = self._live()
            if not live:
                return 0.0, 0.0, 0.0, 0.0
            count = sum(b[1] for b in live)
            total = sum(b[2] for b in live)
            top = max(b[3] for b in live)
            elapsed = self._clock() - live[0][0]
        return count, total, top, elapsed

    def avg(self) -> float:
        count, total, _, _ = self.snapshot()
        return total / count if count else 0.0

    def max(self) -> float:
        return self.snapshot()[2]

    def rate(self) -> float:
        """Sum per second over the live windows (at least one second, like Connect's Rate
        over a young window)."""
        _, total, _, elapsed = self.snapshot()
        return total / max(elapsed, 1.0)


class _TaskStats:
    """The windowed statistics of one task."""

    def __init__(self) -> None:
        self.poll_time_ms = WindowedStat()
        self.batch_size = WindowedStat()
        self.commit_time_ms = WindowedStat()
        self.commit_outcome = WindowedStat()  # 1 success, 0 failure
        self.polled = _RateOfTotal()
        self.written = _RateOfTotal()


class _RateOfTotal:
    """Per-second rate of a cumulative total over the last two windows, from the totals seen
    at scrape time (nothing on the hot path)."""

    def __init__(self, horizon_s: float = _WINDOW_S * _SAMPLES) -> None:
        self._horizon_s = horizon_s
        self._seen: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def rate(self, total: float, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            seen = self._seen
            seen.append((now, total))
            while len(seen) > 2 and now - seen[1][0] >= self._horizon_s:
                seen.popleft()
            then, before = seen[0]
        return (total - before) / (now - then) if now > then else 0.0


class WorkerMetrics:
    """Every runtime metric of one worker, plus the plugins' counters (``ctx.count``) and
    gauges (``ctx.gauge``)."""

    def __init__(self, status: StatusProvider | None = None) -> None:
        self._store = CollectorRegistry(auto_describe=True)
        store = self._store
        self.records_polled = Counter("poll", "records polled", _LABELS, registry=store)
        self.records_written = Counter("write", "records written", _LABELS, registry=store)
        self.records_filtered = Counter("filtered", "records filtered", _LABELS, registry=store)
        self.dead_lettered = Counter("dlq", "DLQ produce requests", _LABELS, registry=store)
        self.dead_letter_failures = Counter("dlq_fail", "DLQ failures", _LABELS, registry=store)
        self.errors_tolerated = Counter(
            "tolerated", "tolerated failures", (*_LABELS, "stage"), registry=store
        )
        self.record_errors = Counter("errors", "record failures", _LABELS, registry=store)
        self.errors_logged = Counter("logged", "errors logged", _LABELS, registry=store)
        self.retries = Counter("retries", "retried operations", _LABELS, registry=store)
        self.retries_by_cause = Counter(
            "retries_by_cause", "retried operations by cause", (*_LABELS, "cause"), registry=store
        )
        self.last_error_ms = Gauge("last_error", "last error time", _LABELS, registry=store)
        self.offset_commits = Counter(
            "commits", "offset commits", (*_LABELS, "outcome"), registry=store
        )
        self.in_flight = Gauge("active", "records not acked", _LABELS, registry=store)
        self._stats: dict[tuple[str, str], _TaskStats] = {}
        self._plugin_counters: dict[tuple[str, tuple[str, ...]], Counter] = {}
        self._plugin_gauges: dict[tuple[str, tuple[str, ...]], Gauge] = {}
        self._producer_stats: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._status = status
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ConnectCollector(self))
        self.transactions = Counter(
            "connector_source_transaction",
            "Exactly-once transactions ended (committed or aborted)",
            (*_LABELS, "outcome"),
            registry=self.registry,
        )
        self.transaction_commit_seconds = Histogram(
            "connector_source_transaction_commit_seconds",
            "Time to commit a transaction: its offsets produced, commit_transaction returned",
            _LABELS,
            registry=self.registry,
        )
        self.transaction_size = Histogram(
            "connector_source_transaction_size",
            "Items (records, dead letters, dropped records) per committed transaction",
            _LABELS,
            buckets=(1, 10, 100, 1000, 10_000, 100_000),
            registry=self.registry,
        )
        self.e2e_latency = Histogram(
            "kafka_connect_source_task_record_e2e_latency_seconds",
            "From receipt at the source (the offset's received_ms or seen_ms) to the Kafka ack "
            "seen by the task loop: the newest acked record of each source partition, sampled "
            "every loop iteration",
            _LABELS,
            buckets=E2E_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch(self, status: StatusProvider) -> None:
        """Read task and connector states (Connect's ``worker.status()`` shape) at scrape time."""
        self._status = status

    # -- what the runtime reports ----------------------------------------------------------

    def task_stats(self, connector: str, task: int | str) -> _TaskStats:
        key = (connector, str(task))
        stats = self._stats.get(key)
        if stats is None:
            with self._lock:
                stats = self._stats.setdefault(key, _TaskStats())
        return stats

    def observe_poll(self, connector: str, task: int, seconds: float, size: int) -> None:
        """One ``poll()``: its duration and how many records it returned."""
        stats = self.task_stats(connector, task)
        stats.poll_time_ms.record(seconds * 1000.0)
        stats.batch_size.record(size)

    def observe_commit(self, connector: str, task: int, seconds: float | None) -> None:
        """One offset commit: its duration when it succeeded, None when it failed."""
        stats = self.task_stats(connector, task)
        stats.commit_outcome.record(0.0 if seconds is None else 1.0)
        if seconds is not None:
            stats.commit_time_ms.record(seconds * 1000.0)

    def observe_error(self, connector: str, task: int) -> None:
        """A record failed (tolerated or not)."""
        labels = {"connector": connector, "task": str(task)}
        self.record_errors.labels(**labels).inc()
        self.last_error_ms.labels(**labels).set(time.time() * 1000.0)

    def producer_statistics(self, stats_json: str) -> None:
        """librdkafka's ``stats_cb`` (every ``statistics.interval.ms``)."""
        try:
            self._producer_stats = json.loads(stats_json)
        except ValueError:
            return

    # -- plugins ---------------------------------------------------------------------------

    def plugin_counter(self, metric: str, label_names: tuple[str, ...]) -> Counter:
        """A plugin's counter ``connector_plugin_<metric>_total``, created on first use."""
        key = (metric, label_names)
        counter = self._plugin_counters.get(key)
        if counter is None:
            with self._lock:
                counter = self._plugin_counters.get(key)
                if counter is None:
                    counter = Counter(
                        f"connector_plugin_{metric}",
                        f"Plugin counter {metric}",
                        (*_LABELS, *label_names),
                        registry=self.registry,
                    )
                    self._plugin_counters[key] = counter
        return counter

    def plugin_gauge(self, metric: str, label_names: tuple[str, ...]) -> Gauge:
        """A plugin's gauge ``connector_plugin_<metric>``, created on first use."""
        key = (metric, label_names)
        gauge = self._plugin_gauges.get(key)
        if gauge is None:
            with self._lock:
                gauge = self._plugin_gauges.get(key)
                if gauge is None:
                    gauge = Gauge(
                        f"connector_plugin_{metric}",
                        f"Plugin gauge {metric}",
                        (*_LABELS, *label_names),
                        registry=self.registry,
                    )
                    self._plugin_gauges[key] = gauge
        return gauge

    # -- reading ---------------------------------------------------------------------------

    def _values(self) -> dict[str, dict[tuple[str, str], float]]:
        """Store samples by metric name and (connector, task), summed over other labels."""
        values: dict[str, dict[tuple[str, str], float]] = {}
        for metric in self._store.collect():
            for sample in metric.samples:
                if sample.name.endswith("_created"):
                    continue
                labels = sample.labels
                key = (labels.get("connector", ""), labels.get("task", ""))
                name = metric.name
                if name == "commits":
                    name = f"commits_{labels.get('outcome')}"
                bucket = values.setdefault(name, {})
                bucket[key] = bucket.get(key, 0.0) + sample.value
        return values

    def tasks(self) -> list[tuple[str, str]]:
        keys = set(self._stats)
        for values in self._values().values():
            keys |= set(values)
        for entry in self._status() if self._status else []:
            keys |= {(entry["name"], str(t["id"])) for t in entry["tasks"]}
        return sorted(k for k in keys if k[0])


# (exported name, help, store name): cumulative values per task.
_TASK_COUNTERS = (
    ("kafka_connect_source_task_source_record_poll", "Records polled (before transforms)", "poll"),
    (
        "kafka_connect_source_task_source_record_write",
        "Records handed to the producer (after transforms, excluding filtered)",
        "write",
    ),
    (
        "kafka_connect_source_task_source_record_filtered",
        "Records dropped by a transform",
        "filtered",
    ),
    (
        "kafka_connect_connector_task_offset_commit_success",
        "Offset commits that succeeded",
        "commits_success",
    ),
    (
        "kafka_connect_connector_task_offset_commit_failure",
        "Offset commits that failed",
        "commits_failure",
    ),
)
_TASK_ERROR_GAUGES = (
    ("total_record_failures", "Record processing failures", "errors"),
    ("total_record_errors", "Records that failed", "errors"),
    ("total_records_skipped", "Records skipped because of errors (tolerated)", "tolerated"),
    ("total_retries", "Retried operations (registry, poll, conversion)", "retries"),
    ("total_errors_logged", "Errors logged", "logged"),
    ("deadletterqueue_produce_requests", "Writes to the dead-letter topic", "dlq"),
    ("deadletterqueue_produce_failures", "Failed writes to the dead-letter topic", "dlq_fail"),
    ("last_error_timestamp", "Epoch ms of the last record error (0: none)", "last_error"),
)


class _ConnectCollector(Collector):
    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        statuses = metrics._status() if metrics._status else []
        yield from _status_families(statuses)
        values = metrics._values()
        tasks = metrics.tasks()
        for name, help_text, source in _TASK_COUNTERS:
            family = CounterMetricFamily(name, help_text, labels=_LABELS)
            for key in tasks:
                family.add_metric(key, values.get(source, {}).get(key, 0.0))
            yield family
        for name, help_text, source in _TASK_ERROR_GAUGES:
            family = GaugeMetricFamily(
                f"kafka_connect_task_error_{name}", help_text, labels=_LABELS
            )
            for key in tasks:
                family.add_metric(key, values.get(source, {}).get(key, 0.0))
            yield family
        by_stage = CounterMetricFamily(
            "kafka_connect_task_error_records_tolerated",
            "Failures tolerated under errors.tolerance=all (dead-lettered or skipped), by stage",
            labels=(*_LABELS, "stage"),
        )
        for metric in metrics._store.collect():
            if metric.name == "tolerated":
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        labels = sample.labels
                        key = (labels["connector"], labels["task"], labels["stage"])
                        by_stage.add_metric(key, sample.value)
        yield by_stage
        by_cause = CounterMetricFamily(
            "kafka_connect_task_error_retries_by_cause",
            "Retried operations by cause: registry (schema registry errors), poll, other",
            labels=(*_LABELS, "cause"),
        )
        seen: dict[tuple[str, str, str], float] = {
            (connector, task, cause): 0.0 for connector, task in tasks for cause in RETRY_CAUSES
        }
        for metric in metrics._store.collect():
            if metric.name == "retries_by_cause":
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        labels = sample.labels
                        seen[(labels["connector"], labels["task"], labels["cause"])] = sample.value
        for key, value in sorted(seen.items()):
            by_cause.add_metric(key, value)
        yield by_cause
        active = GaugeMetricFamily(
            "kafka_connect_source_task_source_record_active_count",
            "Records polled but not yet acked by Kafka",
            labels=_LABELS,
        )
        for key in tasks:
            active.add_metric(key, values.get("active", {}).get(key, 0.0))
        yield active
        for name, source in (("poll", "poll"), ("write", "write")):
            rate = GaugeMetricFamily(
                f"kafka_connect_source_task_source_record_{name}_rate",
                f"Records per second ({name}), over the last minute",
                labels=_LABELS,
            )
            for key in tasks:
                stats = metrics.task_stats(*key)
                tracker = stats.polled if name == "poll" else stats.written
                rate.add_metric(key, tracker.rate(values.get(source, {}).get(key, 0.0)))
            yield rate
        yield from _windowed_families(metrics, tasks)
        yield from _producer_families(metrics._producer_stats)


def _windowed_families(
    metrics: WorkerMetrics, tasks: Iterable[tuple[str, str]]
) -> Iterator[Metric]:
    specs: tuple[tuple[str, str, Callable[[_TaskStats], float]], ...] = (
        (
            "source_task_poll_batch_max_time_ms",
            "Longest poll() in the window",
            lambda s: s.poll_time_ms.max(),
        ),
        (
            "source_task_poll_batch_avg_time_ms",
            "Average poll() time",
            lambda s: s.poll_time_ms.avg(),
        ),
        ("connector_task_batch_size_max", "Largest poll() batch", lambda s: s.batch_size.max()),
        ("connector_task_batch_size_avg", "Average poll() batch", lambda s: s.batch_size.avg()),
        (
            "connector_task_offset_commit_max_time_ms",
            "Longest offset commit",
            lambda s: s.commit_time_ms.max(),
        ),
        (
            "connector_task_offset_commit_avg_time_ms",
            "Average offset commit time",
            lambda s: s.commit_time_ms.avg(),
        ),
        (
            "connector_task_offset_commit_success_percentage",
            "Share of offset commits that succeeded (0..1)",
            lambda s: s.commit_outcome.avg() if s.commit_outcome.snapshot()[0] else 0.0,
        ),
        (
            "connector_task_offset_commit_failure_percentage",
            "Share of offset commits that failed (0..1)",
            lambda s: 1.0 - s.commit_outcome.avg() if s.commit_outcome.snapshot()[0] else 0.0,
        ),
    )
    tasks = list(tasks)
    for name, help_text, read in specs:
        family = GaugeMetricFamily(f"kafka_connect_{name}", help_text, labels=_LABELS)
        for key in tasks:
            family.add_metric(key, read(metrics.task_stats(*key)))
        yield family


def _status_families(statuses: list[dict[str, Any]]) -> Iterator[Metric]:
    connector_status = GaugeMetricFamily(
        "kafka_connect_connector_status",
        "1 for the connector's current state, 0 for the others",
        labels=("connector", "status"),
    )
    task_status = GaugeMetricFamily(
        "kafka_connect_connector_task_status",
        "1 for the task's current state, 0 for the others",
        labels=(*_LABELS, "status"),
    )
    restarts = CounterMetricFamily(
        "kafka_connect_connector_task_restarts",
        "Automatic restarts of the task after a failure",
        labels=_LABELS,
    )
    worker_counts = {
        state: GaugeMetricFamily(
            f"kafka_connect_worker_connector_{state}_task_count",
            f"Tasks of the connector in state {state}",
            labels=("connector",),
        )
        for state in (
            "total",
            "running",
            "paused",
            "failed",
            "unassigned",
            "restarting",
            "destroyed",
        )
    }
    task_count = 0
    for entry in statuses:
        name = entry["name"]
        state = entry["connector"]["state"].lower()
        for candidate in CONNECTOR_STATES:
            connector_status.add_metric((name, candidate), 1.0 if candidate == state else 0.0)
        counts = dict.fromkeys(worker_counts, 0)
        for task in entry["tasks"]:
            task_state = task["state"].lower()
            key = (name, str(task["id"]))
            for candidate in TASK_STATES:
                task_status.add_metric((*key, candidate), 1.0 if candidate == task_state else 0.0)
            restarts.add_metric(key, float(task.get("restarts", 0)))
            counts["total"] += 1
            if task_state in counts:
                counts[task_state] += 1
        task_count += counts["total"]
        for state_name, family in worker_counts.items():
            family.add_metric((name,), float(counts[state_name]))
    yield connector_status
    yield task_status
    yield restarts
    yield from worker_counts.values()
    yield GaugeMetricFamily(
        "kafka_connect_worker_connector_count", "Connectors of this worker", value=len(statuses)
    )
    yield GaugeMetricFamily(
        "kafka_connect_worker_task_count", "Tasks of this worker", value=task_count
    )


def _producer_families(stats: dict[str, Any]) -> Iterator[Metric]:
    """librdkafka statistics of the data producer (``statistics.interval.ms``)."""
    queue = GaugeMetricFamily(
        "kafka_producer_queue_messages", "Records in the producer's queue (librdkafka msg_cnt)"
    )
    queue_bytes = GaugeMetricFamily(
        "kafka_producer_queue_bytes", "Bytes in the producer's queue (librdkafka msg_size)"
    )
    queue_max = GaugeMetricFamily(
        "kafka_producer_queue_max_messages", "Capacity of the producer's queue (msg_max)"
    )
    queue.add_metric((), float(stats.get("msg_cnt", 0)))
    queue_bytes.add_metric((), float(stats.get("msg_size", 0)))
    queue_max.add_metric((), float(stats.get("msg_max", 0)))
    rtt = GaugeMetricFamily(
        "kafka_producer_broker_rtt_avg_ms", "Average broker round-trip time", labels=("broker",)
    )
    up = GaugeMetricFamily(
        "kafka_producer_broker_up", "1 while the connection to the broker is up", labels=("broker",)
    )
    retries = CounterMetricFamily(
        "kafka_producer_broker_request_retries", "Requests retried", labels=("broker",)
    )
    errors = CounterMetricFamily(
        "kafka_producer_broker_request_errors", "Requests failed", labels=("broker",)
    )
    for broker in (stats.get("brokers") or {}).values():
        if broker.get("nodeid", -1) < 0:
            continue  # bootstrap placeholders
        label = (str(broker.get("nodename", broker.get("name", ""))),)
        rtt.add_metric(label, float((broker.get("rtt") or {}).get("avg", 0)) / 1000.0)
        up.add_metric(label, 1.0 if broker.get("state") == "UP" else 0.0)
        retries.add_metric(label, float(broker.get("txretries", 0)))
        errors.add_metric(
            label, float(broker.get("txerrs", 0)) + float(broker.get("req_timeouts", 0))
        )
    yield from (queue, queue_bytes, queue_max, rtt, up, retries, errors)
