"""The compiled Avro writer on hostile values: a ConversionError with a bounded message, never
another exception (issue 8, defect 9: such a message becomes a dead letter's header)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.api import AvroSchema, ConversionError
from connector.serde.avro import AvroConverter

READING = AvroSchema(
    "com.example.Reading",
    {
        "type": "record",
        "name": "Reading",
        "namespace": "com.example",
        "fields": [
            {"name": "sensor", "type": "string"},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    },
)
TREE = AvroSchema(
    "com.example.Tree",
    {
        "type": "record",
        "name": "Tree",
        "namespace": "com.example",
        "fields": [{"name": "child", "type": ["null", "Tree"], "default": None}],
    },
)


def nested_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def converter() -> AvroConverter:
    return AvroConverter(SchemaRegistryClient.new_client({"url": "mock://"}))


@pytest.mark.parametrize(
    "value",
    [
        {"sensor": "x" * 1_200_000, "note": 5},
        {"sensor": nested_list(5_000)},
        {"sensor": {str(i): "v" * 1_000 for i in range(1_000)}},
        {"sensor": "ok", "note": nested_list(5_000)},
    ],
    ids=["1.2 MB string then a wrong type", "nested 5,000", "1 MB dict", "nested in a union"],
)
def test_a_wrong_value_gives_a_bounded_message(value: dict[str, Any]) -> None:
    with pytest.raises(ConversionError, match="is not a valid value") as caught:
        converter().convert("t", value, READING)
    assert len(str(caught.value)) < 600


def test_a_lone_surrogate_is_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match="surrogates not allowed") as caught:
        converter().convert("t", {"sensor": "a\ud800"}, READING)
    str(caught.value).encode("utf-8")  # the message itself is encodable (a header)


def test_a_recursive_schema_nested_deeper_than_python_is_a_conversion_error() -> None:
    value: dict[str, Any] = {"child": None}
    for _ in range(5_000):
        value = {"child": value}
    with pytest.raises(ConversionError, match="nested too deep"):
        converter().convert("t", value, TREE)
    assert converter().convert("t", {"child": {"child": None}}, TREE)[5:] == b"\x02\x00"
