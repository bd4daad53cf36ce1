"""Derive the typed Avro schemas in ``avro/`` from the Genesys SDK models (a developer tool).

Run ``python -m connector.plugins.genesys.schemagen [--check]`` with the ``test`` extra installed
(it needs ``PureCloudPlatformClientV2``, the official SDK; NOTIFICATIONS_API.md §5.3 lists the
models per topic). The runtime never imports this module: it reads the committed ``.avsc`` files,
so a schema change is always a reviewed diff.

Derivation rules (the reasons are in ``schemas.py``):

- every field is ``["null", T]`` with ``"default": null``: Genesys omits fields freely;
- SDK ``str`` (including every enum) -> ``string``: Genesys adds enum values over time;
- ``int`` -> ``long``, ``float`` -> ``double``, ``bool`` -> ``boolean``;
- ``datetime``/``date`` -> ``string`` (the ISO-8601 text as sent; no lossy parsing);
- ``object`` anywhere in a type (free-form maps) -> ``string`` holding JSON, marked
  ``"genesys.json": true`` on the field;
- nested SDK models -> nested Avro records (named after the SDK class, defined once, then
  referenced by name);
- every record gets ``unknown_fields`` (nullable string): a JSON object of every key of that
  JSON object the schema does not know, or whose value does not fit the declared type.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

NAMESPACE = "com.genesys.notifications"
SCHEMAS_DIR = Path(__file__).resolve().parent / "avro"
"""The package data folder in the source tree this runs from (it writes there; the runtime
reads the same files through :mod:`importlib.resources`)."""
UNKNOWN_FIELDS = "unknown_fields"

_DETAIL_MODELS: dict[str, str] = {
    "customer.start": "CustomerStartDetailEventTopicCustomerStartEvent",
    "customer.end": "CustomerEndDetailEventTopicCustomerEndEvent",
    "acd.start": "AcdStartDetailEventTopicAcdStartEvent",
    "acd.end": "AcdEndDetailEventTopicAcdEndEvent",
    "user.start": "UserStartDetailEventTopicUserStartEvent",
    "user.end": "UserEndDetailEventTopicUserEndEvent",
    "acw": "AcwDetailEventTopicAfterCallWorkEvent",
    "wrapup": "WrapupDetailEventTopicWrapupEvent",
    "flow.start": "FlowStartDetailEventTopicFlowStartEvent",
    "flow.end": "FlowEndDetailEventTopicFlowEndEvent",
    "flow.outcome": "FlowOutcomeDetailEventTopicFlowOutcomeEvent",
    "attributes": "AttributeDetailEventTopicAttributeUpdateEvent",
    "contact": "ContactDetailEventTopicContactUpdateEvent",
    "outbound": "OutboundDetailEventTopicOutboundInitEvent",
    "voicemail.start": "VoicemailStartDetailEventTopicVoicemailStartEvent",
    "voicemail.end": "VoicemailEndDetailEventTopicVoicemailEndEvent",
}

TYPED: dict[str, tuple[str, str]] = {
    # schema name -> (SDK model, topic template)
    "QueueConversation": (
        "QueueConversationEventTopicConversation",
        "v2.routing.queues.{id}.conversations",
    ),
    "UserConversation": ("ConversationEventTopicConversation", "v2.users.{id}.conversations"),
    "QueueMember": ("QueueUserEventTopicQueueMember", "v2.routing.queues.{id}.users"),
    "QueueObservations": (
        "StatEventQueueTopicStatsNotification",
        "v2.analytics.queues.{id}.observations",
    ),
    "UserPresence": ("PresenceEventUserPresence", "v2.users.{id}.presence"),
    "UserRoutingStatus": ("UserRoutingStatusUserRoutingStatus", "v2.users.{id}.routingStatus"),
    "UserActivity": ("AgentActivityChangedTopicAgentActivity", "v2.users.{id}.activity"),
}

_PRIMITIVES = {
    "str": "string",
    "int": "long",
    "float": "double",
    "bool": "boolean",
    "datetime": "string",
    "date": "string",
}


def _sdk() -> Any:
    try:
        import PureCloudPlatformClientV2
    except ImportError as exc:  # pragma: no cover - developer tool
        raise ImportError(
            "schemagen needs the Genesys SDK: pip install -e '.[test]' (PureCloudPlatformClientV2)"
        ) from exc
    return PureCloudPlatformClientV2


def _model_info(name: str) -> tuple[dict[str, str], dict[str, str]]:
    cls = getattr(_sdk(), name)
    instance = cls.__new__(cls)
    cls.__init__(instance)
    return dict(instance.swagger_types), dict(instance.attribute_map)


class _Builder:
    """Builds Avro types from SDK type strings, defining each named record once."""

    def __init__(self) -> None:
        self.defined: set[str] = set()

    def field_type(self, sdk_type: str) -> tuple[Any, bool]:
        """``(avro type, is_json)`` for one SDK type string."""
        if "object" in re.findall(r"[A-Za-z_]+", sdk_type):
            return "string", True
        if sdk_type in _PRIMITIVES:
            return _PRIMITIVES[sdk_type], False
        inner = re.fullmatch(r"list\[(.+)\]", sdk_type)
        if inner:
            item, _ = self.field_type(inner.group(1))
            return {"type": "array", "items": item}, False
        inner = re.fullmatch(r"dict\(str, (.+)\)", sdk_type)
        if inner:
            value, _ = self.field_type(inner.group(1))
            return {"type": "map", "values": value}, False
        return self.record(sdk_type), False

    def record(self, model: str, name: str | None = None, doc: str | None = None) -> Any:
        name = name or model
        if name in self.defined:
            return name
        self.defined.add(name)
        types, names = _model_info(model)
        fields = [self.field(names[attr], types[attr]) for attr in types]
        return self.make_record(name, fields, doc or f"Genesys SDK model {model}.")

    def field(self, json_name: str, sdk_type: str) -> dict[str, Any]:
        avro_type, is_json = self.field_type(sdk_type)
        field: dict[str, Any] = {"name": json_name, "type": ["null", avro_type], "default": None}
        if is_json:
            field["doc"] = f"JSON text of the Genesys value ({sdk_type})."
            field["genesys.json"] = True
        elif sdk_type in ("datetime", "date"):
            field["doc"] = "ISO-8601 text as sent by Genesys."
        return field

    @staticmethod
    def make_record(name: str, fields: list[dict[str, Any]], doc: str) -> dict[str, Any]:
        fields = [*fields, unknown_fields_field()]
        return {"type": "record", "name": name, "doc": doc, "fields": fields}


def unknown_fields_field() -> dict[str, Any]:
    """The field every record carries so that nothing the source sent is dropped."""
    return {
        "name": UNKNOWN_FIELDS,
        "type": ["null", "string"],
        "default": None,
        "doc": "Added by the connector: JSON object of every key of this object that the schema "
        "does not know or whose value does not fit its declared type; null when there is none.",
    }


def build_typed(schema_name: str) -> dict[str, Any]:
    """One typed family schema, top-level record named ``schema_name``."""
    model, template = TYPED[schema_name]
    builder = _Builder()
    record = builder.record(
        model,
        schema_name,
        f"eventBody of Genesys topic {template} (SDK model {model}).",
    )
    record["namespace"] = NAMESPACE
    return record


def build_detail() -> dict[str, Any]:
    """The union of every detail-event member: one record for the whole family.

    One Kafka topic per family needs one schema per topic (TopicNameStrategy); the members
    share most fields, so the record is the union of their fields in first-seen order.
    """
    builder = _Builder()
    fields: dict[str, dict[str, Any]] = {}
    for model in _DETAIL_MODELS.values():
        types, names = _model_info(model)
        for attr, sdk_type in types.items():
            field = builder.field(names[attr], sdk_type)
            previous = fields.get(field["name"])
            if previous is not None and previous["type"] != field["type"]:
                if isinstance(previous["type"][1], str):  # a named record defined earlier
                    continue
                raise ValueError(
                    f"detail events disagree on {field['name']}: {previous} vs {field}"
                )
            fields.setdefault(field["name"], field)
    added = {
        "name": "detail_event_type",
        "type": ["null", "string"],
        "default": None,
        "doc": "Added by the connector: the detail event from the topic name (acd.end, acw, ...).",
    }
    record = builder.make_record(
        "ConversationDetailEvent",
        [added, *fields.values()],
        "eventBody of Genesys topics v2.detail.events.conversation.{id}.{event}: the union of "
        "the SDK models " + ", ".join(_DETAIL_MODELS.values()) + ".",
    )
    record["namespace"] = NAMESPACE
    return record


def _nullable(name: str, avro_type: Any, doc: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": ["null", avro_type], "default": None, "doc": doc, **extra}


_TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}


def build_envelope() -> dict[str, Any]:
    """The generic schema for topics outside the typed families: the envelope, body as JSON."""
    return {
        "type": "record",
        "name": "NotificationEnvelope",
        "namespace": NAMESPACE,
        "doc": "Any Genesys notification outside the typed families: the envelope of "
        "NOTIFICATIONS_API.md section 4.2 with the eventBody kept as JSON text.",
        "fields": [
            {"name": "topicName", "type": "string", "doc": "The concrete Genesys topic."},
            _nullable("version", "string", 'Envelope version ("2" in every sample).'),
            _nullable("correlationId", "string", "metadata.CorrelationId."),
            _nullable(
                "metadata",
                "string",
                "JSON text of the whole metadata object.",
                **{"genesys.json": True},
            ),
            _nullable(
                "eventBody", "string", "JSON text of the eventBody.", **{"genesys.json": True}
            ),
            unknown_fields_field(),
        ],
    }


def build_gap() -> dict[str, Any]:
    """The gap record: a window in which events of one Genesys topic may have been lost."""
    return {
        "type": "record",
        "name": "GapRecord",
        "namespace": NAMESPACE,
        "doc": "A window in which Genesys events of one topic may have been lost: Genesys "
        "cannot replay (NOTIFICATIONS_API.md section 7), so the connector reports every window "
        "in which it was not listening. Backfill through the analytics REST API if needed.",
        "fields": [
            {"name": "connector", "type": "string", "doc": "The connector name."},
            {"name": "genesys_topic", "type": "string", "doc": "The Genesys topic."},
            _nullable(
                "from_time",
                _TIMESTAMP,
                "Start of the window: the last moment the topic was known to be live (null: "
                "unknown, i.e. before the topic was first subscribed).",
            ),
            {"name": "to_time", "type": _TIMESTAMP, "doc": "End: listening again from here."},
            {
                "name": "reason",
                "type": "string",
                "doc": "restart, disconnect, channel_lost, no_longer_subscribed, token_revoked, "
                "rotation_backlog or coverage_start.",
            },
            _nullable("detail", "string", "Free text: what was observed."),
            _nullable("last_correlation_id", "string", "CorrelationId of the last event seen."),
            _nullable("channel_id", "string", "The Genesys channel that was lost, if any."),
            {"name": "task_id", "type": "int", "doc": "The connector task that reports it."},
            _nullable(
                "from_basis",
                "string",
                "What from_time is. event_time: the latest event time received on the lost "
                "socket (Genesys stamps events before sending them and a socket delivers in "
                "order, so everything in flight was sent after it); backpressure: the moment "
                "the receiver, held back by Kafka, fell behind (no event time known); "
                "receive_time: the last receive time (no event time known, receiver keeping "
                "up); committed_offset: the seen_ms of the committed offset (restart).",
            ),
        ],
    }


def build_all() -> dict[str, dict[str, Any]]:
    """Every schema by its top-level name (generated and hand-written ones)."""
    schemas = {name: build_typed(name) for name in TYPED}
    schemas["ConversationDetailEvent"] = build_detail()
    schemas["NotificationEnvelope"] = build_envelope()
    schemas["GapRecord"] = build_gap()
    return schemas


def path_for(name: str) -> Path:
    """``avro/<namespace>.<Name>.avsc``."""
    return SCHEMAS_DIR / f"{NAMESPACE}.{name}.avsc"


def render(schema: dict[str, Any]) -> str:
    """Stable text: two-space JSON with a final newline."""
    return json.dumps(schema, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the generated schemas."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, schema in build_all().items():
        path = path_for(name)
        text = render(schema)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print("stale schemas: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
