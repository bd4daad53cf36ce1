"""``connector tail`` against the real broker and registry: records written by the project's Avro
converter come out decoded (schema fetched by id), JSON and text values as they are, one JSON line
per record with partition, offset, key and headers; ``-n`` and ``--timeout`` end it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from confluent_kafka import Producer

from connector.api import AvroSchema
from connector.serde.factory import make_converter

pytestmark = pytest.mark.integration

TAIL_TIMEOUT_S = 60

SCHEMA = AvroSchema(
    "connector.test.TailProbe",
    {
        "type": "record",
        "name": "TailProbe",
        "namespace": "connector.test",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "count", "type": "long"},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
            {"name": "tags", "type": {"type": "map", "values": "int"}},
            {
                "name": "at",
                "type": {"type": "long", "logicalType": "timestamp-millis"},
            },
        ],
    },
)

AVRO_VALUES: list[dict[str, Any]] = [
    {"id": "a", "count": 1, "note": None, "kind": "A", "tags": {}, "at": 0},
    {
        "id": "b",
        "count": -(2**40),
        "note": "ü",
        "kind": "B",
        "tags": {"x": 7},
        "at": 1_700_000_000_123,
    },
]


def _produce(bootstrap: str, registry: str, topic: str) -> None:
    """Two Avro values (the project's converter, auto-registered), a JSON value, a text value,
    and a keyless tombstone."""
    converter = make_converter("avro", {}, is_key=False, worker_registry_url=registry)
    values: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
        (b"k1", converter.convert(topic, AVRO_VALUES[0], SCHEMA), [("origin", b"test")]),
        (b"k2", converter.convert(topic, AVRO_VALUES[1], SCHEMA), []),
        (b"k3", b'{"plain": [1, 2]}', []),
        (b"k4", b"not json \xff", []),
        (None, None, [("why", b"tombstone")]),
    ]
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    errors: list[Any] = []
    for key, value, headers in values:
        producer.produce(
            topic,
            key=key,
            value=value,
            headers=headers,
            on_delivery=lambda err, _msg: errors.append(err) if err is not None else None,
        )
    assert producer.flush(20) == 0
    assert errors == []


def _tail(bootstrap: str, registry: str, topic: str, *options: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "connector",
            "tail",
            topic,
            "--bootstrap-servers",
            bootstrap,
            "--schema-registry-url",
            registry,
            "--from-beginning",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=TAIL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


EXPECTED = [
    {
        "partition": 0,
        "offset": 0,
        "key": "k1",
        "headers": {"origin": "test"},
        "value": {
            "id": "a",
            "count": 1,
            "note": None,
            "kind": "A",
            "tags": {},
            "at": "1970-01-01 00:00:00+00:00",
        },
    },
    {
        "partition": 0,
        "offset": 1,
        "key": "k2",
        "headers": {},
        "value": {
            "id": "b",
            "count": -(2**40),
            "note": "ü",
            "kind": "B",
            "tags": {"x": 7},
            "at": "2023-11-14 22:13:20.123000+00:00",
        },
    },
    {"partition": 0, "offset": 2, "key": "k3", "headers": {}, "value": {"plain": [1, 2]}},
    {"partition": 0, "offset": 3, "key": "k4", "headers": {}, "value": "not json \ufffd"},
    {"partition": 0, "offset": 4, "key": None, "headers": {"why": "tombstone"}, "value": None},
]


def test_tail_decodes_every_record_until_idle(
    kafka_bootstrap: str, schema_registry_url: str, tmp_topic: str
) -> None:
    _produce(kafka_bootstrap, schema_registry_url, tmp_topic)
    assert _tail(kafka_bootstrap, schema_registry_url, tmp_topic, "--timeout", "8") == EXPECTED


def test_tail_stops_after_n_records(
    kafka_bootstrap: str, schema_registry_url: str, tmp_topic: str
) -> None:
    _produce(kafka_bootstrap, schema_registry_url, tmp_topic)
    lines = _tail(kafka_bootstrap, schema_registry_url, tmp_topic, "-n", "2", "--timeout", "30")
    assert lines == EXPECTED[:2]
