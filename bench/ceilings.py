"""What the machine can do with the same data, measured in the same run: the ceilings.

(a) confluent-kafka producing the already-encoded records (same keys, values, headers, same
    producer settings: idempotent, acks=all, lz4, linger 1 ms), counted when all are acked;
(b) websocket-client receiving the simulator's frames and doing nothing else (``recv_data``
    in a loop; also the connector's own FrameReader reading the socket of a websocket-client
    connection after its handshake, for reference);
(c) fastavro encoding the same events (``schemaless_writer`` with a parsed schema, reused
    buffer), and, for reference, the connector's compiled writer;
(d) the connector's own record path without any I/O: parse, classify, build, convert (on the
    Python path; with the native extension also on the native path, and the native work alone).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import websocket
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import parse_schema, schemaless_writer

from bench.kafka import Kafka
from bench.sim import Simulator, conversation_topics
from connector.plugins.genesys import events
from connector.plugins.genesys import topics as genesys_topics
from connector.runtime.producer import DEFAULT_PRODUCER_CONFIG, REQUIRED_PRODUCER_CONFIG
from connector.serde.avro import AvroConverter
from connector.serde.converter import StringConverter
from connector.ws.receiver import FrameReader


@dataclass
class Sample:
    """Frames captured from the simulator and what the connector makes of them."""

    frames: list[bytes]
    records: list[Any]  # SourceRecord
    encoded: list[tuple[str, bytes, bytes, list[tuple[str, Any]]]]  # topic, key, value, headers

    @property
    def mean_frame_bytes(self) -> float:
        return sum(map(len, self.frames)) / len(self.frames)

    @property
    def mean_value_bytes(self) -> float:
        return sum(len(e[2]) for e in self.encoded) / len(self.encoded)


def capture(sim: Simulator, topics: int, count: int, registry: str, prefix: str) -> Sample:
    """``count`` frames of the bench topic mix, built and Avro-encoded through the registry."""
    ws = websocket.create_connection(sim.channel(conversation_topics(topics)), timeout=10)
    frames: list[bytes] = []
    try:
        while len(frames) < count:
            opcode, data = ws.recv_data()
            text = opcode == websocket.ABNF.OPCODE_TEXT
            if text and events.classify(data).kind is events.FrameKind.EVENT:
                frames.append(data)
    finally:
        ws.close()
    builder = events.RecordBuilder(genesys_topics.Router(f"{prefix}.{{family}}", {}, "bench"))
    records = [builder.build(events.classify(f).envelope, time.time_ns() // 10**6) for f in frames]
    value_converter = AvroConverter(SchemaRegistryClient({"url": registry}))
    key_converter = StringConverter()
    encoded = [
        (
            r.topic,
            key_converter.convert(r.topic, r.key, None),
            value_converter.convert(r.topic, r.value, r.value_schema),
            list(r.headers),
        )
        for r in records
    ]
    return Sample(frames, records, encoded)


def _timed_loop(step: Any, items: list[Any], seconds: float) -> float:
    """Items per second of ``step(item)`` over the list, repeated for ``seconds``."""
    done = 0
    started = time.perf_counter()
    while True:
        for item in items:
            step(item)
        done += len(items)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def produce_ceiling(bootstrap: str, sample: Sample, seconds: float, topic_prefix: str) -> float:
    """(a) Events/s acked when producing the encoded records with the connector's settings."""
    kafka = Kafka(bootstrap)
    topics = sorted({e[0] for e in sample.encoded})
    ceiling_topic = {t: f"{topic_prefix}.{t.rsplit('.', 1)[-1]}" for t in topics}
    kafka.create_topics(ceiling_topic.values())
    kafka.close()
    producer = Producer(
        {**DEFAULT_PRODUCER_CONFIG, **REQUIRED_PRODUCER_CONFIG, "bootstrap.servers": bootstrap}
    )
    items = [(ceiling_topic[t], k, v, h) for t, k, v, h in sample.encoded]
    produce, poll = producer.produce, producer.poll
    producer.produce(items[0][0], items[0][2], items[0][1])  # connect before timing
    producer.flush(10)
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for topic, key, value, headers in items:
            while True:
                try:
                    produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    poll(0.01)
        sent += len(items)
        poll(0)
    remaining = producer.flush(60)
    elapsed = time.perf_counter() - started
    producer.close()
    kafka = Kafka(bootstrap)
    kafka.delete_prefixed(f"{topic_prefix}.")
    kafka.close()
    return (sent - remaining) / elapsed


