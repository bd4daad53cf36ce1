"""The task loop with native records (issue 14): what reaches the producer is byte for byte what
the Python path's records produce, through the pipeline's shortcuts (text keys encoded inline,
a native body framed per topic) and their fallbacks (a transform that moves the topic, swaps
the schema or makes the key bytes, a registry whose schema is another one)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from native_kit import extension
from runner_fakes import Harness, ScriptedTask

from connector.api import AvroSchema, SourceRecord
from connector.buffer import Frame
from connector.plugins.genesys import events, topics
from connector.plugins.genesys.native import NativeRecords
from connector.serde.avro import AvroConverter
from connector.serde.encoded import EncodedAvro

FRAMES = Path(__file__).resolve().parents[2] / "fixtures" / "genesys" / "frames"
NAMES = ("queue_conversation", "user_conversation", "detail_acd_end", "user_presence")


def records() -> tuple[list[SourceRecord], list[SourceRecord]]:
    frames = [(FRAMES / f"{name}.json").read_bytes() for name in NAMES] * 3
    builder = events.RecordBuilder(topics.Router())
    native = NativeRecords(extension(), builder, {events.classify(f).topic for f in frames})
    now = time.time_ns()
    built = native.build([Frame(f, now + i, "s") for i, f in enumerate(frames)])
    python = [
        builder.build(events.classify(f).envelope, (now + i) // 1_000_000)  # type: ignore[arg-type]
        for i, f in enumerate(frames)
    ]
    assert all(type(r.value) is EncodedAvro for r in built if r is not None)
    return built, python  # type: ignore[return-value]


def run(batch: list[SourceRecord], client: SchemaRegistryClient, transform: Any = None) -> list:
    harness = Harness(
        ScriptedTask([batch]),
        value_converter=AvroConverter(client),
        transform=transform,
    ).start()
    try:
        harness.produced(1, topic=batch[0].topic if transform is None else "moved")
        deadline = time.monotonic() + 10
        while len(harness.kafka.produced) < len(batch) and time.monotonic() < deadline:
            time.sleep(0.01)
        rows = [(p.topic, p.key, p.value, p.headers) for p in harness.kafka.produced]
        for p in harness.kafka.produced:
            p.ack()
        return rows
    finally:
        harness.stop()


def test_native_records_produce_what_python_records_produce() -> None:
    native, python = records()
    client = SchemaRegistryClient.new_client({"url": "mock://"})
    ours, theirs = run(native, client), run(python, client)
    assert len(ours) == len(native) and ours == theirs


def test_a_transform_that_moves_the_topic_or_swaps_the_schema_gets_the_right_framing() -> None:
    native, python = records()
    presence = [r for r in native if r.value_schema.name.endswith("UserPresence")]
    presence_python = [r for r in python if r.value_schema.name.endswith("UserPresence")]
    client = SchemaRegistryClient.new_client({"url": "mock://"})
    moved = run(presence, client, lambda r: dataclasses.replace(r, topic="moved"))
    assert moved == run(presence_python, client, lambda r: dataclasses.replace(r, topic="moved"))
    other = AvroSchema(
        "com.genesys.notifications.UserPresence2",
        {**json.loads(json.dumps(presence[0].value_schema.definition)), "name": "UserPresence2"},
    )
    swapped = run(
        presence, client, lambda r: dataclasses.replace(r, topic="moved", value_schema=other)
    )
    expected = run(
        presence_python, client, lambda r: dataclasses.replace(r, topic="moved", value_schema=other)
    )
    assert swapped == expected and swapped != moved  # another schema id in the framing
    as_bytes = run(presence, client, lambda r: dataclasses.replace(r, topic="moved", key=b"k"))
    assert as_bytes == [(t, b"k", v, h) for t, _, v, h in moved]


def test_a_registry_schema_that_is_not_the_records_own_reencodes() -> None:
    native, python = records()
    presence = [r for r in native if r.value_schema.name.endswith("UserPresence")]
    presence_python = [r for r in python if r.value_schema.name.endswith("UserPresence")]
    client = SchemaRegistryClient.new_client({"url": "mock://"})
    definition = json.loads(json.dumps(presence[0].value_schema.definition))
    definition["fields"].insert(0, {"name": "added", "type": ["null", "long"], "default": None})
    client.register_schema(f"{presence[0].topic}-value", Schema(json.dumps(definition), "AVRO"))
    harness_rows = []
    for batch in (presence, presence_python):
        harness = Harness(
            ScriptedTask([batch]), value_converter=AvroConverter(client, use_latest_version=True)
        ).start()
        try:
            harness.produced(len(batch), topic=batch[0].topic)
            harness_rows.append([(p.key, p.value) for p in harness.kafka.produced])
            for p in harness.kafka.produced:
                p.ack()
        finally:
            harness.stop()
    ours, theirs = harness_rows
    assert ours == theirs
    assert all(value[5:] != r.value.body for (_, value), r in zip(ours, presence, strict=True))
