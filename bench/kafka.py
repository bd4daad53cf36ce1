"""Kafka side of the benchmarks: topics, acked counts from high watermarks, read-back checks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from connector.runtime.topics import ensure_topic

LOG_APPEND = {"message.timestamp.type": "LogAppendTime"}
"""Bench topics are stamped by the broker at append: the latency end point."""


class Kafka:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "bench-watermarks",
                "enable.auto.commit": False,
            }
        )
        self._partitions: dict[str, list[int]] = {}

    def create_topics(self, topics: Iterable[str], partitions: int = 1) -> None:
        for topic in topics:
            ensure_topic(self.admin, topic, partitions=partitions, config=LOG_APPEND)

    def delete_prefixed(self, prefix: str) -> int:
        """Delete every topic whose name starts with ``prefix`` (a run's topics)."""
        topics = [t for t in self.admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if topics:
            for future in self.admin.delete_topics(topics, operation_timeout=30).values():
                try:
                    future.result(30)
                except Exception:  # best effort: leftovers only cost disk
                    pass
        return len(topics)

    def _partitions_of(self, topic: str) -> list[int]:
        found = self._partitions.get(topic)
        if found is None:
            meta = self.admin.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return []
            found = self._partitions[topic] = sorted(meta.partitions)
        return found

    def acked(self, topics: Iterable[str]) -> int:
        """Records in ``topics`` (fresh topics: the sum of high watermarks). A record is in the
        log, and counted, only once the broker appended it; with acks=all on a single broker
        that is when it is acked."""
        total = 0
        for topic in topics:
            for p in self._partitions_of(topic):
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=10, cached=False
                )
                total += max(0, high)
        return total

    def close(self) -> None:
        self._consumer.close()
        del self.admin  # AdminClient has no close(): dropping the last reference destroys it


@dataclass
class ReadBack:
    """What :func:`read_back` found."""

    records: int = 0
    unknown: int = 0
    """Records without a CorrelationId of this simulator run."""
    ids: bytearray = field(default_factory=bytearray)
    """Per event id (offset from the first flood id): how many times it was read."""
    append_ms: dict[int, int] = field(default_factory=dict)
    """Event id -> broker LogAppendTime (ms), for ids in the latency window."""


def read_back(
    bootstrap: str,
    topics: list[str],
    records: int,
    expected: int,
    event_id: Callable[[str], int | None],
    first_id: int,
    window: tuple[int, int] | None = None,
    timeout_s: float = 120.0,
) -> ReadBack:
    """Read the ``records`` records of ``topics`` from the start and count each event id
    (``expected`` consecutive ids from ``first_id`` were sent).

    ``window`` (ids, half-open) selects the events whose LogAppendTime is kept for latency.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-readback-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 16 << 20,
        }
    )
    consumer.subscribe(topics)
    result = ReadBack(ids=bytearray(expected))
    ids = result.ids
    lo, hi = window or (0, 0)
    deadline = time.monotonic() + timeout_s
    idle_since = time.monotonic()
    header = "genesys.correlation.id"
    try:
        while result.records < records and time.monotonic() < deadline:
            batch = consumer.consume(10_000, 0.5)
            if not batch:
                if result.records and time.monotonic() - idle_since > 10:
                    break
                continue
            idle_since = time.monotonic()
            for msg in batch:
                if msg.error():
                    continue
                result.records += 1
                cid = None
                for name, value in msg.headers() or ():
                    if name == header:
                        cid = value.decode()
                        break
                eid = event_id(cid) if cid else None
                if eid is None or not 0 <= eid - first_id < expected:
                    result.unknown += 1
                    continue
                index = eid - first_id
                if ids[index] < 255:
                    ids[index] += 1
                if lo <= eid < hi:
                    kind, ts = msg.timestamp()
                    if kind == TIMESTAMP_LOG_APPEND_TIME:
                        result.append_ms[eid] = ts
    finally:
        consumer.close()
    return result
