"""From a raw WebSocket frame to a classified message, and from an event to a SourceRecord.

Frame kinds (NOTIFICATIONS_API.md §4):

================================  ==========================================================
kind                              frame
================================  ==========================================================
``HEARTBEAT``                     ``channel.metadata`` with body message
                                  ``WebSocket Heartbeat``
``PONG``                          ``channel.metadata`` with body message ``pong``
``METADATA``                      any other ``channel.metadata`` message
``SOCKET_CLOSING``                ``v2.system.socket_closing`` (maintenance close in ~1 min)
``NO_LONGER_SUBSCRIBED``          ``v2.system.no_longer_subscribed[.{id}]`` or a system body
                                  with ``systemTopicType`` ``no_longer_subscribed``
``TOKEN_REVOKED``                 ``v2.system.token_revoked[.{id}]`` / ``token_revoked`` body
``SYSTEM``                        any other ``v2.system.*`` message (logged)
``CHANNEL_GONE``                  ``{"result":"404",...}``: the channel no longer exists
``REPLY``                         any other ``{"result":...}`` frame (WS command replies)
``EVENT``                         a notification: ``topicName`` + object ``eventBody``
``MALFORMED``                     undecodable text, bad JSON, not an object, wrong envelope
================================  ==========================================================

Only ``EVENT`` becomes a record. Record building is done by :class:`RecordBuilder`, which
resolves routing, key rule and schema once per family, never per record.

Hostile input (issue 8, defect 9). :func:`classify` is the one decode/validate step: whatever
it returns holds only values that encode as UTF-8 (so every header, key and Avro string built
from them does) and whose nesting the parser accepted, and it never raises. The fast path is
orjson alone; only a frame orjson refuses takes the slow path (the stdlib parser, for the
>64-bit integers and NaN that orjson rejects, then a check for lone surrogates). A lone
surrogate (``"\\ud800"`` as an escape) is **malformed input**, not repaired: Genesys never
sends invalid UTF-16, so such a frame is not a Genesys event, and replacing the character
would change a CorrelationId or a topic name into one Genesys never sent. Texts taken from a
frame for logs and gap details are bounded (:func:`bounded_text`).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from connector.api import Header, SourceRecord
from connector.plugins.genesys import schemas, topics
from connector.plugins.genesys.schemas import dumps

HEARTBEAT_MESSAGE = "WebSocket Heartbeat"
PONG_MESSAGE = "pong"
PING_FRAME = '{"message":"ping"}'
"""The application-level ping (NOTIFICATIONS_API.md §4.4)."""

HEADER_TOPIC = "genesys.topic"
HEADER_VERSION = "genesys.version"
HEADER_CORRELATION_ID = "genesys.correlation.id"
HEADER_METADATA = "genesys.metadata"
HEADER_ENVELOPE_UNKNOWN = "genesys.envelope.unknown"

_ENVELOPE_KEYS = frozenset(("topicName", "version", "eventBody", "metadata"))


class FrameKind(enum.Enum):
    """What a frame is; see the module docstring."""

    EVENT = "event"
    HEARTBEAT = "heartbeat"
    PONG = "pong"
    METADATA = "metadata"
    SOCKET_CLOSING = "socket_closing"
    NO_LONGER_SUBSCRIBED = "no_longer_subscribed"
    TOKEN_REVOKED = "token_revoked"
    SYSTEM = "system"
    CHANNEL_GONE = "channel_gone"
    REPLY = "reply"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Classified:
    """A parsed frame. ``message`` is the reason (malformed) or the server's text (system)."""

    kind: FrameKind
    envelope: dict[str, Any] | None = None
    message: str | None = None

    @property
    def topic(self) -> str | None:
        """The ``topicName``, when the frame has one."""
        return self.envelope.get("topicName") if self.envelope else None


TEXT_MAX = 500
"""The longest text taken from a frame into a log line, a reason or a gap record's detail."""

MAX_CORRELATION_ID = 256
"""The longest ``metadata.CorrelationId`` accepted (Genesys sends a 36-character GUID). It is
part of every source offset, which a huge one would make too large for the offsets topic."""

_SURROGATE = re.compile("[\ud800-\udfff]")


