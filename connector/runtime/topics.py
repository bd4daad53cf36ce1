"""Topic creation through the AdminClient, shared by the worker (data and dead-letter topics),
the offset store (its compacted topic) and the benchmark harness."""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def ensure_topic(
    admin: AdminClient,
    topic: str,
    *,
    partitions: int = -1,
    replication_factor: int = -1,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> bool:
    """Create ``topic`` if it does not exist. Returns True if this call created it."""
    metadata = admin.list_topics(timeout=timeout_s)
    if topic in metadata.topics and metadata.topics[topic].error is None:
        return False
    new = NewTopic(
        topic,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config=dict(config or {}),
    )
    future = admin.create_topics([new], operation_timeout=timeout_s)[topic]
    try:
        future.result(timeout=timeout_s)
    except KafkaException as exc:
        if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # metadata propagates asynchronously
        found = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if (
            found is not None
            and found.error is None
            and found.partitions
            and all(p.leader >= 0 and p.error is None for p in found.partitions.values())
        ):
            break
        time.sleep(0.05)
    return True
