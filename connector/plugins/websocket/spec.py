"""The ``websocket`` config model: the single source for validation, docs and the CLI.

Keys are dotted, Kafka Connect style (``websocket.ping.interval.ms``); Python attributes are
their snake_case twins, and both spellings are accepted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connector.api import PluginSpec
from connector.plugins.websocket.messages import TopicTemplate, compile_path
from connector.ws.urls import redact_url

FilterValue = str | int | float | bool | None


def _check_ws_url(url: str) -> str:
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"expected a ws:// or wss:// URL, got {redact_url(url)!r}")
    return url


class WebSocketSourceConfig(BaseModel):
    """Settings of a ``websocket`` connector (every key that is not a runtime envelope key)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    url: str | None = Field(
        None,
        alias="websocket.url",
        repr=False,  # a query string may carry a token
        description="The WebSocket URL to read (ws:// or wss://). Give this or websocket.urls.",
        examples=["wss://stream.example.com/v1/events"],
    )
    urls: list[str] | None = Field(
        None,
        alias="websocket.urls",
        repr=False,
        description="Several WebSocket URLs; each is one source partition, spread over tasks.",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        alias="websocket.headers",
        description="Handshake headers (for example Authorization); values are kept secret.",
    )
    subscribe_messages: list[str | dict[str, Any]] = Field(
        default_factory=list,
        alias="websocket.subscribe.messages",
        description="Messages sent after every (re)connect, in order; objects are sent as JSON.",
    )
    ping_interval_ms: int | None = Field(
        None,
        gt=0,
        alias="websocket.ping.interval.ms",
        description="Send a ping this often while connected; unset sends none.",
    )
    ping_message: str | None = Field(
        None,
        alias="websocket.ping.message",
        description='Text of an application-level ping (e.g. {"message":"ping"}); unset sends '
        "a WebSocket ping frame.",
    )
    liveness_timeout_ms: int | None = Field(
        None,
        gt=0,
        alias="websocket.liveness.timeout.ms",
        description="Reconnect when no frame at all arrived for this long; unset disables.",
    )
    connect_timeout_ms: int = Field(
        10_000,
        gt=0,
        alias="websocket.connect.timeout.ms",
        description="Timeout of the TCP connect and WebSocket handshake.",
    )
    reconnect_backoff_initial_ms: int = Field(
        500,
        ge=0,
        alias="reconnect.backoff.initial.ms",
        description="First delay before reconnecting; doubles per failed attempt, with jitter.",
    )
    reconnect_backoff_max_ms: int = Field(
        30_000,
        gt=0,
        alias="reconnect.backoff.max.ms",
        description="Upper bound of the reconnect delay.",
    )
    buffer_capacity: int = Field(
        10_000,
        ge=1,
        alias="buffer.capacity",
        description="Frames buffered between the sockets and the task; when full, reading "
        "stops (TCP backpressure), nothing is dropped.",
    )
    batch_max_records: int = Field(
        2_000,
        ge=1,
        alias="batch.max.records",
        description="Most records returned by one poll.",
    )
    topic: str = Field(
        alias="topic",
        description="Kafka topic; {field.path} placeholders are filled from the message.",
        examples=["ws.events", "ws.{type}"],
    )
    key_field: str | None = Field(
        None,
        alias="key.field",
        description="Dotted path of the record key in the message; unset gives a null key. A "
        "message without it goes to the dead-letter topic.",
    )
    timestamp_field: str | None = Field(
        None,
        alias="timestamp.field",
        description="Dotted path of the event time (epoch ms or ISO-8601); unset or unreadable "
        "uses the receive time.",
    )
    message_filter_field: str | None = Field(
        None,
        alias="message.filter.field",
        description="Dotted path compared with message.filter.values (e.g. a message type).",
    )
    message_filter_values: list[FilterValue] = Field(
        default_factory=list,
        alias="message.filter.values",
        description="Values of message.filter.field that select messages for the filter.",
    )
    message_filter_mode: Literal["drop", "keep"] = Field(
        "drop",
        alias="message.filter.mode",
        description="drop: discard selected messages (control messages); keep: discard all "
        "others. Discarded messages are counted, not recorded.",
    )
    value_format: Literal["envelope", "json"] = Field(
        "envelope",
        alias="value.format",
        description="envelope: the connector.websocket.Message Avro record (raw text, receive "
        "time, source); json: the parsed message itself, for the JSON converter.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_ws_url(value)

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one URL")
        return [_check_ws_url(url) for url in value]

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        TopicTemplate(value)
        return value

    @field_validator("key_field", "timestamp_field", "message_filter_field")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        if value is not None:
            compile_path(value)
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> WebSocketSourceConfig:
        if (self.url is None) == (self.urls is None):
            raise ValueError("set exactly one of websocket.url and websocket.urls")
        seen: dict[str, str] = {}
        for url in self.all_urls:
            redacted = redact_url(url)
            if redacted in seen:
                raise ValueError(
                    f"websocket.urls: two URLs are the same once their query values are "
                    f"redacted ({redacted}); they would share one source partition"
                )
            seen[redacted] = url
        if (self.message_filter_field is None) != (not self.message_filter_values):
            raise ValueError("set message.filter.field and message.filter.values together")
        if self.reconnect_backoff_max_ms < self.reconnect_backoff_initial_ms:
            raise ValueError(
                "reconnect.backoff.max.ms must be >= reconnect.backoff.initial.ms "
                f"({self.reconnect_backoff_max_ms} < {self.reconnect_backoff_initial_ms})"
            )
        if self.ping_message is not None and self.ping_interval_ms is None:
            raise ValueError("websocket.ping.message needs websocket.ping.interval.ms")
        return self

    @property
    def all_urls(self) -> list[str]:
        """The configured URLs, whether given as websocket.url or websocket.urls."""
        if self.urls is not None:
            return list(self.urls)
        return [self.url] if self.url is not None else []


SPEC = PluginSpec(
    name="websocket",
    summary="Any JSON-over-WebSocket feed to Kafka, with reconnects and backpressure.",
    version="0.1.0",
    config_model=WebSocketSourceConfig,
    status="beta",
    examples=(
        {
            "name": "ticker",
            "plugin": "websocket",
            "websocket.url": "wss://stream.example.com/v1/events",
            "websocket.subscribe.messages": [{"op": "subscribe", "channel": "trades"}],
            "websocket.ping.interval.ms": 15000,
            "websocket.ping.message": '{"op":"ping"}',
            "websocket.liveness.timeout.ms": 60000,
            "topic": "ws.{channel}",
            "key.field": "symbol",
            "timestamp.field": "time",
            "message.filter.field": "op",
            "message.filter.values": ["pong", "subscribed"],
        },
    ),
)
