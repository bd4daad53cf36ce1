"""Offsets-topic keys are byte-identical to Kafka Connect's (Jackson, compact JSON)."""

from __future__ import annotations

from connector.runtime.offset_store import offset_key


def test_key_is_the_compact_json_array_of_connector_and_partition() -> None:
    assert offset_key("local-file-source", {"filename": "test.txt"}) == (
        b'["local-file-source",{"filename":"test.txt"}]'
    )


def test_partition_keys_keep_the_connectors_order() -> None:
    assert offset_key("c", {"b": 1, "a": "x"}) == b'["c",{"b":1,"a":"x"}]'


def test_non_ascii_is_written_as_utf8_not_escaped() -> None:
    # Jackson's default writes non-ASCII characters as UTF-8, not \\u escapes
    assert offset_key("c", {"topic": "café"}) == '["c",{"topic":"café"}]'.encode()


def test_primitive_values_keep_their_json_types() -> None:
    assert offset_key("c", {"n": 7, "ok": True, "none": None}) == (
        b'["c",{"n":7,"ok":true,"none":null}]'
    )
