"""The one decode/validate step of a Genesys frame, and the texts and times taken from it
(issue 8, defect 9)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from genesys_helpers import USER_1, load_fixture

from connector.plugins.genesys import events, schemas, topics
from connector.plugins.genesys.events import BadFrame, FrameKind

PRESENCE = f"v2.users.{USER_1}.presence"


def envelope_text(**fields: str) -> bytes:
    """A presence event with some fields replaced by raw JSON text."""
    parts = {
        "topicName": orjson.dumps(PRESENCE).decode(),
        "version": '"2"',
        "eventBody": '{"id":"x"}',
        "metadata": '{"CorrelationId":"c"}',
        **fields,
    }
    return ("{" + ",".join(f'"{k}":{v}' for k, v in parts.items()) + "}").encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[" * 1_100 + b"]" * 1_100, "nested too deep: depth limit exceeded"),
        (envelope_text(eventBody='{"a":' + "[" * 1_030 + "]" * 1_030 + "}"), "nested too deep"),
        (envelope_text(metadata='{"CorrelationId":"\\ud800"}'), "lone surrogate: "),
        (envelope_text(metadata='{"CorrelationId":"c","type":"x\\udfff"}'), "lone surrogate: "),
        (envelope_text(topicName=f'"{PRESENCE}\\ud800"'), "lone surrogate: "),
        (envelope_text(eventBody='{"\\udc00key":1}'), "lone surrogate: "),
        (envelope_text(eventBody='{"n":' + "9" * 5_000 + "}"), "bad JSON: "),
        (b'{"topicName":"' + b"x" * 1_200_000, "bad JSON: "),
        (b'{"topicName":"\xff"}', "undecodable text: invalid start byte at byte 14"),
        (b'{"topicName":"\xed\xa0\x80"}', "undecodable text: "),  # a UTF-8-encoded surrogate
    ],
    ids=[
        "array nested 1,100",
        "body nested 1,030",
        "lone surrogate CorrelationId",
        "lone surrogate in another metadata field",
        "lone surrogate in topicName",
        "lone surrogate in a key",
        "5,000-digit integer",
        "1.2 MB of bad JSON",
        "invalid UTF-8",
        "UTF-8-encoded surrogate",
    ],
)
def test_hostile_frames_are_malformed_with_a_reason(payload: bytes, reason: str) -> None:
    found = events.classify(payload)
    assert found.kind is FrameKind.MALFORMED
    assert (found.message or "").startswith(reason), found.message
    assert len(found.message or "") < 500


def test_a_str_frame_with_a_raw_lone_surrogate_is_malformed() -> None:
    with pytest.raises(BadFrame, match="lone surrogate"):
        events.decode(envelope_text().decode().replace('"c"', '"\ud800"'))


@pytest.mark.parametrize(
    "body",
    ['{"emoji":"\\ud83d\\ude00"}', '{"n":%d}' % 2**70, '{"x":NaN}', '{"x":1e400}'],  # noqa: UP031
    ids=["surrogate pair", "70-bit integer", "NaN", "1e400"],
)
def test_what_genesys_may_send_and_orjson_refuses_still_decodes(body: str) -> None:
    assert events.classify(envelope_text(eventBody=body)).kind is FrameKind.EVENT


def test_nesting_orjson_parses_but_cannot_write_is_still_a_record() -> None:
    deep = "[" * 500 + "]" * 500
    record = build(envelope_text(eventBody=f'{{"id":"x","extra":{deep}}}'))
    assert orjson.loads(record.value["unknown_fields"])["extra"] == orjson.loads(deep)


def build(payload: bytes) -> Any:
    found = events.classify(payload)
    assert found.kind is FrameKind.EVENT, found.message
    return events.RecordBuilder(topics.Router()).build(found.envelope, 1_700_000_000_000)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"version": "[" * 1_000 + "]" * 1_000}, "nested too deep to write as JSON"),
        ({"metadata": '{"x":' + "[" * 1_000 + "]" * 1_000 + "}"}, "nested too deep"),
        ({"metadata": orjson.dumps({"CorrelationId": "c" * 257}).decode()}, "257 characters"),
    ],
    ids=["version", "metadata", "CorrelationId over 256 characters"],
)
def test_events_that_cannot_be_records_raise_value_error(
    fields: dict[str, str], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        build(envelope_text(**fields))


def test_a_version_that_is_not_a_string_is_json_in_the_header() -> None:
    record = build(envelope_text(version='{"major":2}'))
    assert dict(record.headers)["genesys.version"] == '{"major":2}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_714_557_600_000, 1_714_557_600_000),
        (-1, None),
        (2**64 - 1, None),
        ("0001-01-01T00:00:00Z", None),
        ("0001-01-01T00:00:00", None),
        ("9999-12-31T23:59:59.999Z", events.MAX_TIME_MS),
        ("2024-05-01T10:00:00.000Z", 1_714_557_600_000),
    ],
)
def test_event_times_outside_1970_to_9999_are_not_timestamps(
    value: object, expected: int | None
) -> None:
    assert events.parse_time_ms(value) == expected


def test_an_out_of_range_event_time_falls_back_to_the_receive_time() -> None:
    frame = load_fixture("frames/detail_acw.json")
    frame["eventBody"]["eventTime"] = 2**64 - 1  # over a signed long: kept in unknown_fields
    record = build(orjson.dumps(frame))
    assert record.timestamp_ms == 1_700_000_000_000
    assert record.source_offset["event_time_ms"] is None


@pytest.mark.parametrize(
    "value",
    [orjson.loads("[" * 1_000 + "]" * 1_000), 10**5_000, "x" * 1_200_000, {"a": "b" * 10_000}],
    ids=["nested 1,000", "5,000-digit integer", "1.2 MB string", "big object"],
)
def test_bounded_text_never_raises_and_stays_short(value: object) -> None:
    assert len(events.bounded_text(value)) < events.TEXT_MAX + 40


def test_dumps_falls_back_for_nesting_then_refuses_with_value_error() -> None:
    assert schemas.dumps(orjson.loads("[" * 300 + "]" * 300)) == "[" * 300 + "]" * 300
    value: Any = []
    for _ in range(5_000):
        value = [value]
    with pytest.raises(ValueError, match="nested too deep"):
        schemas.dumps(value)
