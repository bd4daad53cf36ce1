"""Source offsets in a compacted Kafka topic, in Kafka Connect's exact format.

Key: compact JSON ``["<connector>",{<source partition>}]``; value: compact JSON offset object;
a null value (tombstone) deletes the partition's offset. Writes use librdkafka's
``murmur2_random`` partitioner, which places a key on the same partition as Java's default
partitioner, so Java tooling and compaction see one history per key. At start the store reads
every partition from the beginning to the end offsets it saw before reading.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from connector.api import OffsetStoreError, SourceOffset, SourcePartition
from connector.runtime.producer import close_producer
from connector.runtime.topics import ensure_topic

logger = logging.getLogger(__name__)


def offset_key(connector_name: str, partition: SourcePartition) -> bytes:
    """The offsets-topic key bytes, byte-identical to Connect's Jackson output."""
    return orjson.dumps([connector_name, dict(partition)])


class KafkaOffsetStore:
    """Reads and writes source offsets for every connector of the worker.

    Thread-safe: tasks read at start and write from their own threads.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        partitions: int = 25,
        replication_factor: int = -1,
        flush_timeout_s: float = 5.0,
        client_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._partitions = partitions
        self._replication = replication_factor
        self._flush_timeout_s = flush_timeout_s
        self._client_config = dict(client_config or {})
        self._data: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self._producer: Producer | None = None

    def start(self, admin: AdminClient) -> None:
        ensure_topic(
            admin,
            self.topic,
            partitions=self._partitions,
            replication_factor=self._replication,
            config={"cleanup.policy": "compact"},
        )
        self._producer = Producer(
            {
                **self._client_config,
                "bootstrap.servers": self._bootstrap,
                "partitioner": "murmur2_random",
                "enable.idempotence": False,
                "acks": "all",
                "linger.ms": 0,
                "client.id": "connector-offsets",
            }
        )
        self.read_to_end()

    def read_to_end(self, timeout_s: float = 30.0) -> None:
        """Replay the whole topic into memory (Connect does this before serving offsets)."""
        consumer = Consumer(
            {
                **self._client_config,
                "bootstrap.servers": self._bootstrap,
                "group.id": f"connector-offsets-reader-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            metadata = consumer.list_topics(self.topic, timeout=timeout_s)
            topic_meta = metadata.topics.get(self.topic)
            if topic_meta is None or topic_meta.error is not None:
                raise OffsetStoreError(f"offsets topic {self.topic} is not available")
            ends: dict[int, int] = {}
            for partition in topic_meta.partitions:
                low, high = _watermarks(consumer, TopicPartition(self.topic, partition), timeout_s)
                if high > low:
                    ends[partition] = high
            if not ends:
                return
            consumer.assign([TopicPartition(self.topic, p, 0) for p in ends])
            positions = dict.fromkeys(ends, -1)
            deadline = time.monotonic() + timeout_s
            read: dict[bytes, bytes | None] = {}
            while any(positions[p] + 1 < ends[p] for p in ends):
                if time.monotonic() > deadline:
                    raise OffsetStoreError(
                        f"timed out reading offsets topic {self.topic} to its end"
                    )
                for message in consumer.consume(1000, timeout=0.5):
                    if message.error() is not None:
                        continue
                    positions[message.partition()] = message.offset()
                    key = message.key()
                    if key is not None:
                        read[key] = message.value()
            with self._lock:
                for key, value in read.items():
                    if value is None:
                        self._data.pop(key, None)
                    else:
                        self._data[key] = value
        except KafkaException as exc:
            raise OffsetStoreError(f"cannot read offsets topic {self.topic}: {exc}") from exc
        finally:
            consumer.close()

    def offset(self, connector_name: str, partition: SourcePartition) -> SourceOffset | None:
        with self._lock:
            raw = self._data.get(offset_key(connector_name, partition))
        return orjson.loads(raw) if raw is not None else None

    def offsets(self, connector_name: str) -> dict[str, tuple[SourcePartition, SourceOffset]]:
        """Every committed (partition, offset) of ``connector_name``, keyed by key text."""
        result: dict[str, tuple[SourcePartition, SourceOffset]] = {}
        with self._lock:
            items = list(self._data.items())
        for key, value in items:
            try:
                name, partition = orjson.loads(key)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue  # Connect ignores keys that are not [string, map]
            if name == connector_name and isinstance(partition, dict):
                result[key.decode()] = (partition, orjson.loads(value))
        return result

    def write(
        self,
        connector_name: str,
        offsets: Iterable[tuple[SourcePartition, SourceOffset | None]],
    ) -> None:
        """Write offsets (None = tombstone) and wait, bounded, until Kafka has them all."""
        pending = self.write_async(connector_name, offsets)
        if not pending.wait(self._flush_timeout_s):
            raise OffsetStoreError(f"offsets for {connector_name} not written in time")
        if pending.error is not None:
            raise OffsetStoreError(f"offsets for {connector_name} not written: {pending.error}")

    def write_async(
        self,
        connector_name: str,
        offsets: Iterable[tuple[SourcePartition, SourceOffset | None]],
    ) -> OffsetWrite:
        """Start writing offsets; the returned :class:`OffsetWrite` completes without blocking
        the caller, so a task loop never stalls on the offsets topic."""
        producer = self._producer
        if producer is None:
            raise OffsetStoreError("offset store is not started")
        written: dict[bytes, bytes | None] = {}
        for partition, offset in offsets:
            key = offset_key(connector_name, partition)
            written[key] = orjson.dumps(dict(offset)) if offset is not None else None
        pending = OffsetWrite(producer, self, len(written))
        for key, value in written.items():
            producer.produce(self.topic, key=key, value=value, on_delivery=pending.on_delivery)
        pending.written = written
        return pending

    def _apply(self, written: Mapping[bytes, bytes | None]) -> None:
        with self._lock:
            for key, value in written.items():
                if value is None:
                    self._data.pop(key, None)
                else:
                    self._data[key] = value

    def close(self) -> None:
        """Flush pending offset writes (bounded by the flush timeout) and destroy the producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            undelivered = close_producer(producer, self._flush_timeout_s)
            if undelivered:
                logger.warning("%d offset writes were not delivered before close", undelivered)


