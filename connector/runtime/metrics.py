"""Prometheus metrics of one worker (names follow Connect's source-task metrics).

Each :class:`WorkerMetrics` owns its own ``CollectorRegistry``: nothing is registered at import,
so two workers in one process (tests, the demo) never share or collide on counters, and a
stopped worker's metrics go with it. ``/metrics`` serves :attr:`WorkerMetrics.registry`.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LABELS = ("connector", "task")


class WorkerMetrics:
    """Every runtime metric of one worker, plus the plugins' counters (``ctx.count``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.records_polled = Counter(
            "connector_source_record_poll", "Records returned by poll()", _LABELS, registry=registry
        )
        self.records_written = Counter(
            "connector_source_record_write",
            "Records handed to the producer",
            _LABELS,
            registry=registry,
        )
        self.records_filtered = Counter(
            "connector_source_record_filtered",
            "Records dropped by a transform",
            _LABELS,
            registry=registry,
        )
        self.dead_lettered = Counter(
            "connector_deadletterqueue_produce",
            "Records and inputs sent to the dead-letter topic",
            _LABELS,
            registry=registry,
        )
        self.errors_tolerated = Counter(
            "connector_total_errors_tolerated",
            "Failures tolerated under errors.tolerance=all (dead-lettered or logged and skipped)",
            (*_LABELS, "stage"),
            registry=registry,
        )
        self.offset_commits = Counter(
            "connector_offset_commit", "Offset commits", (*_LABELS, "outcome"), registry=registry
        )
        self.in_flight = Gauge(
            "connector_source_record_active_count",
            "Records not yet acked",
            _LABELS,
            registry=registry,
        )
        self.transactions = Counter(
            "connector_source_transaction",
            "Exactly-once transactions ended (committed or aborted)",
            (*_LABELS, "outcome"),
            registry=registry,
        )
        self.transaction_commit_seconds = Histogram(
            "connector_source_transaction_commit_seconds",
            "Time to commit a transaction: its offsets produced, commit_transaction returned",
            _LABELS,
            registry=registry,
        )
        self.transaction_size = Histogram(
            "connector_source_transaction_size",
            "Items (records, dead letters, dropped records) per committed transaction",
            _LABELS,
            buckets=(1, 10, 100, 1000, 10_000, 100_000),
            registry=registry,
        )
        self._plugin_counters: dict[tuple[str, tuple[str, ...]], Counter] = {}
        self._lock = threading.Lock()

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