class BadFrame(ValueError):
    """A frame that is not a JSON text Genesys could have sent; the message is the reason."""


def decode(payload: bytes | str) -> Any:
    """The JSON value of a frame, holding only UTF-8-encodable strings.

    Raises:
        BadFrame: not UTF-8, not JSON, nested deeper than the parser accepts (orjson: 1,024
            levels), or a string with a lone surrogate.
    """
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        refused = exc
    # The slow path, for frames orjson refuses: it rejects integers beyond 64 bits and NaN,
    # which the stdlib parser accepts; both refuse invalid UTF-8.
    if isinstance(payload, bytes):
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadFrame(f"undecodable text: {exc.reason} at byte {exc.start}") from None
    else:
        text = payload
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadFrame(f"nested too deep: {refused}") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
        raise BadFrame(f"bad JSON: {exc}") from None
    if _has_lone_surrogate(value):
        raise BadFrame(
            f"lone surrogate: a string holds an unpaired UTF-16 surrogate, which Genesys never "
            f"sends ({refused})"
        )
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string or key in ``value`` is not encodable as UTF-8 (iterative: any depth)."""
    stack = [value]
    search = _SURROGATE.search
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if not item.isascii() and search(item):
                return True
        elif kind is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def bounded_text(value: Any, limit: int = TEXT_MAX) -> str:
    """Text of a decoded JSON value for a log line, a reason or a gap detail: at most about
    ``limit`` characters, and never raising (not on nesting, size or a 10,000-digit number)."""
    if type(value) is str:
        text = value
    elif value is None or type(value) in (bool, float):
        text = str(value)
    elif type(value) is int:  # str() refuses more than 4,300 digits
        text = str(value) if -(2**63) <= value < 2**64 else f"a {value.bit_length()}-bit integer"
    else:
        try:
            text = dumps(value)
        except ValueError:
            text = f"a JSON {type(value).__name__} nested too deep to show"
    if len(text) > limit:
        return f"{text[:limit]}... ({len(text):,} characters)"
    return text


def classify(payload: bytes | str) -> Classified:
    """Parse one frame and say what it is. Never raises: bad input is ``MALFORMED``."""
    try:
        frame = decode(payload)
    except BadFrame as exc:
        return Classified(FrameKind.MALFORMED, message=str(exc))
    if type(frame) is not dict:
        return Classified(
            FrameKind.MALFORMED, message=f"wrong envelope: a JSON {type(frame).__name__}"
        )
    topic = frame.get("topicName")
    if topic is None:
        if "result" in frame:
            result = bounded_text(frame.get("result"))
            message = frame.get("message")
            text = bounded_text(message) if isinstance(message, str) else None
            kind = FrameKind.CHANNEL_GONE if result == "404" else FrameKind.REPLY
            return Classified(kind, frame, text or f"result {result}")
        return Classified(FrameKind.MALFORMED, frame, "wrong envelope: no topicName")
    if type(topic) is not str or not topic:
        return Classified(FrameKind.MALFORMED, frame, "wrong envelope: topicName is not a string")
    body = frame.get("eventBody")
    if topic == "channel.metadata":
        message = body.get("message") if type(body) is dict else None
        if message == HEARTBEAT_MESSAGE:
            return Classified(FrameKind.HEARTBEAT, frame)
        if message == PONG_MESSAGE:
            return Classified(FrameKind.PONG, frame)
        return Classified(FrameKind.METADATA, frame, bounded_text(message))
    if topic.startswith("v2.system"):
        return _system(topic, frame, body)
    if type(body) is not dict:
        what = "missing" if body is None else f"a JSON {type(body).__name__}"
        return Classified(FrameKind.MALFORMED, frame, f"wrong envelope: eventBody is {what}")
    return Classified(FrameKind.EVENT, frame)


def _system(topic: str, frame: dict[str, Any], body: Any) -> Classified:
    body = body if type(body) is dict else {}
    system_type = body.get("systemTopicType")
    message = body.get("message") or body.get("reason") or system_type
    text = bounded_text(message if message is not None else topic)
    if topic == "v2.system.socket_closing":
        return Classified(FrameKind.SOCKET_CLOSING, frame, text)
    if topic.startswith("v2.system.no_longer_subscribed") or system_type == "no_longer_subscribed":
        return Classified(FrameKind.NO_LONGER_SUBSCRIBED, frame, text)
    if topic.startswith("v2.system.token_revoked") or system_type == "token_revoked":
        return Classified(FrameKind.TOKEN_REVOKED, frame, text)
    return Classified(FrameKind.SYSTEM, frame, text)


def correlation_id(envelope: Mapping[str, Any]) -> str | None:
    """``metadata.CorrelationId`` (capital C, as sent), or ``None``."""
    metadata = envelope.get("metadata")
    if type(metadata) is dict:
        value = metadata.get("CorrelationId")
        return value if isinstance(value, str) else None
    return None


MAX_TIME_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the latest record timestamp accepted from a body."""