def _watermarks(consumer: Consumer, partition: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """Watermarks, retrying the transient errors of a freshly created or moving partition."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=timeout_s)
            return int(low), int(high)
        except KafkaException as exc:
            if not exc.args[0].retriable() and exc.args[0].code() not in (
                KafkaError.NOT_LEADER_FOR_PARTITION,
                KafkaError.LEADER_NOT_AVAILABLE,
                KafkaError.UNKNOWN_TOPIC_OR_PART,
            ):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class OffsetWrite:
    """An offsets write in flight. Delivery reports arrive when someone polls the offsets
    producer; :meth:`done` polls without blocking, :meth:`wait` with a bound."""

    def __init__(self, producer: Producer, store: KafkaOffsetStore, count: int) -> None:
        self._producer = producer
        self._store = store
        self._remaining = count
        self._lock = threading.Lock()
        self._applied = False
        self.error: str | None = None
        self.written: Mapping[bytes, bytes | None] = {}

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        with self._lock:
            self._remaining -= 1
            if err is not None and self.error is None:
                self.error = str(err)

    def done(self) -> bool:
        if self._remaining > 0:
            self._producer.poll(0)
        if self._remaining > 0:
            return False
        if not self._applied:
            self._applied = True
            if self.error is None:
                self._store._apply(self.written)
        return True

    def wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.done():
            if time.monotonic() >= deadline:
                return False
            self._producer.poll(0.05)
        return True


class StoreOffsetReader:
    """The :class:`~connector.api.OffsetReader` a connector's tasks get."""

    def __init__(self, store: KafkaOffsetStore, connector_name: str) -> None:
        self._store = store
        self._connector_name = connector_name

    def offset(self, partition: SourcePartition) -> SourceOffset | None:
        return self._store.offset(self._connector_name, partition)

    def offsets(self) -> Mapping[str, tuple[SourcePartition, SourceOffset]]:
        return self._store.offsets(self._connector_name)
