"""The Genesys record path on the native extension (``connector._native``, Rust).

:class:`NativeRecords` compiles, once per task, what the Rust side needs: one program per
family schema (:func:`schema_program`) and one route per subscribed topic (its family's Kafka
topic, key rule, timestamp fields, detail event), everything :class:`RecordBuilder` would
otherwise resolve per family. :meth:`NativeRecords.build` then hands a batch of frames to Rust,
which parses, classifies, fits and encodes them with the interpreter lock released, and returns
per frame the record, or ``None`` for a frame the Python path must handle: anything that is not
plainly an event of a subscribed typed topic (malformed input, heartbeats and system messages,
the generic-envelope family, unusual timestamp texts...), so those keep their exact old outcome.

The records are those :meth:`RecordBuilder.build` makes, except that the value is an
:class:`~connector.serde.encoded.EncodedAvro`: the same bytes the Avro converter would write
(the identity tests compare them, and the dicts, with the Python path's over fixtures, the
simulator's events and fuzzed frames), and the same dict when something reads it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connector.api import AvroSchema, SourceRecord
from connector.buffer import Frame
from connector.plugins.genesys import events, topics
from connector.plugins.genesys.events import RecordBuilder
from connector.plugins.genesys.schemas import UNKNOWN_FIELDS
from connector.serde.encoded import EncodedAvro

_PRIMITIVES = {"string", "boolean", "long", "int", "double"}
_LOGICAL_OK = {"string", "long", "int"}
"""Primitives whose logical types the compiled writer leaves alone for values of the plain type
(the fit only ever yields those)."""


class _Unsupported(Exception):
    """The schema uses something the native program does not cover (Python path)."""


def _full(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _ProgramCompiler:
    """Mirrors ``schemas._FitterCompiler`` and the compiled writer, for the subset both agree
    on trivially: records whose fields are all ``[null, T]`` with a null default."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.records: list[dict[str, Any] | None] = []

    def item(self, avro_type: Any, namespace: str | None) -> Any:
        """The program type of an array item, map value or union branch (not itself nullable)."""
        if isinstance(avro_type, str):
            if avro_type in _PRIMITIVES:
                return avro_type
            full = _full(avro_type, namespace)
            if full not in self.index:
                raise _Unsupported(f"reference to {full}, which is not a record defined before")
            return {"record": self.index[full]}
        if isinstance(avro_type, list):
            raise _Unsupported("a union inside an array, map or union")
        kind = avro_type["type"]
        if kind == "record":
            return {"record": self.record(avro_type, namespace)}
        if kind == "array":
            return {"array": self.item(avro_type["items"], namespace)}
        if kind == "map":
            return {"map": self.item(avro_type["values"], namespace)}
        if kind in _LOGICAL_OK:
            return kind
        raise _Unsupported(f"type {kind}")

    def record(self, definition: Mapping[str, Any], namespace: str | None) -> int:
        namespace = definition.get("namespace", namespace)
        full = _full(definition["name"], namespace)
        if full in self.index:
            raise _Unsupported(f"record {full} defined twice")
        index = self.index[full] = len(self.records)
        self.records.append(None)  # reserved: nested records take the following indexes
        fields = []
        has_unknown = False
        for field in definition["fields"]:
            avro_type = field["type"]
            if field.get("default") is not None:
                raise _Unsupported(f"{full}.{field['name']} has a non-null default")
            if not (isinstance(avro_type, list) and len(avro_type) == 2 and "null" in avro_type):
                raise _Unsupported(f"{full}.{field['name']} is not a [null, T] union")
            null = avro_type.index("null")
            branch = avro_type[1 - null]
            if field["name"] == UNKNOWN_FIELDS:
                has_unknown = True
                if branch != "string":
                    raise _Unsupported(f"{full}.{UNKNOWN_FIELDS} is not a string")
                program_type: Any = "string"
            elif field.get("genesys.json"):
                if branch != "string":
                    raise _Unsupported(f"{full}.{field['name']}: genesys.json on a non-string")
                program_type = "json"
            else:
                program_type = self.item(branch, namespace)
            fields.append({"name": field["name"], "type": program_type, "null": null})
        if not has_unknown:
            raise _Unsupported(f"record {full} has no {UNKNOWN_FIELDS}")
        self.records[index] = {"fields": fields}
        return index


