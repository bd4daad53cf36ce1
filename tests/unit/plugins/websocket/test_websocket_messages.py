from __future__ import annotations

import pytest

from connector.plugins.websocket.messages import (
    MISSING,
    TopicTemplate,
    compile_path,
    is_valid_topic,
    parse_timestamp_ms,
    render_scalar,
)


def test_paths_read_nested_objects_and_list_indexes() -> None:
    message = {"a": {"b": [{"c": 1}, {"c": 2}]}, "x": 0, "0": "zero"}
    assert compile_path("a.b.1.c")(message) == 2
    assert compile_path("x")(message) == 0
    assert compile_path("0")(message) == "zero"
    assert compile_path("a.b.5.c")(message) is MISSING
    assert compile_path("x.y")(message) is MISSING
    assert compile_path("nope")(message) is MISSING
    assert compile_path("a")([1]) is MISSING


@pytest.mark.parametrize("path", ["", ".a", "a.", "a..b"])
def test_invalid_paths_are_rejected(path: str) -> None:
    with pytest.raises(ValueError, match="invalid field path"):
        compile_path(path)


def test_scalars_render_as_text_and_objects_as_json() -> None:
    assert render_scalar("k") == "k"
    assert render_scalar(12) == "12"
    assert render_scalar(True) == "true"
    assert render_scalar({"a": [1]}) == '{"a":[1]}'
    assert render_scalar(None) is None
    assert render_scalar(MISSING) is None


def test_topic_templates_fill_placeholders() -> None:
    template = TopicTemplate("ws.{type}.{meta.region}")
    assert template.fields == ["type", "meta.region"]
    assert template.render({"type": "trade", "meta": {"region": "eu"}}) == "ws.trade.eu"
    assert TopicTemplate("ws.{n}").render({"n": 7}) == "ws.7"
    assert TopicTemplate("plain").constant == "plain"


def test_topic_template_errors_name_the_problem() -> None:
    template = TopicTemplate("ws.{type}")
    with pytest.raises(ValueError, match="topic field 'type' is missing or null"):
        template.render({})
    with pytest.raises(ValueError, match="1-249 characters"):
        template.render({"type": "a/b"})
    with pytest.raises(ValueError, match="invalid topic"):
        TopicTemplate("bad topic")


def test_kafka_topic_names() -> None:
    assert is_valid_topic("v2.users.abc-1_x")
    assert not is_valid_topic("..")
    assert not is_valid_topic("x" * 250)
    assert not is_valid_topic("")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1700000000123, 1700000000123),
        (1700000000123.9, 1700000000123),
        ("1700000000123", 1700000000123),
        ("2023-11-14T22:13:20.123Z", 1700000000123),
        ("2023-11-14T23:13:20.123+01:00", 1700000000123),
        ("2023-11-14T22:13:20.123", 1700000000123),
        ("yesterday", None),
        (True, None),
        (None, None),
        ({"ms": 1}, None),
    ],
)
def test_timestamps(value: object, expected: int | None) -> None:
    assert parse_timestamp_ms(value) == expected
