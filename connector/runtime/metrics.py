"""Prometheus metrics of the runtime (names follow Connect's source-task metrics)."""

from __future__ import annotations

import threading
from functools import cache

from prometheus_client import Counter, Gauge

_LABELS = ("connector", "task")

RECORDS_POLLED = Counter("connector_source_record_poll", "Records returned by poll()", _LABELS)
RECORDS_WRITTEN = Counter(
    "connector_source_record_write", "Records handed to the producer", _LABELS
)
RECORDS_FILTERED = Counter(
    "connector_source_record_filtered", "Records dropped by a transform", _LABELS
)
DEAD_LETTERED = Counter(
    "connector_deadletterqueue_produce", "Records and inputs sent to the dead-letter topic", _LABELS
)
ERRORS_TOLERATED = Counter(
    "connector_total_errors_tolerated", "Failures tolerated under errors.tolerance=all", _LABELS
)
OFFSET_COMMITS = Counter("connector_offset_commit", "Offset commits", (*_LABELS, "outcome"))
IN_FLIGHT = Gauge("connector_source_record_active_count", "Records not yet acked", _LABELS)

_lock = threading.Lock()


@cache
def plugin_counter(metric: str, label_names: tuple[str, ...]) -> Counter:
    """A plugin's counter, created on first use (``ctx.count``)."""
    with _lock:
        return Counter(
            f"connector_plugin_{metric}", f"Plugin counter {metric}", (*_LABELS, *label_names)
        )
