"""A native record's value (``EncodedAvro``) wherever a value goes: it reads as the Python path's
dict (transforms, JSON and string converters, dead letters), and the Avro converter frames its
body as is only when the registry's schema is the record's own (issue 14)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from native_kit import extension

from connector.api import ConversionError, SourceRecord
from connector.buffer import Frame
from connector.plugins.genesys import events, topics
from connector.plugins.genesys.native import NativeRecords
from connector.runtime.pipeline import _record_bytes
from connector.serde.avro import AvroConverter
from connector.serde.converter import BytesConverter, JsonConverter, StringConverter
from connector.serde.encoded import EncodedAvro
from connector.transforms.chain import build_chain

FRAMES = Path(__file__).resolve().parents[2] / "fixtures" / "genesys" / "frames"
NAMES = ("queue_conversation", "user_conversation", "detail_acd_end", "user_presence")


def pairs() -> list[tuple[SourceRecord, SourceRecord]]:
    """(native record, Python record) of some fixture events."""
    frames = [(FRAMES / f"{name}.json").read_bytes() for name in NAMES]
    builder = events.RecordBuilder(topics.Router())
    native = NativeRecords(extension(), builder, {events.classify(f).topic for f in frames})
    now = time.time_ns()
    built = native.build([Frame(f, now, "s") for f in frames])
    python = [builder.build(events.classify(f).envelope, now // 1_000_000) for f in frames]
    assert all(r is not None for r in built)
    return list(zip(built, python, strict=True))  # type: ignore[arg-type]


def test_the_value_reads_as_the_python_paths_dict() -> None:
    for native, python in pairs():
        value = native.value
        assert type(value) is EncodedAvro and isinstance(value, Mapping)
        assert value == python.value and python.value == value
        assert dict(value) == python.value and list(value) == list(python.value)
        assert len(value) == len(python.value) and repr(value) == repr(python.value)
        key = next(iter(python.value))
        assert value[key] == python.value[key] and value.get("nope") is None
        assert value.materialise() is value.materialise()  # decoded once


def test_json_string_bytes_converters_and_dead_letters_see_the_dict() -> None:
    for native, python in pairs():
        for converter in (JsonConverter(), StringConverter()):
            assert converter.convert("t", native.value, None) == converter.convert(
                "t", python.value, None
            )
        with pytest.raises(ConversionError) as native_error:
            BytesConverter().convert("t", native.value, None)
        with pytest.raises(ConversionError) as python_error:
            BytesConverter().convert("t", python.value, None)
        assert str(native_error.value) == str(python_error.value)
        assert _record_bytes(native.value) == _record_bytes(python.value)


def test_transforms_keep_the_encoded_value_or_read_it() -> None:
    chain = build_chain(
        ["route", "tag"],
        {
            "route.type": "RegexRouter",
            "route.regex": "genesys\\.(.*)",
            "route.replacement": "cc.$1",
            "tag.type": "InsertHeader",
            "tag.header": "h",
            "tag.value.literal": "v",
        },
        [],
        {},
    )
    assert chain is not None
    converter = AvroConverter(SchemaRegistryClient.new_client({"url": "mock://"}))
    for native, python in pairs():
        routed, routed_python = chain(native), chain(python)
        assert routed is not None and routed_python is not None
        assert routed.value is native.value  # topic and headers only: the body is kept
        assert routed.topic == routed_python.topic.replace("genesys.", "cc.")
        assert converter.convert(routed.topic, routed.value, routed.value_schema) == (
            converter.convert(routed_python.topic, routed_python.value, routed_python.value_schema)
        )
        # a transform that changes the value builds a plain dict from it
        changed = {**native.value, "unknown_fields": '{"x":1}'}
        assert changed == {**python.value, "unknown_fields": '{"x":1}'}


def test_the_body_is_reencoded_when_the_registry_schema_is_another() -> None:
    """``use.latest.version`` with a latest version that is not the record's schema: the
    converter decodes the value and writes it with the registry's schema, as for a dict."""
    native, python = pairs()[3]  # user presence: a small schema
    client = SchemaRegistryClient.new_client({"url": "mock://"})
    definition: dict[str, Any] = json.loads(json.dumps(native.value_schema.definition))
    definition["fields"].insert(0, {"name": "added", "type": ["null", "long"], "default": None})
    client.register_schema(f"{native.topic}-value", Schema(json.dumps(definition), "AVRO"))
    converter = AvroConverter(client, use_latest_version=True)
    framed = converter.convert(native.topic, native.value, native.value_schema)
    assert framed == converter.convert(python.topic, python.value, python.value_schema)
    assert framed is not None and framed[5:] != native.value.body
    buffer = io.BytesIO()
    parsed = fastavro.parse_schema(definition, named_schemas={})
    fastavro.schemaless_writer(buffer, parsed, python.value)
    assert framed[5:] == buffer.getvalue()
    own = AvroConverter(SchemaRegistryClient.new_client({"url": "mock://"}))
    assert own.convert(native.topic, native.value, native.value_schema)[5:] == native.value.body
