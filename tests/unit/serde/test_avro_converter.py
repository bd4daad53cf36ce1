"""The Avro converter against the ``mock://`` registry: wire format, caching, error classes."""

from __future__ import annotations

import io
import json
import socket
import struct
from collections import Counter
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema, schemaless_reader

from connector.api import AvroSchema, ConversionError, RetriableError
from connector.serde.avro import AvroConverter

READING = AvroSchema(
    "com.example.Reading",
    {
        "type": "record",
        "name": "Reading",
        "namespace": "com.example",
        "fields": [
            {"name": "sensor", "type": "string"},
            {"name": "value", "type": "long"},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    },
)
OTHER = AvroSchema(
    "com.example.Other",
    {
        "type": "record",
        "name": "Other",
        "namespace": "com.example",
        "fields": [{"name": "x", "type": "int"}],
    },
)


class CountingClient:
    """Wraps a registry client and counts the calls that reach it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return target(*args, **kwargs)

        return counted


class FailingClient:
    """A registry that answers every call with one HTTP error."""

    def __init__(self, status: int) -> None:
        self.status = status

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise SchemaRegistryError(self.status, self.status * 100, f"HTTP {self.status}")

    register_schema = lookup_schema = get_latest_version = _fail


def mock_client() -> Any:
    return SchemaRegistryClient.new_client({"url": "mock://"})


def decode(data: bytes, schema: AvroSchema) -> tuple[int, Any]:
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    parsed = parse_schema(dict(schema.definition))
    return schema_id, schemaless_reader(io.BytesIO(data[5:]), parsed, parsed)


def test_value_is_framed_with_magic_zero_and_the_big_endian_schema_id() -> None:
    client = mock_client()
    converter = AvroConverter(client)
    value = {"sensor": "a", "value": 42, "note": None}

    data = converter.convert("readings", value, READING)

    assert data is not None
    registered = client.get_latest_version("readings-value")
    assert data[:5] == b"\x00" + struct.pack(">I", registered.schema_id)
    assert decode(data, READING) == (registered.schema_id, value)


def test_large_schema_ids_use_all_four_bytes() -> None:
    client = CountingClient(mock_client())
    client.register_schema = lambda *a, **k: 0x01020304  # type: ignore[method-assign]
    data = AvroConverter(client).convert("t", {"sensor": "s", "value": 1}, READING)
    assert data is not None
    assert data[:5] == bytes([0, 1, 2, 3, 4])


def test_null_value_is_a_tombstone_without_framing() -> None:
    client = CountingClient(mock_client())
    assert AvroConverter(client).convert("readings", None, READING) is None
    assert sum(client.calls.values()) == 0


def test_registry_is_called_once_per_subject_and_schema() -> None:
    client = CountingClient(mock_client())
    converter = AvroConverter(client)

    for n in range(50):
        converter.convert("a", {"sensor": "s", "value": n}, READING)
        converter.convert("b", {"sensor": "s", "value": n}, READING)
        converter.convert("a", {"x": n}, OTHER)

    assert client.calls == Counter({"register_schema": 3})
    assert sorted(client.inner.get_subjects()) == ["a-value", "b-value"]


def test_each_topic_is_framed_with_the_id_of_its_own_subject() -> None:
    client = mock_client()
    converter = AvroConverter(client)
    framed = {
        topic: converter.convert(topic, {"sensor": "s", "value": 1}, READING) for topic in "ab"
    }
    for topic, data in framed.items():
        assert data is not None
        schema_id = client.get_latest_version(f"{topic}-value").schema_id
        assert data[:5] == struct.pack(">bI", 0, schema_id)


def test_without_auto_register_the_schema_is_looked_up_not_registered() -> None:
    inner = mock_client()
    schema_id = inner.register_schema(
        "readings-value", Schema(json.dumps(READING.definition), "AVRO")
    )
    client = CountingClient(inner)
    converter = AvroConverter(client, auto_register_schemas=False)

    for n in range(3):
        data = converter.convert("readings", {"sensor": "s", "value": n}, READING)
        assert data is not None
        assert decode(data, READING) == (schema_id, {"sensor": "s", "value": n, "note": None})

    assert client.calls == Counter({"lookup_schema": 1})


def test_without_auto_register_an_unknown_subject_is_a_conversion_error() -> None:
    client = CountingClient(mock_client())
    converter = AvroConverter(client, auto_register_schemas=False)
    with pytest.raises(ConversionError, match="refused subject readings-value"):
        converter.convert("readings", {"sensor": "s", "value": 1}, READING)
    assert client.inner.get_subjects() == []


def test_use_latest_version_encodes_with_the_registered_schema() -> None:
    inner = mock_client()
    schema_id = inner.register_schema(
        "readings-value", Schema(json.dumps(READING.definition), "AVRO")
    )
    client = CountingClient(inner)
    converter = AvroConverter(client, use_latest_version=True)
    data = converter.convert("readings", {"sensor": "s", "value": 7}, READING)
    assert data is not None
    assert decode(data, READING)[0] == schema_id
    assert client.calls == Counter({"get_latest_version": 1})


@pytest.mark.parametrize(
    "value",
    [
        {"sensor": "s", "value": "not-a-number"},
        {"sensor": "s"},
        {"sensor": 1, "value": 1},
        {"sensor": "s", "value": 1, "note": 5},
        {"sensor": "s", "value": 2**70},
    ],
)
def test_value_not_matching_the_schema_is_a_conversion_error(value: dict[str, Any]) -> None:
    converter = AvroConverter(mock_client())
    with pytest.raises(ConversionError, match=r"does not match Avro schema com\.example\.Reading"):
        converter.convert("readings", value, READING)
    # the converter is still usable afterwards (its buffer is not left half-written)
    good = converter.convert("readings", {"sensor": "s", "value": 1}, READING)
    assert good is not None
    assert decode(good, READING)[1] == {"sensor": "s", "value": 1, "note": None}


def test_record_without_schema_is_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match="needs a value schema"):
        AvroConverter(mock_client()).convert("readings", {"sensor": "s"}, None)


def test_invalid_avro_schema_is_a_conversion_error() -> None:
    broken = AvroSchema("Broken", {"type": "record", "name": "Broken", "fields": [{"name": "x"}]})
    client = CountingClient(mock_client())
    client.register_schema = lambda *a, **k: 1  # type: ignore[method-assign]
    with pytest.raises(ConversionError, match="invalid Avro schema Broken"):
        AvroConverter(client).convert("t", {"x": 1}, broken)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_and_throttling_are_retriable(status: int) -> None:
    converter = AvroConverter(FailingClient(status))  # type: ignore[arg-type]
    with pytest.raises(RetriableError, match="schema registry unavailable for subject t-value"):
        converter.convert("t", {"sensor": "s", "value": 1}, READING)


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_client_errors_are_conversion_errors(status: int) -> None:
    converter = AvroConverter(FailingClient(status))  # type: ignore[arg-type]
    with pytest.raises(ConversionError, match="schema registry refused subject t-value"):
        converter.convert("t", {"sensor": "s", "value": 1}, READING)


def test_unreachable_registry_is_retriable_and_nothing_is_cached() -> None:
    with socket.socket() as probe:  # a loopback port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SchemaRegistryClient({"url": f"http://127.0.0.1:{port}", "max.retries": 0})
    converter = AvroConverter(client)
    for _ in range(2):  # not cached as a failure: every attempt asks the registry again
        with pytest.raises(RetriableError, match="unreachable for subject t-value"):
            converter.convert("t", {"sensor": "s", "value": 1}, READING)
