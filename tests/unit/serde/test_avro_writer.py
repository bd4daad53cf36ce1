"""The compiled Avro writer (``compile_writer``) against fastavro: same bytes, same refusals."""

from __future__ import annotations

import datetime
import io
from pathlib import Path
from typing import Any

import fastavro
import pytest

from connector.plugins.datagen.connector import VALUE_SCHEMA as DATAGEN_SCHEMA
from connector.plugins.genesys import events, schemas, topics
from connector.serde.avro import _fastavro_writer, compile_writer

FRAMES = Path(__file__).resolve().parents[2] / "fixtures" / "genesys" / "frames"

ALL_TYPES = {
    "type": "record",
    "name": "AllTypes",
    "namespace": "t",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "s", "type": "string"},
        {"name": "e", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "arr", "type": {"type": "array", "items": ["null", "long"]}},
        {"name": "m", "type": {"type": "map", "values": "string"}},
        {"name": "after", "type": ["string", "null"], "default": "x"},
        {"name": "dflt", "type": "long", "default": 7},
        {"name": "ns", "type": ["null", "string"], "default": None},
        {
            "name": "ts",
            "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            "default": None,
        },
        {
            "name": "child",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Node",
                    "fields": [
                        {"name": "v", "type": "string"},
                        {"name": "next", "type": ["null", "Node"], "default": None},
                    ],
                },
            ],
            "default": None,
        },
        {"name": "again", "type": ["null", "Node"], "default": None},
    ],
}

FULL = {
    "b": True,
    "i": -(2**31),
    "l": 2**63 - 1,
    "f": 1.5,
    "d": -2.25,
    "raw": b"\x00\xff",
    "s": "häé \u2603" * 30,
    "e": "GREEN",
    "fx": b"abcd",
    "arr": [1, None, -65, 2**40],
    "m": {"k": "v", "ü": ""},
    "after": None,
    "ts": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    "child": {"v": "a", "next": {"v": "b", "next": None}},
    "again": {"v": "c"},
}


def _both(schema: dict[str, Any], value: Any) -> tuple[bytes, bytes]:
    parsed = fastavro.parse_schema(schema, named_schemas={})
    expected = io.BytesIO()
    fastavro.schemaless_writer(expected, parsed, value)
    out = bytearray(b"prefix")
    compile_writer(parsed)(value, out)
    assert out[:6] == b"prefix"
    return bytes(out[6:]), expected.getvalue()


@pytest.mark.parametrize(
    "value",
    [
        FULL,
        {**FULL, "arr": [], "m": {}, "child": None, "again": None, "ts": 5, "after": "y"},
        {k: v for k, v in FULL.items() if k not in ("dflt", "after", "ts", "child")},
        {**FULL, "i": 63, "l": -64, "d": 3, "b": False},
        {**FULL, "l": 64, "i": 2**31 - 1, "s": "", "raw": b""},
        {**FULL, "ns": "x" * 4095, "after": "é" * 5000},
        {**FULL, "ns": "ü" * 4096},
        {**FULL, "ns": ""},
    ],
)
def test_all_types_encode_like_fastavro(value: dict[str, Any]) -> None:
    got, expected = _both(ALL_TYPES, value)
    assert got == expected


@pytest.mark.parametrize(
    "change",
    [
        {"l": "1"},
        {"l": 2**63},
        {"i": 2**31},
        {"s": 1},
        {"e": "BLUE"},
        {"fx": b"abc"},
        {"arr": ["x"]},
        {"child": {"next": None}},
        {"child": "not a record"},
        {"d": "1.0"},
        {"b": 1},
        {"raw": "text"},
        {"arr": 5},
        {"ns": b"bytes"},
    ],
)
def test_values_that_do_not_fit_are_refused(change: dict[str, Any]) -> None:
    parsed = fastavro.parse_schema(ALL_TYPES, named_schemas={})
    with pytest.raises((TypeError, ValueError, KeyError, AttributeError, OverflowError)):
        compile_writer(parsed)({**FULL, **change}, bytearray())


def test_unions_of_two_types_fall_back_to_fastavro() -> None:
    schema = {
        "type": "record",
        "name": "U",
        "fields": [{"name": "x", "type": ["null", "long", "string"]}],
    }
    parsed = fastavro.parse_schema(schema, named_schemas={})
    writer = compile_writer(parsed)
    assert writer.__qualname__ == _fastavro_writer(parsed).__qualname__
    for value in ({"x": 3}, {"x": "s"}, {"x": None}):
        got, expected = _both(schema, value)
        assert got == expected


def test_datagen_schema() -> None:
    value = {"stream": "t-0", "seq": 123456789, "created_ms": 1_700_000_000_000, "payload": None}
    got, expected = _both(dict(DATAGEN_SCHEMA.definition), value)
    assert got == expected


EVENT_FRAMES = sorted(
    path
    for path in FRAMES.glob("*.json")
    if events.classify(path.read_bytes()).kind is events.FrameKind.EVENT
)


def test_the_fixtures_include_event_frames() -> None:
    assert len(EVENT_FRAMES) >= 10


@pytest.mark.parametrize("path", EVENT_FRAMES, ids=lambda p: p.name)
def test_genesys_records_encode_like_fastavro(path: Path) -> None:
    classified = events.classify(path.read_bytes())
    assert classified.envelope is not None
    builder = events.RecordBuilder(topics.Router("{family}", {}, "c"))
    record = builder.build(classified.envelope, 1_700_000_000_000)
    assert record.value_schema is not None
    got, expected = _both(dict(record.value_schema.definition), record.value)
    assert got == expected


def test_gap_record_encodes_like_fastavro() -> None:
    record = events.gap_record(
        gaps_topic="g",
        connector="c",
        task_id=0,
        genesys_topic="v2.users.x.presence",
        from_ms=None,
        to_ms=5,
        reason="coverage_start",
    )
    definition = dict(schemas.avro_schema(schemas.GAP_SCHEMA).definition)
    got, expected = _both(definition, record.value)
    assert got == expected
