"""Typed Avro schemas for the Genesys families, and the hot-path fit of an eventBody to them.

The ``.avsc`` files (``com.genesys.notifications.*``) ship as package data in ``avro/`` beside
this module, read through :mod:`importlib.resources` so that an installed wheel finds them, and
are generated from the Genesys SDK models by :mod:`connector.plugins.genesys.schemagen`.
Design choices, each for a reason:

- **Every field is nullable with default null.** Genesys omits fields freely, and a reader with
  a newer schema must be able to read old records.
- **Strings instead of Avro enums.** Genesys adds enum values over time (the SDKs map unknown
  values to ``outdated_sdk_version``, NOTIFICATIONS_API.md §5.3); an Avro enum would turn every
  new value into a conversion failure.
- **Date-times stay ISO-8601 strings** exactly as sent; detail events' ``eventTime`` is the
  epoch-ms ``long`` Genesys sends.
- **Free-form objects** (SDK ``object``/``dict(str, object)``) are JSON text, marked with
  ``"genesys.json": true`` on the field.

**The unknown-field rule: nothing the source sent is dropped.** Every record type (top level and
each nested record, including records inside arrays and maps) has an ``unknown_fields`` field:
a JSON object holding every key of that JSON object which the schema does not know *or* whose
value does not fit the declared type (a string where a number is declared, a list of mixed
types, ...), with the original value. It is ``null`` when everything fitted. A key literally
named ``unknown_fields`` in the source is itself kept inside that JSON. So the original body can
always be rebuilt: take the typed fields that are not null, and merge each level's
``unknown_fields`` back in (:func:`restore` does exactly that, and the tests use it). The one
loss is the distinction between an explicit JSON ``null`` and an absent key.

The fit is compiled once per schema into nested closures (no per-event reflection): a record
fitter is a dict lookup per key plus a type check per value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import orjson

from connector.api import AvroSchema

NAMESPACE = "com.genesys.notifications"
UNKNOWN_FIELDS = "unknown_fields"
SCHEMAS_DIR: Traversable = files("connector.plugins.genesys") / "avro"
"""The ``avro/`` package data folder (found in the installed package, not a source tree)."""

ENVELOPE_SCHEMA = "NotificationEnvelope"
GAP_SCHEMA = "GapRecord"

Fitter = Callable[[Any], Any]
"""Fits one decoded JSON value to its Avro type (the body of a typed record)."""


class _Misfit(Exception):
    """A value does not fit its declared Avro type (control flow; never escapes this module)."""


def dumps(value: Any) -> str:
    """JSON text of a decoded JSON value.

    orjson, falling back to json for what orjson refuses: integers beyond 64 bits, and values
    nested deeper than its 254 levels (a frame may nest up to 1,024).

    Raises:
        ValueError: nested too deep for json as well (Python's recursion limit); the event
            cannot be a record.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except RecursionError:
            raise ValueError("a value is nested too deep to write as JSON text") from None


def _string(value: Any) -> Any:
    if type(value) is str:
        return value
    raise _Misfit


def _long(value: Any) -> Any:
    if type(value) is int and -(2**63) <= value < 2**63:
        return value
    raise _Misfit


def _int(value: Any) -> Any:
    if type(value) is int and -(2**31) <= value < 2**31:
        return value
    raise _Misfit


def _double(value: Any) -> Any:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise _Misfit


def _boolean(value: Any) -> Any:
    if type(value) is bool:
        return value
    raise _Misfit


_PRIMITIVES: dict[str, Fitter] = {
    "string": _string,
    "long": _long,
    "int": _int,
    "double": _double,
    "float": _double,
    "boolean": _boolean,
}


_EXACT_TYPES: dict[Fitter, type] = {_string: str, _boolean: bool}


class _FitterCompiler:
    """Turns one parsed ``.avsc`` definition into a fitter, resolving named references."""

    def __init__(self) -> None:
        self.named: dict[str, Fitter] = {}

    def compile(self, avro_type: Any, namespace: str | None) -> Fitter:
        if isinstance(avro_type, str):
            if avro_type in _PRIMITIVES:
                return _PRIMITIVES[avro_type]
            return self._reference(avro_type, namespace)
        if isinstance(avro_type, list):
            branches = [t for t in avro_type if t != "null"]
            if len(branches) != 1:
                raise ValueError(f"only [null, T] unions are supported, got {avro_type}")
            return self.compile(branches[0], namespace)
        kind = avro_type["type"]
        if kind == "record":
            return self._record(avro_type, namespace)
        if kind == "array":
            item = self.compile(avro_type["items"], namespace)
            return _array(item)
        if kind == "map":
            value = self.compile(avro_type["values"], namespace)
            return _map(value)
        if kind in _PRIMITIVES:  # primitive with a logicalType
            return _PRIMITIVES[kind]
        raise ValueError(f"unsupported Avro type {avro_type}")

    def _reference(self, name: str, namespace: str | None) -> Fitter:
        full = name if "." in name or not namespace else f"{namespace}.{name}"
        named = self.named

        def resolve(value: Any) -> Any:  # late-bound: records may refer to themselves
            return named[full](value)

        return named.get(full, resolve)

    def _record(self, definition: Mapping[str, Any], namespace: str | None) -> Fitter:
        namespace = definition.get("namespace", namespace)
        name = definition["name"]
        full = name if "." in name or not namespace else f"{namespace}.{name}"
        fields: dict[str, Fitter] = {}
        exact: dict[str, type] = {}
        template: dict[str, Any] = {}
        has_unknown = False
        fitter = _record(fields, exact, template)
        self.named[full] = fitter
        for field in definition["fields"]:
            field_name = field["name"]
            template[field_name] = field.get("default")
            if field_name == UNKNOWN_FIELDS:
                has_unknown = True
                continue
            if field.get("genesys.json"):
                fields[field_name] = dumps
            else:
                fields[field_name] = fit = self.compile(field["type"], namespace)
                if fit in _EXACT_TYPES:
                    exact[field_name] = _EXACT_TYPES[fit]
        if not has_unknown:
            raise ValueError(f"record {full} has no {UNKNOWN_FIELDS} field: it would drop data")
        return fitter


def _record(fields: dict[str, Fitter], exact: dict[str, type], template: dict[str, Any]) -> Fitter:
    """``exact`` holds the fields whose fit is "this exact Python type, kept as is" (strings,
    booleans): they are checked inline, without a call per value (most leaves are strings)."""
    get = fields.get
    exact_get = exact.get
    misfit = _Misfit

    def convert(value: Any) -> Any:
        if type(value) is not dict:
            raise misfit
        out = template.copy()
        unknown: dict[str, Any] | None = None
        for key, item in value.items():
            wanted = exact_get(key)
            if wanted is not None:
                if type(item) is wanted:
                    out[key] = item
                elif item is not None:
                    if unknown is None:
                        unknown = {}
                    unknown[key] = item
                continue
            fit = get(key)
            if fit is None:
                if unknown is None:
                    unknown = {}
                unknown[key] = item
            elif item is not None:
                try:
                    out[key] = fit(item)
                except misfit:
                    if unknown is None:
                        unknown = {}
                    unknown[key] = item
        if unknown is not None:
            out[UNKNOWN_FIELDS] = dumps(unknown)
        return out

    return convert


def _array(item: Fitter) -> Fitter:
    def convert(value: Any) -> Any:
        if type(value) is not list:
            raise _Misfit
        return [item(element) for element in value]

    return convert


def _map(fit: Fitter) -> Fitter:
    def convert(value: Any) -> Any:
        if type(value) is not dict:
            raise _Misfit
        return {key: fit(item) for key, item in value.items()}

    return convert


class FamilySchema:
    """One loaded schema: the :class:`AvroSchema` for records plus its compiled fit."""

    __slots__ = ("avro", "name", "to_avro")

    def __init__(self, name: str, definition: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.avro = (
            avro_schema(name)
            if definition is None
            else AvroSchema(f"{NAMESPACE}.{name}", definition)
        )
        definition = self.avro.definition
        top = _FitterCompiler().compile(dict(definition), NAMESPACE)

        def to_avro(body: Any) -> dict[str, Any]:
            try:
                return top(body)  # type: ignore[no-any-return]
            except _Misfit:
                raise TypeError(f"eventBody is not a JSON object (schema {name})") from None

        self.to_avro = to_avro


def load_definition(name: str, directory: Traversable | None = None) -> dict[str, Any]:
    """The parsed ``avro/com.genesys.notifications.<name>.avsc``."""
    path = (directory or SCHEMAS_DIR) / f"{NAMESPACE}.{name}.avsc"
    return orjson.loads(path.read_bytes())  # type: ignore[no-any-return]


@cache
def avro_schema(name: str) -> AvroSchema:
    """The :class:`AvroSchema` of ``avro/com.genesys.notifications.<name>.avsc``, one
    instance per process (the converter caches parsed schemas by instance name)."""
    return AvroSchema(f"{NAMESPACE}.{name}", load_definition(name))


@cache
def family_schema(name: str) -> FamilySchema:
    """The loaded, compiled schema ``name`` (cached for the process: parse once, reuse)."""
    return FamilySchema(name)


def schema_names(directory: Traversable | None = None) -> list[str]:
    """Every schema shipped in ``avro/`` (by short name)."""
    prefix = f"{NAMESPACE}."
    return sorted(
        p.name[len(prefix) : -len(".avsc")]
        for p in (directory or SCHEMAS_DIR).iterdir()
        if p.name.startswith(prefix) and p.name.endswith(".avsc")
    )


def envelope_value(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The generic envelope record for a topic outside the typed families."""
    metadata = envelope.get("metadata")
    correlation = metadata.get("CorrelationId") if isinstance(metadata, dict) else None
    unknown = {
        k: v
        for k, v in envelope.items()
        if k not in ("topicName", "version", "metadata", "eventBody")
    }
    version = envelope.get("version")
    return {
        "topicName": envelope["topicName"],
        "version": version if isinstance(version, str) else None,
        "correlationId": correlation if isinstance(correlation, str) else None,
        "metadata": dumps(metadata) if metadata is not None else None,
        "eventBody": dumps(envelope["eventBody"]) if "eventBody" in envelope else None,
        UNKNOWN_FIELDS: dumps(unknown) if unknown or not isinstance(version, str | None) else None,
    }


def restore(value: Any, definition: Mapping[str, Any]) -> Any:
    """Rebuild the original JSON from a fitted value (for tests and for consumers' reference).

    Drops null typed fields, decodes ``genesys.json`` fields and merges each level's
    ``unknown_fields`` back in. Connector-added fields (``detail_event_type``) are dropped.
    """
    named: dict[str, Mapping[str, Any]] = {}

    def collect(avro_type: Any, namespace: str | None) -> None:
        if isinstance(avro_type, list):
            for branch in avro_type:
                collect(branch, namespace)
        elif isinstance(avro_type, dict):
            kind = avro_type["type"]
            if kind == "record":
                namespace = avro_type.get("namespace", namespace)
                name = avro_type["name"]
                named[name if "." in name or not namespace else f"{namespace}.{name}"] = avro_type
                for field in avro_type["fields"]:
                    collect(field["type"], namespace)
            elif kind == "array":
                collect(avro_type["items"], namespace)
            elif kind == "map":
                collect(avro_type["values"], namespace)

    collect(dict(definition), None)

    def walk(item: Any, avro_type: Any, namespace: str | None) -> Any:
        if item is None:
            return None
        if isinstance(avro_type, list):
            avro_type = next(t for t in avro_type if t != "null")
        if isinstance(avro_type, str):
            if avro_type in _PRIMITIVES:
                return item
            full = avro_type if "." in avro_type or not namespace else f"{namespace}.{avro_type}"
            avro_type = named[full]
        kind = avro_type["type"]
        if kind == "array":
            return [walk(x, avro_type["items"], namespace) for x in item]
        if kind == "map":
            return {k: walk(v, avro_type["values"], namespace) for k, v in item.items()}
        if kind != "record":
            return item
        namespace = avro_type.get("namespace", namespace)
        out: dict[str, Any] = {}
        for field in avro_type["fields"]:
            fname = field["name"]
            if fname in (UNKNOWN_FIELDS, "detail_event_type") or item.get(fname) is None:
                continue
            if field.get("genesys.json"):
                out[fname] = json.loads(item[fname])
            else:
                out[fname] = walk(item[fname], field["type"], namespace)
        if item.get(UNKNOWN_FIELDS):
            out.update(json.loads(item[UNKNOWN_FIELDS]))
        return out

    return walk(value, dict(definition), None)