def schema_program(definition: Mapping[str, Any], namespace: str | None = None) -> dict | None:
    """The native program of a family schema, or ``None`` when it uses something the program
    does not cover (non-null unions, defaults, enums, floats, ...: the Python path runs)."""
    compiler = _ProgramCompiler()
    try:
        if definition.get("type") != "record":
            raise _Unsupported("the top-level type is not a record")
        compiler.record(definition, namespace)
    except _Unsupported:
        return None
    return {"records": compiler.records}


@dataclass(frozen=True, slots=True)
class _Route:
    """One subscribed topic, resolved once: what every record of it shares."""

    topic: str
    kafka_topic: str
    key: str
    partition: Mapping[str, Any]
    schema: AvroSchema


class NativeRecords:
    """The native record path of one task (see the module docstring)."""

    def __init__(self, extension: Any, builder: RecordBuilder, subscribed: Iterable[str]) -> None:
        self._builder = builder
        programs: list[dict[str, Any]] = []
        program_of: dict[str, int | None] = {}
        routes: list[dict[str, Any]] = []
        self._routes: list[_Route] = []
        for topic in sorted(set(subscribed)):
            match = topics.match_topic(topic)
            family = match.family
            if family.schema is None:
                continue  # the generic envelope: Python path
            route = builder.route(family)
            name = route.schema.name
            if name not in program_of:
                program = schema_program(route.schema.avro.definition)
                program_of[name] = None if program is None else len(programs)
                if program is not None:
                    programs.append(program)
            program_index = program_of[name]
            if program_index is None:
                continue
            routes.append(
                {
                    "topic": topic,
                    "schema": program_index,
                    "key": family.key_source,
                    "timestamps": [list(path) for path in route.timestamp_paths],
                    "detail_event": match.detail_event,
                }
            )
            self._routes.append(
                _Route(
                    topic,
                    route.kafka_topic,
                    match.entity_id if match.entity_id is not None else topic,
                    {"topic": topic},
                    route.schema.avro,
                )
            )
        spec = {"schemas": programs, "routes": routes}
        self._plan = extension.GenesysPlan(
            json.dumps(spec),
            [(r.kafka_topic, r.key, r.partition, r.schema) for r in self._routes],
            SourceRecord,
            _record_fields(),
            EncodedAvro,
            self.value,
        )

    @property
    def topics(self) -> list[str]:
        """The subscribed topics the native path handles."""
        return [route.topic for route in self._routes]

    def value(self, payload: bytes) -> dict[str, Any]:
        """The dict value of a frame the native path built (``EncodedAvro``'s decode)."""
        return self._builder.value(events.decode(payload))

    def build(self, frames: list[Frame]) -> list[SourceRecord | None]:
        """Per frame, its record, or ``None``: the Python path decides."""
        return self._plan.records(frames)  # type: ignore[no-any-return]


_FILLED = frozenset(
    ("topic", "value", "key", "source_partition", "source_offset", "timestamp_ms", "headers")
    + ("value_schema",)
)


def _record_fields() -> list[tuple[str, Any]]:
    """``SourceRecord``'s fields for the native side, which sets each slot itself (as the
    dataclass's ``__init__`` would): those it fills, and the others with their defaults."""
    fields: list[tuple[str, Any]] = []
    for field in dataclasses.fields(SourceRecord):
        if field.name in _FILLED:
            fields.append((field.name, None))
        elif field.default is not dataclasses.MISSING:
            fields.append((field.name, field.default))
        else:
            raise TypeError(
                f"SourceRecord.{field.name} has no default: the native path cannot make it"
            )
    return fields