def receive_ceiling(sim: Simulator, topics: int, seconds: float, frame_reader: bool) -> float:
    """(b) Frames/s that websocket-client alone receives from the flooding simulator."""
    ws = websocket.create_connection(
        sim.channel(conversation_topics(topics)), skip_utf8_validation=True, timeout=10
    )
    recv = FrameReader.of(ws).recv_data if frame_reader else ws.recv_data
    try:
        warm_until = time.perf_counter() + 1.0
        while time.perf_counter() < warm_until:
            recv()
        count = 0
        started = time.perf_counter()
        while True:
            for _ in range(1000):
                recv()
            count += 1000
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                return count / elapsed
    finally:
        ws.close()


def encode_ceiling(sample: Sample, seconds: float) -> tuple[float, float]:
    """(c) Events/s fastavro encodes (and the connector's compiled writer, for reference)."""
    parsed = {
        r.value_schema.name: parse_schema(dict(r.value_schema.definition), named_schemas={})
        for r in sample.records
    }
    items = [(parsed[r.value_schema.name], r.value) for r in sample.records]
    buffer = io.BytesIO()

    def fastavro_step(item: tuple[Any, Any]) -> None:
        buffer.seek(0)
        buffer.truncate()
        schemaless_writer(buffer, item[0], item[1])

    from connector.serde.avro import compile_writer

    writers = {name: compile_writer(p) for name, p in parsed.items()}
    compiled = [(writers[r.value_schema.name], r.value) for r in sample.records]

    def compiled_step(item: tuple[Any, Any]) -> None:
        out = bytearray(b"\0\0\0\0\0")
        item[0](item[1], out)
        bytes(out)

    return _timed_loop(fastavro_step, items, seconds), _timed_loop(compiled_step, compiled, seconds)


def pipeline_ceiling(sample: Sample, registry: str, seconds: float) -> float:
    """(d) Events/s of the connector's record path in one thread, no sockets, no Kafka:
    parse + classify, build the record, convert key and value."""
    builder = events.RecordBuilder(genesys_topics.Router("bench-pipeline.{family}", {}, "b"))
    value_converter = AvroConverter(SchemaRegistryClient({"url": registry}))
    key_converter = StringConverter()
    classify, build = events.classify, builder.build
    key_convert, value_convert = key_converter.convert, value_converter.convert

    def step(frame: bytes) -> None:
        record = build(classify(frame).envelope, 0)
        key_convert(record.topic, record.key, None)
        value_convert(record.topic, record.value, record.value_schema)

    return _timed_loop(step, sample.frames, seconds)


def native_pipeline_ceiling(sample: Sample, registry: str, seconds: float) -> tuple[float, float]:
    """(d') The same record path on the native extension, batches of 500 frames (what a poll
    hands it), and (d'') the native work alone (parse, fit, encode; no Python objects), in one
    thread. ``(0, 0)`` without the extension."""
    from connector import native
    from connector.buffer import Frame
    from connector.plugins.genesys.native import NativeRecords

    extension = native.extension()
    if extension is None:
        return 0.0, 0.0
    builder = events.RecordBuilder(genesys_topics.Router("bench-pipeline.{family}", {}, "b"))
    subscribed = {events.classify(f).topic for f in sample.frames}
    records = NativeRecords(extension, builder, {t for t in subscribed if t})
    value_converter = AvroConverter(SchemaRegistryClient({"url": registry}))
    key_convert, value_convert = StringConverter().convert, value_converter.convert
    frames = [Frame(f, time.time_ns(), "bench") for f in sample.frames]
    batches = [frames[i : i + 500] for i in range(0, len(frames), 500)]

    def step(batch: list[Frame]) -> None:
        for record in records.build(batch):
            assert record is not None
            key_convert(record.topic, record.key, None)
            value_convert(record.topic, record.value, record.value_schema)

    per_batch = _timed_loop(step, batches, seconds)
    spent, built = records._plan.time_build(sample.frames, max(1, int(seconds * 20)))
    return per_batch * len(frames) / len(batches), built / spent
