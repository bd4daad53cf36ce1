"""Helpers for the runtime's integration tests: deployments in tmp_path, an in-process worker,
raw reads of whole topics, Avro decoding through the registry, and Java's murmur2."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import parse_schema, schemaless_reader

from connector.config.validate import Deployment, load_deployment
from connector.runtime.worker import Worker


def unique(prefix: str) -> str:
    return f"it-{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(
    condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1
) -> Any:
    """Poll ``condition`` until truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def write_deployment(
    directory: Path,
    *,
    bootstrap: str,
    registry: str,
    offsets_topic: str,
    connectors: list[dict[str, Any]],
    **worker: Any,
) -> Path:
    """A deployment YAML with ``worker:`` settings and datagen ``connectors:``."""
    document = {
        "worker": {
            "bootstrap.servers": bootstrap,
            "schema.registry.url": registry,
            "offset.storage.topic": offsets_topic,
            "offset.storage.partitions": 5,
            "offset.flush.interval.ms": 200,
            **{key.replace("_", "."): value for key, value in worker.items()},
        },
        "connectors": connectors,
    }
    path = directory / f"{offsets_topic}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def datagen(name: str, topic: str, **settings: Any) -> dict[str, Any]:
    """A datagen connector block; ``settings`` use ``_`` for ``.``."""
    return {
        "name": name,
        "plugin": "datagen",
        "datagen.topic": topic,
        **{key.replace("_", "."): value for key, value in settings.items()},
    }


def load(path: Path) -> Deployment:
    return load_deployment([path], environ={})


@contextmanager
def running_worker(deployment: Deployment) -> Iterator[Worker]:
    """Start a worker and supervise it on a thread; stop it gracefully on exit."""
    worker = Worker(deployment)
    worker.start()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop, 0.05), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(30.0)
        assert not thread.is_alive(), "worker did not stop within 30 s"


def task_status(worker: Worker, connector: str, task_id: int = 0) -> dict[str, Any]:
    for entry in worker.status():
        if entry["name"] == connector:
            task: dict[str, Any] = entry["tasks"][task_id]
            return task
    raise KeyError(connector)


def read_topic(
    bootstrap: str, topic: str, timeout_s: float = 20.0, *, committed: bool = True
) -> list[Message]:
    """Every record currently in ``topic`` (all partitions, from the beginning), in partition
    then offset order. Reads up to the high watermarks taken at the start, ``read_committed``
    (librdkafka's default) unless ``committed`` is False. The end is reached by the consumer's
    position, which also steps over transaction markers and aborted records."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        ends: dict[int, int] = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
        if not ends:
            return []
        assigned = [TopicPartition(topic, p, 0) for p in ends]
        consumer.assign(assigned)
        limits = dict(ends)
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout_s}s")
            for message in consumer.consume(1000, timeout=0.2):
                if message.error() is not None:
                    raise KafkaException(message.error())
                if message.offset() < limits[message.partition()]:
                    messages.append(message)
            for position in consumer.position(assigned):
                if position.offset >= ends.get(position.partition, 0):
                    ends.pop(position.partition, None)
        messages.sort(key=lambda m: (m.partition(), m.offset()))
        return messages
    finally:
        consumer.close()


def topic_exists(admin: AdminClient, topic: str) -> bool:
    found = admin.list_topics(topic, timeout=10).topics.get(topic)
    return found is not None and found.error is None and bool(found.partitions)


def wait_for_records(
    bootstrap: str, admin: AdminClient, topic: str, count: int, timeout_s: float
) -> list[Message]:
    """Poll until ``topic`` holds at least ``count`` records."""

    def enough() -> list[Message] | None:
        if not topic_exists(admin, topic):
            return None
        messages = read_topic(bootstrap, topic)
        return messages if len(messages) >= count else None

    result: list[Message] = wait_until(enough, timeout_s, f"{count} records in {topic}", 0.2)
    return result


@dataclass
class AvroDecoder:
    """Decodes Confluent-framed Avro by fetching each schema by id (``GET /schemas/ids/{id}``)."""

    client: SchemaRegistryClient
    schemas: dict[int, Any] = field(default_factory=dict)

    def __call__(self, data: bytes) -> tuple[int, dict[str, Any]]:
        magic, schema_id = struct.unpack(">bI", data[:5])
        assert magic == 0, f"magic byte {magic}"
        if schema_id not in self.schemas:
            schema_str = self.client.get_schema(schema_id).schema_str
            assert schema_str is not None
            self.schemas[schema_id] = parse_schema(orjson.loads(schema_str))
        parsed = self.schemas[schema_id]
        value: dict[str, Any] = schemaless_reader(io.BytesIO(data[5:]), parsed, parsed)  # type: ignore[assignment]
        return schema_id, value


def seqs_by_stream(messages: list[Message], decode: AvroDecoder) -> dict[str, list[int]]:
    """Every datagen seq in ``messages`` per stream, in the order read."""
    result: dict[str, list[int]] = {}
    for message in messages:
        value = message.value()
        assert value is not None
        _, record = decode(value)
        result.setdefault(record["stream"], []).append(record["seq"])
    return result


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (32-bit, seed 0x9747b28c), as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = (
            (data[i4] & 0xFF)
            | ((data[i4 + 1] & 0xFF) << 8)
            | ((data[i4 + 2] & 0xFF) << 16)
            | ((data[i4 + 3] & 0xFF) << 24)
        )
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r  # Java's >>> on the 32-bit value
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= (data[(length & ~3) + 2] & 0xFF) << 16
    if tail >= 2:
        h ^= (data[(length & ~3) + 1] & 0xFF) << 8
    if tail >= 1:
        h ^= data[length & ~3] & 0xFF
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, partitions: int) -> int:
    """Java's default partitioner for a keyed record: ``toPositive(murmur2(key)) % n``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def free_port() -> int:
    """A loopback port where nothing listens (right now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TcpForwarder:
    """Listens on ``127.0.0.1:port`` and pipes every connection to ``target``."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.target = target
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self.target, timeout=10)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._server.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
