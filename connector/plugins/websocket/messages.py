"""Reading fields out of a parsed JSON message: dotted paths, topic templates, timestamps.

Everything here is compiled once from the config (at import of a task's config) so that the
per-message work is a few dict lookups.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MISSING: Any = object()
"""Returned by a :data:`FieldGetter` when the path does not exist in the message."""

FieldGetter = Callable[[Any], Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def compile_path(path: str) -> FieldGetter:
    """Return a getter for a dotted ``path`` (``eventBody.id``; digits index into lists).

    The getter returns :data:`MISSING` when any step is absent or of the wrong type.

    >>> get = compile_path("a.b.1")
    >>> get({"a": {"b": [10, 20]}}), get({"a": {}}) is MISSING
    (20, True)
    """
    parts = path.split(".")
    if not path or any(not part for part in parts):
        raise ValueError(f"invalid field path {path!r}: use dot-separated names like 'a.b'")
    if len(parts) == 1:
        (name,) = parts

        def get_one(message: Any) -> Any:
            if type(message) is dict:
                return message.get(name, MISSING)
            return MISSING

        return get_one

    # Each step is (dict key, list index or -1): no type dispatch left for the hot path.
    steps = tuple((part, int(part) if part.isdigit() else -1) for part in parts)

    def get_nested(message: Any) -> Any:
        current = message
        for key, index in steps:
            kind = type(current)
            if kind is dict:
                current = current.get(key, MISSING)
                if current is MISSING:
                    return MISSING
            elif kind is list and 0 <= index < len(current):
                current = current[index]
            else:
                return MISSING
        return current

    return get_nested


def render_scalar(value: Any) -> str | None:
    """The text of a key or topic part: strings as-is, numbers and booleans as JSON, objects
    and arrays as compact JSON; ``None`` for JSON null or a missing field.

    Raises:
        ValueError: an object or array nested deeper than orjson writes (254 levels).
    """
    if value is MISSING or value is None:
        return None
    if type(value) is str:
        return value
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"a JSON {type(value).__name__} that cannot be rendered: {exc}") from None


class TopicTemplate:
    """A topic name with ``{field.path}`` placeholders filled from the message (``ws.{type}``).

    ``{{`` and ``}}`` are literal braces. A constant template costs nothing per message.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self._parts: list[str | tuple[str, FieldGetter]] = []
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ValueError(f"invalid topic template {template!r}: {exc}") from exc
        for literal, field, spec, conversion in parsed:
            if literal:
                self._parts.append(literal)
            if field is None:
                continue
            if spec or conversion:
                raise ValueError(
                    f"invalid topic template {template!r}: use plain {{field.path}} "
                    "placeholders, without ':' format specs or '!' conversions"
                )
            self._parts.append((field, compile_path(field)))
        self.constant: str | None = None
        if all(isinstance(part, str) for part in self._parts):
            self.constant = "".join(part for part in self._parts if isinstance(part, str))
            if not is_valid_topic(self.constant):
                raise ValueError(f"invalid topic {self.constant!r}: {TOPIC_RULE}")
        self._valid: set[str] = set()
        self._single: tuple[str, tuple[str, FieldGetter], str] | None = None
        fields = [part for part in self._parts if isinstance(part, tuple)]
        if len(fields) == 1:
            at = self._parts.index(fields[0])
            before = "".join(p for p in self._parts[:at] if isinstance(p, str))
            after = "".join(p for p in self._parts[at + 1 :] if isinstance(p, str))
            self._single = (before, fields[0], after)

    @property
    def fields(self) -> list[str]:
        """The field paths used by the placeholders."""
        return [part[0] for part in self._parts if isinstance(part, tuple)]

    def render(self, message: Any) -> str:
        """The topic for ``message``; raises ``ValueError`` naming the problem field."""
        if self.constant is not None:
            return self.constant
        if self._single is not None:  # "prefix.{field}.suffix": the common shape
            prefix, (field, get), suffix = self._single
            text = render_scalar(get(message))
            if text is None:
                raise ValueError(f"topic field '{field}' is missing or null")
            topic = prefix + text + suffix
        else:
            topic = self._render_parts(message)
        if topic not in self._valid:
            if not is_valid_topic(topic):
                shown = topic if len(topic) <= 300 else f"{topic[:300]}... ({len(topic):,} chars)"
                raise ValueError(f"topic {shown!r} from template {self.template!r}: {TOPIC_RULE}")
            if len(self._valid) < 10_000:  # bounded: field values are untrusted input
                self._valid.add(topic)
        return topic

    def _render_parts(self, message: Any) -> str:
        pieces: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            field, get = part
            text = render_scalar(get(message))
            if text is None:
                raise ValueError(f"topic field '{field}' is missing or null")
            pieces.append(text)
        return "".join(pieces)


TOPIC_RULE = "a Kafka topic has 1-249 characters from [A-Za-z0-9._-]"


def is_valid_topic(topic: str) -> bool:
    """Whether Kafka accepts ``topic`` as a topic name."""
    return bool(_KAFKA_TOPIC.match(topic)) and topic not in (".", "..")


MAX_TIMESTAMP_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the latest record timestamp taken from a message."""


def parse_timestamp_ms(value: Any) -> int | None:
    """Epoch milliseconds from an epoch-ms number, a digit string, or an ISO-8601 string.

    Naive ISO times are taken as UTC. Returns ``None`` when ``value`` is none of those, or is
    outside 1970..9999: Kafka refuses negative timestamps, and librdkafka raises (instead of
    failing the delivery) on one beyond 64 bits.

    >>> parse_timestamp_ms(1700000000123), parse_timestamp_ms("2023-11-14T22:13:20.123Z")
    (1700000000123, 1700000000123)
    """
    kind = type(value)
    if kind is int:
        found = value
    elif kind is float:
        if not 0 <= value <= MAX_TIMESTAMP_MS:  # also NaN and infinities
            return None
        found = int(value)
    elif kind is not str:
        return None
    elif value.isascii() and value.isdigit():  # not "²", which isdigit() accepts and int() not
        if len(value) > 15:
            return None
        found = int(value)
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            found = (parsed - _EPOCH) // _ONE_MS  # integer arithmetic: no float rounding
        except OverflowError:
            return None
    return found if 0 <= found <= MAX_TIMESTAMP_MS else None
