from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from connector.plugins.websocket import SPEC, WebSocketSourceConfig

BASE = {"websocket.url": "wss://feed.example.com/v1", "topic": "ws.events"}


def errors(values: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        WebSocketSourceConfig.model_validate(values)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


def test_minimal_config_gets_the_defaults() -> None:
    config = WebSocketSourceConfig.model_validate(BASE)
    assert config.all_urls == ["wss://feed.example.com/v1"]
    assert (config.buffer_capacity, config.batch_max_records) == (10_000, 2_000)
    assert (config.reconnect_backoff_initial_ms, config.reconnect_backoff_max_ms) == (500, 30_000)
    assert config.value_format == "envelope"
    assert config.message_filter_mode == "drop"


def test_dotted_aliases_and_snake_case_names_are_both_accepted() -> None:
    dotted = WebSocketSourceConfig.model_validate(
        {**BASE, "websocket.ping.interval.ms": 1000, "key.field": "a.b"}
    )
    snake = WebSocketSourceConfig.model_validate(
        {
            "url": BASE["websocket.url"],
            "topic": "ws.events",
            "ping_interval_ms": 1000,
            "key_field": "a.b",
        }
    )
    assert dotted == snake


def test_unknown_keys_are_rejected_by_their_name() -> None:
    assert errors({**BASE, "websocket.ping.intervall.ms": 5}) == [
        (("websocket.ping.intervall.ms",), "Extra inputs are not permitted")
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("buffer.capacity", "lots"),
        ("batch.max.records", 0),
        ("websocket.urls", "wss://a"),
        ("websocket.ping.interval.ms", -5),
        ("websocket.subscribe.messages", "hello"),
        ("websocket.headers", ["Authorization: x"]),
        ("value.format", "avro"),
        ("message.filter.mode", "maybe"),
    ],
)
def test_wrong_types_and_values_are_reported_under_the_dotted_key(key: str, value: Any) -> None:
    values = {**BASE, key: value}
    if key == "websocket.urls":
        del values["websocket.url"]
    locations = {loc[0] for loc, _ in errors(values)}
    assert locations == {key}


def test_exactly_one_of_url_and_urls() -> None:
    (both,) = errors({**BASE, "websocket.urls": ["wss://b.example"]})
    assert "exactly one of websocket.url and websocket.urls" in both[1]
    (neither,) = errors({"topic": "t"})
    assert "exactly one" in neither[1]


def test_urls_must_be_websocket_urls() -> None:
    ((loc, message),) = errors({**BASE, "websocket.url": "https://x.example/?token=s3cret"})
    assert loc == ("websocket.url",)
    assert "ws:// or wss://" in message
    assert "s3cret" not in message
    assert errors({"topic": "t", "websocket.urls": []})[0][0] == ("websocket.urls",)


def test_urls_equal_after_redaction_are_rejected() -> None:
    (error,) = errors(
        {"topic": "t", "websocket.urls": ["wss://a.example/?token=1", "wss://a.example/?token=2"]}
    )
    assert "share one source partition" in error[1]
    assert "token=1" not in error[1]


@pytest.mark.parametrize(
    ("topic", "fragment"),
    [
        ("bad topic", "invalid topic"),
        ("ws.{type", "invalid topic template"),
        ("ws.{type:>5}", "plain {field.path}"),
        ("ws.{a..b}", "invalid field path"),
    ],
)
def test_topic_templates_are_checked(topic: str, fragment: str) -> None:
    ((loc, message),) = errors({**BASE, "topic": topic})
    assert loc == ("topic",)
    assert fragment in message


def test_field_paths_are_checked() -> None:
    ((loc, message),) = errors({**BASE, "key.field": "a..b"})
    assert loc == ("key.field",)
    assert "invalid field path" in message


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"message.filter.field": "op"}, "together"),
        ({"message.filter.values": ["pong"]}, "together"),
        ({"reconnect.backoff.initial.ms": 5000, "reconnect.backoff.max.ms": 1000}, ">="),
        ({"websocket.ping.message": "ping"}, "websocket.ping.interval.ms"),
    ],
)
def test_cross_field_rules(extra: dict[str, Any], fragment: str) -> None:
    ((_, message),) = errors({**BASE, **extra})
    assert fragment in message


def test_header_values_and_urls_are_hidden_in_repr() -> None:
    config = WebSocketSourceConfig.model_validate(
        {
            **BASE,
            "websocket.url": "wss://x.example/?token=s3cret",
            "websocket.headers": {"Authorization": "Bearer hunter2"},
        }
    )
    assert config.headers["Authorization"].get_secret_value() == "Bearer hunter2"
    assert "hunter2" not in repr(config)
    assert "s3cret" not in repr(config)


def test_spec_examples_validate() -> None:
    assert SPEC.name == "websocket"
    assert SPEC.config_model is WebSocketSourceConfig
    for example in SPEC.examples:
        plugin_keys = {k: v for k, v in example.items() if k not in ("name", "plugin")}
        WebSocketSourceConfig.model_validate(plugin_keys)


def test_every_field_is_documented_with_a_dotted_alias() -> None:
    for name, field in WebSocketSourceConfig.model_fields.items():
        assert field.description, name
        assert field.alias and field.alias.replace(".", "_").endswith(name)
