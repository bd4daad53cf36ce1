"""Fuzz of the websocket plugin's record path over a real local socket (issue 8, defect 9).

Random frames of every shape, size and encoding go through the receiver and ``poll``; every
frame must come out as exactly one record or malformed input (no filter is configured), in
order, and every record must pass the runtime's converters (Avro for ``envelope`` values, JSON
for ``json`` values), header and offset encoding.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from fuzz_json import FrameFuzzer, delivery_problems

from connector.api import MalformedInput
from connector.plugins.websocket import WebSocketSourceTask
from connector.plugins.websocket.messages import parse_timestamp_ms, render_scalar
from connector.plugins.websocket.task import JSON_MAX_DEPTH
from connector.serde.avro import AvroConverter
from connector.serde.converter import JsonConverter, StringConverter
from connector.testing import FakeTaskContext, poll_until
from connector.ws.testing import LocalWebSocketServer

pytestmark = pytest.mark.timeout(120)

StartTask = Callable[..., tuple[WebSocketSourceTask, FakeTaskContext]]  # the conftest fixture

SEED = int(os.environ.get("FUZZ_SEED", "809"))
CASES = int(os.environ.get("FUZZ_CASES", "1500"))
"""Fixed by default; set ``FUZZ_SEED``/``FUZZ_CASES`` to explore further."""

SEEDS: list[dict[str, Any]] = [
    {"type": "trade", "sym": "ABC", "at": 1700000000123, "px": 1.5},
    {
        "type": "quote",
        "sym": "XYZ",
        "at": "2023-11-14T22:13:20.500Z",
        "meta": {"kind": "q", "tags": ["a", "b"]},
        "a": {"b": ["k1", {"c": None}]},
    },
]


@pytest.mark.parametrize(
    ("value_format", "settings"),
    [
        ("envelope", {"topic": "ws.{type}", "key.field": "sym", "timestamp.field": "at"}),
        ("json", {"topic": "ws.{type}.{meta.kind}", "key.field": "a.b.0", "timestamp.field": "at"}),
    ],
)
def test_random_frames_never_raise_out_of_poll_and_every_record_converts(
    server: LocalWebSocketServer,
    start_task: StartTask,
    value_format: str,
    settings: dict[str, Any],
) -> None:
    cases = list(FrameFuzzer(SEED, SEEDS).frames(CASES))
    server.on_connect = lambda conn: conn.send_many(
        p.encode("utf-8", "surrogatepass") if isinstance(p, str) else p for _, p in cases
    )
    task, _ = start_task({"websocket.url": server.url, "value.format": value_format, **settings})

    polled = poll_until(task, len(cases), timeout_s=60)

    assert len(polled) == len(cases), "one record or malformed input per frame, nothing raised"
    key_converter = StringConverter()
    value_converter = (
        AvroConverter(SchemaRegistryClient.new_client({"url": "mock://"}))
        if value_format == "envelope"
        else JsonConverter()
    )
    failures = [
        f"{name}: {problem}"
        for (name, _), item in zip(cases, polled, strict=True)
        for problem in delivery_problems(item, key_converter, value_converter)
    ]
    assert not failures, "\n".join(failures[:40])
    assert [item.source_offset["seq"] for item in polled] == list(range(1, len(cases) + 1))
    outcomes = Counter(type(item).__name__ for item in polled)
    assert outcomes["SourceRecord"] > 100 and outcomes["MalformedInput"] > 300, outcomes
    reasons = {item.reason[:20] for item in polled if type(item) is MalformedInput}
    assert {"frame is not valid J", "frame is not valid U", "expected a JSON obje"} <= reasons


def test_json_values_nested_deeper_than_the_json_converter_writes_are_malformed(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    deepest = "[" * (JSON_MAX_DEPTH - 1) + "]" * (JSON_MAX_DEPTH - 1)
    too_deep = "[" * JSON_MAX_DEPTH + "]" * JSON_MAX_DEPTH
    frames = [f'{{"a":{deepest}}}', f'{{"a":{too_deep}}}', f'{{"a":{{"b":{too_deep}}}}}']
    server.on_connect = lambda conn: conn.send_many(frames)
    task, _ = start_task({"websocket.url": server.url, "topic": "t", "value.format": "json"})

    ok, deep, deeper = poll_until(task, 3)

    assert JsonConverter().convert("t", ok.value, None) == frames[0].encode()
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(orjson.loads(frames[1]))  # the limit is orjson's own
    for item in (deep, deeper):
        assert type(item) is MalformedInput
        assert item.reason.startswith(f"nested more than {JSON_MAX_DEPTH} levels deep")


def test_keys_and_topics_from_hostile_fields_are_malformed_with_bounded_reasons(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    deep = "[" * 300 + "]" * 300
    frames = [
        f'{{"type":"t","sym":{deep}}}',  # a key orjson cannot render
        f'{{"type":{deep},"sym":"k"}}',  # a topic part orjson cannot render
        '{"type":"' + "x" * 1_200_000 + '","sym":"k"}',  # a 1.2 MB topic name
    ]
    server.on_connect = lambda conn: conn.send_many(frames)
    task, _ = start_task({"websocket.url": server.url, "topic": "ws.{type}", "key.field": "sym"})

    letters = poll_until(task, 3, timeout_s=10)

    assert [type(item) for item in letters] == [MalformedInput] * 3
    assert letters[0].reason.startswith("key field 'sym': a JSON list that cannot be rendered")
    assert "cannot be rendered" in letters[1].reason
    assert "(1,200,003 chars)" in letters[2].reason and len(letters[2].reason) < 600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**64 - 1, None),
        (-5, None),
        (1e300, None),
        (float("nan"), None),
        ("²", None),
        ("9" * 30, None),
        ("0001-01-01T00:00:00Z", None),
        ("9999-12-31T23:59:59.999Z", 253_402_300_799_999),
        (0, 0),
    ],
)
def test_timestamps_outside_what_kafka_takes_fall_back_to_the_receive_time(
    value: object, expected: int | None
) -> None:
    assert parse_timestamp_ms(value) == expected


def test_render_scalar_refuses_what_orjson_cannot_write() -> None:
    with pytest.raises(ValueError, match="cannot be rendered"):
        render_scalar(orjson.loads("[" * 300 + "]" * 300))