def parse_time_ms(value: Any) -> int | None:
    """Epoch ms from an epoch-ms number or an ISO-8601 text; ``None`` if neither, or if it is
    outside 1970..9999 (Kafka refuses negative timestamps, and librdkafka raises on one beyond
    64 bits instead of failing the delivery)."""
    if type(value) is int:
        found = value
    elif type(value) is str and value:
        try:
            found = int(datetime.fromisoformat(value).timestamp() * 1000)
        except (ValueError, OverflowError, OSError):
            return None
    else:
        return None
    return found if 0 <= found <= MAX_TIME_MS else None


def _dig(body: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = body
    for part in path:
        if type(value) is not dict:
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True, slots=True)
class _Route:
    """Everything resolved once per family."""

    kafka_topic: str
    family: topics.TopicFamily
    schema: schemas.FamilySchema
    timestamp_paths: tuple[tuple[str, ...], ...]


class RecordBuilder:
    """Builds the :class:`SourceRecord` of an ``EVENT`` frame.

    - topic: the family's Kafka topic (routing rule, resolved once per family);
    - key: the entity id for the family (``TopicFamily.key_source``): conversation id for
      conversation snapshots, user id for user topics and queue members, queue id for queue
      observations, conversation id for detail events, else the first GUID of the topic name;
    - value: the eventBody fitted to the family schema (``schemas.py``), or the generic envelope;
    - headers: ``genesys.topic``, ``genesys.version``, ``genesys.correlation.id``, plus
      ``genesys.metadata`` (JSON, only when metadata has more than the CorrelationId) and
      ``genesys.envelope.unknown`` (JSON of unknown envelope keys) so nothing is lost;
    - timestamp: the newest event time of the family's timestamp fields, else the receive time;
    - source partition ``{"topic": <genesys topic>}``; source offset
      ``{"event_time_ms", "correlation_id", "seen_ms"}`` (see ``task.py``).

    Raises ``TypeError`` if the body is not a JSON object (which :func:`classify` already
    reports as ``MALFORMED``) and ``ValueError`` for an event that cannot be a record: a value
    nested too deep to write as JSON text, or a CorrelationId over
    :data:`MAX_CORRELATION_ID` characters. The task returns both as malformed input.
    """

    def __init__(self, router: topics.Router) -> None:
        self._router = router
        self._routes: dict[str, _Route] = {}

    def route(self, family: topics.TopicFamily) -> _Route:
        """The resolved route of ``family`` (cached)."""
        route = self._routes.get(family.name)
        if route is None:
            schema = schemas.family_schema(family.schema or schemas.ENVELOPE_SCHEMA)
            route = _Route(
                self._router.topic_for(family.name),
                family,
                schema,
                tuple(tuple(p.split(".")) for p in family.timestamp_fields),
            )
            self._routes[family.name] = route
        return route

    def value(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """The record value of one event envelope (what :meth:`build` puts in the record)."""
        match = topics.match_topic(envelope["topicName"])
        return self._value(envelope, match, self.route(match.family))

    @staticmethod
    def _value(envelope: dict[str, Any], match: topics.TopicMatch, route: _Route) -> dict[str, Any]:
        if match.family.schema is None:
            return schemas.envelope_value(envelope)
        value = route.schema.to_avro(envelope["eventBody"])
        if match.detail_event is not None:
            value["detail_event_type"] = match.detail_event
        return value

    def build(self, envelope: dict[str, Any], received_ms: int) -> SourceRecord:
        """The record for one event envelope received at ``received_ms`` (epoch ms)."""
        topic: str = envelope["topicName"]
        body: dict[str, Any] = envelope["eventBody"]
        match = topics.match_topic(topic)
        route = self.route(match.family)
        family = match.family
        value = self._value(envelope, match, route)

        key: Any = match.entity_id
        if family.key_source == "body_id":
            body_id = body.get("id")
            if isinstance(body_id, str):
                key = body_id
        elif family.key_source == "body_user_id":
            user = body.get("user")
            user_id = user.get("id") if type(user) is dict else None
            if not isinstance(user_id, str):
                user_id = body.get("id")
            if isinstance(user_id, str):
                key = user_id
        if key is None:
            key = topic

        event_ms: int | None = None
        for path in route.timestamp_paths:
            found = parse_time_ms(_dig(body, path))
            if found is not None and (event_ms is None or found > event_ms):
                event_ms = found

        correlation = correlation_id(envelope)
        if correlation is not None and len(correlation) > MAX_CORRELATION_ID:
            raise ValueError(
                f"metadata.CorrelationId has {len(correlation):,} characters (at most "
                f"{MAX_CORRELATION_ID}; Genesys sends a GUID)"
            )
        version = envelope.get("version")
        headers: list[Header] = [(HEADER_TOPIC, topic)]
        if version is not None:
            headers.append((HEADER_VERSION, version if type(version) is str else dumps(version)))
        if correlation is not None:
            headers.append((HEADER_CORRELATION_ID, correlation))
        metadata = envelope.get("metadata")
        plain = type(metadata) is dict and len(metadata) == 1 and correlation is not None
        if metadata is not None and not plain:
            headers.append((HEADER_METADATA, dumps(metadata)))
        if len(envelope) > 4 or not _ENVELOPE_KEYS.issuperset(envelope):
            extra = {k: v for k, v in envelope.items() if k not in _ENVELOPE_KEYS}
            if extra:
                headers.append((HEADER_ENVELOPE_UNKNOWN, dumps(extra)))

        return SourceRecord(
            topic=route.kafka_topic,
            value=value,
            key=key,
            source_partition={"topic": topic},
            source_offset={
                "event_time_ms": event_ms,
                "correlation_id": correlation,
                "seen_ms": received_ms,
            },
            timestamp_ms=event_ms if event_ms is not None else received_ms,
            headers=headers,
            value_schema=route.schema.avro,
        )


def gap_record(
    *,
    gaps_topic: str,
    connector: str,
    task_id: int,
    genesys_topic: str,
    from_ms: int | None,
    to_ms: int,
    reason: str,
    detail: str | None = None,
    last_offset: Mapping[str, Any] | None = None,
    channel_id: str | None = None,
    from_basis: str | None = None,
) -> SourceRecord:
    """A gap record on the gaps topic (schema ``GapRecord``), keyed by the Genesys topic.

    Its source partition is the Genesys topic's own, and its offset carries the last event's
    position forward with ``seen_ms`` moved to ``to_ms``: once committed, a later restart measures
    its gap from here, so quiet topics also get a bounded window.
    """
    last = dict(last_offset or {})
    seen = last.get("seen_ms")
    value = {
        "connector": connector,
        "genesys_topic": genesys_topic,
        "from_time": from_ms,
        "to_time": to_ms,
        "reason": reason,
        "detail": detail,
        "last_correlation_id": last.get("correlation_id"),
        "channel_id": channel_id,
        "task_id": task_id,
        "from_basis": from_basis,
    }
    return SourceRecord(
        topic=gaps_topic,
        value=value,
        key=genesys_topic,
        source_partition={"topic": genesys_topic},
        source_offset={
            "event_time_ms": last.get("event_time_ms"),
            "correlation_id": last.get("correlation_id"),
            "seen_ms": max(to_ms, seen) if isinstance(seen, int) else to_ms,
        },
        timestamp_ms=to_ms,
        headers=[(HEADER_TOPIC, genesys_topic), ("genesys.gap.reason", reason)],
        value_schema=schemas.avro_schema(schemas.GAP_SCHEMA),
    )
