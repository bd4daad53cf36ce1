"""Avro in the Confluent wire format (magic 0, 4-byte big-endian schema id, Avro body).

The registry is asked once per (topic, schema): the id and the parsed schema are cached and
every later record is encoded by fastavro into a reused buffer, with no registry round trip.
Registry failures are classified at this boundary: unreachable or 5xx -> RetriableError (the
runtime backs off and retries, nothing is lost); 4xx (incompatible, invalid) -> ConversionError.

Speed: fastavro's ``schemaless_writer`` costs about 1 µs per field slot on our schemas (it looks
every field up through generic code and validates each union branch, recursively), 170-320 µs
for one Genesys conversation snapshot. So each parsed schema is also compiled, once, into Python
source with one function per named record (:func:`compile_writer`): straight-line code per field
that appends to a ``bytearray``, 10-20x faster, with byte-identical output (the unit tests compare
it with fastavro). Schemas using something it does not compile (unions of two non-null types)
keep using fastavro.

A value the native record path already encoded (:class:`~connector.serde.encoded.EncodedAvro`)
is framed as is when it was encoded for the schema the registry gave this subject; otherwise
(another schema, ``use.latest.version`` with a different latest) it is decoded and encoded here.
"""

from __future__ import annotations

import io
import json
import reprlib
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema, schemaless_writer
from fastavro.write import LOGICAL_WRITERS

from connector.api import AvroSchema, ConversionError, RetriableError
from connector.serde.encoded import EncodedAvro
from connector.serde.registry import SubjectNameStrategy, topic_name_strategy

_MAGIC = 0

Writer = Callable[[Any, bytearray], None]
"""Appends the Avro binary encoding of a value to a buffer; raises on a value that does not fit."""


def record_full_name(definition: Mapping[str, Any]) -> str:
    name = str(definition.get("name", ""))
    namespace = definition.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


class AvroConverter:
    """Encodes dict values with their :class:`AvroSchema` through a schema registry.

    Used from one task thread; the cache is guarded so that converters may be shared.
    """

    def __init__(
        self,
        client: SchemaRegistryClient,
        *,
        is_key: bool = False,
        subject_name_strategy: SubjectNameStrategy = topic_name_strategy,
        auto_register_schemas: bool = True,
        use_latest_version: bool = False,
        normalize_schemas: bool = False,
    ) -> None:
        self._client = client
        self._is_key = is_key
        self._strategy = subject_name_strategy
        self._auto_register = auto_register_schemas
        self._use_latest = use_latest_version
        self._normalize = normalize_schemas
        # (topic, schema name) -> (framing, writer, whether the writer schema is the record's own)
        self._cache: dict[tuple[str, str], tuple[bytes, Writer, bool]] = {}
        self._lock = threading.Lock()

    def convert(self, topic: str, value: Any, schema: AvroSchema | None) -> bytes | None:
        if value is None:
            return None
        if schema is None:
            raise ConversionError("the Avro converter needs a value schema; the record has none")
        entry = self._cache.get((topic, schema.name))
        if entry is None:
            entry = self.resolve(topic, schema)
        prefix, write, own_schema = entry
        if type(value) is EncodedAvro:
            if own_schema and (value.schema is schema or value.schema.name == schema.name):
                return prefix + value.body
            value = value.materialise()
        out = bytearray(prefix)
        try:
            write(value, out)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            # ValueError includes UnicodeEncodeError: a string with a lone surrogate
            raise ConversionError(f"value does not match Avro schema {schema.name}: {exc}") from exc
        except RecursionError as exc:  # a recursive schema and a value nested deeper than Python
            raise ConversionError(
                f"value does not match Avro schema {schema.name}: nested too deep to write"
            ) from exc
        return bytes(out)

    def framing(self, topic: str, schema: AvroSchema) -> bytes:
        """The Confluent framing (magic byte, schema id) under which a body the native path
        encoded for ``schema`` is written as is on ``topic``, or ``b""`` when it must be
        re-encoded (the registry's schema is another). Raises as :meth:`convert` does."""
        entry = self._cache.get((topic, schema.name))
        if entry is None:
            entry = self.resolve(topic, schema)
        return entry[0] if entry[2] else b""

    def resolve(self, topic: str, schema: AvroSchema) -> tuple[bytes, Writer, bool]:
        """Look up or register ``schema`` for ``topic``; cache its id and compiled writer, and
        whether the registry's schema is ``schema`` itself (then a native body is framed as is)."""
        with self._lock:
            cached = self._cache.get((topic, schema.name))
            if cached is not None:
                return cached
            subject = self._strategy(topic, record_full_name(schema.definition), self._is_key)
            schema_id, definition = self._schema_id(subject, schema)
            try:
                parsed = parse_schema(dict(definition), named_schemas={})
            except Exception as exc:
                raise ConversionError(f"invalid Avro schema {schema.name}: {exc}") from exc
            own = definition is schema.definition or definition == schema.definition
            entry = (struct.pack(">bI", _MAGIC, schema_id), compile_writer(parsed), own)
            self._cache[(topic, schema.name)] = entry
            return entry

    def _schema_id(self, subject: str, schema: AvroSchema) -> tuple[int, Mapping[str, Any]]:
        registry_schema = Schema(json.dumps(schema.definition), "AVRO")
        try:
            if self._use_latest:
                latest = self._client.get_latest_version(subject)
                return int(latest.schema_id), json.loads(latest.schema.schema_str)
            if self._auto_register:
                schema_id = self._client.register_schema(
                    subject, registry_schema, normalize_schemas=self._normalize
                )
                return int(schema_id), schema.definition
            registered = self._client.lookup_schema(
                subject, registry_schema, normalize_schemas=self._normalize
            )
            return int(registered.schema_id), schema.definition
        except SchemaRegistryError as exc:
            status = exc.http_status_code
            if status is None or status < 0 or status >= 500 or status == 429:
                raise RetriableError(
                    f"schema registry unavailable for subject {subject}: {exc}"
                ) from exc
            raise ConversionError(f"schema registry refused subject {subject}: {exc}") from exc
        except (OSError, ConnectionError) as exc:
            raise RetriableError(f"schema registry unreachable for subject {subject}") from exc
        except Exception as exc:
            # requests' ConnectionError/Timeout derive from OSError; anything else is unexpected
            # transport trouble that a retry may fix.
            if type(exc).__module__.startswith(("requests", "urllib3", "httpx")):
                raise RetriableError(
                    f"schema registry unreachable for subject {subject}: {type(exc).__name__}"
                ) from exc
            raise


# -- compiled writers ----------------------------------------------------------------------------

_PRIMITIVE_TYPES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
_SMALL_LONGS = {n: bytes([(n << 1) ^ (n >> 63)]) for n in range(-64, 64)}
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def _long_bytes(n: int) -> bytes:
    """Zigzag varint of ``n`` (Avro int and long)."""
    small = _SMALL_LONGS.get(n)
    if small is not None:
        return small
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_LENGTHS = [_long_bytes(n) for n in range(16384)]


_PREFIXED = 4096
_STRING_PREFIXES = [[_long_bytes(i) + _LENGTHS[n] for n in range(_PREFIXED)] for i in (0, 1)]
"""Union branch index (0 or 1) followed by a string length, for ``[null, string]`` fields."""


def _length(n: int) -> bytes:
    return _LENGTHS[n] if n < 16384 else _long_bytes(n)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def _shown(value: Any) -> str:
    """A bounded repr for error messages: a wrong value may be a 1 MB text or nested 1,000
    deep, and the message becomes a dead letter's header."""
    text = _REPR.repr(value)
    return text if len(text) <= 200 else f"{text[:200]}..."


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def _fastavro_writer(parsed: Any) -> Writer:
    def write(value: Any, out: bytearray) -> None:
        buffer = io.BytesIO()
        schemaless_writer(buffer, parsed, value)
        out += buffer.getvalue()

    return write


_NULL_RUN = 8
"""Nullable fields tested together for the all-null shortcut."""


def _null_byte(avro_type: Any) -> bytes | None:
    """The encoding of null for a ``[null, T]`` / ``[T, null]`` union, else ``None``."""
    if isinstance(avro_type, list) and len(avro_type) == 2 and "null" in avro_type:
        return _long_bytes(avro_type.index("null"))
    return None


class _Unsupported(Exception):
    """The schema uses something :func:`compile_writer` does not compile (fastavro is used)."""


class _WriterCompiler:
    """Generates one Python function per named record of a parsed (fastavro) schema."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.functions: dict[str, str] = {}  # full name -> function name
        self.sources: list[str] = []
        self.constants: dict[str, Any] = {}
        self._counter = 0

    def _name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def constant(self, value: Any) -> str:
        name = self._name("_c")
        self.constants[name] = value
        return name

    def record_function(self, schema: Mapping[str, Any]) -> str:
        """The function writing one record. Two tricks keep the common case cheap: a plain dict
        whose keys are exactly the fields in schema order (what a plugin's template-built value
        looks like) is unpacked with ``d.values()`` instead of a ``get`` per field, and runs of
        nullable fields that are all null are written with one append."""
        full = schema["name"]
        existing = self.functions.get(full)
        if existing is not None:
            return existing
        function = self.functions[full] = self._name("_w")
        fields = schema["fields"]
        names = [self._name("v") for _ in fields]
        lines = [f"def {function}(d, out):"]
        if fields:
            keys = self.constant(tuple(field["name"] for field in fields))
            unpack = ", ".join(names) + ","
            size = len(fields)
            lines.append(f"    if type(d) is dict and len(d) == {size} and tuple(d) == {keys}:")
            lines.append(f"        {unpack} = d.values()")
            lines.append("    else:")
            lines.append("        g = d.get")
            for var, field in zip(names, fields, strict=True):
                name = field["name"]
                if "default" in field and field["default"] is not None:
                    lines.append(f"        {var} = g({name!r}, {self.constant(field['default'])})")
                else:
                    lines.append(f"        {var} = g({name!r})")
        index = 0
        while index < len(fields):
            run = 0
            while (
                index + run < len(fields)
                and run < _NULL_RUN
                and _null_byte(fields[index + run]["type"]) is not None
            ):
                run += 1
            if run >= 2:
                group = range(index, index + run)
                nulls = b"".join(_null_byte(fields[i]["type"]) or b"" for i in group)
                test = " and ".join(f"{names[i]} is None" for i in group)
                lines.append(f"    if {test}:")
                lines.append(f"        out += {nulls!r}")
                lines.append("    else:")
                for i in group:
                    self.emit(fields[i]["type"], names[i], lines, 2, fields[i]["name"])
                index += run
            else:
                self.emit(fields[index]["type"], names[index], lines, 1, fields[index]["name"])
                index += 1
        if len(lines) == 1:
            lines.append("    pass")
        self.sources.append("\n".join(lines))
        return function

    def emit(self, avro_type: Any, var: str, lines: list[str], depth: int, where: str) -> None:
        """Append code writing ``var`` (of ``avro_type``) to ``out`` at indent ``depth``."""
        pad = "    " * depth
        fail = f"raise TypeError(f'{{_shown({var})}} is not a valid value for {where}')"
        if isinstance(avro_type, list):
            self._union(avro_type, var, lines, depth, where)
            return
        if isinstance(avro_type, str) and avro_type not in _PRIMITIVE_TYPES:
            named = self.named.get(avro_type)
            if named is None:
                raise _Unsupported(f"unknown type {avro_type}")
            avro_type = named
        if isinstance(avro_type, dict):
            kind = avro_type["type"]
            logical = avro_type.get("logicalType")
            if logical and kind in _PRIMITIVE_TYPES + ("fixed",):
                prepare = LOGICAL_WRITERS.get(f"{kind}-{logical}")
                if prepare is not None:
                    plain = {"int": "int", "long": "int", "string": "str"}.get(kind, "bytes")
                    fn, sch = self.constant(prepare), self.constant(avro_type)
                    lines.append(f"{pad}if type({var}) is not {plain}:")
                    lines.append(f"{pad}    {var} = {fn}({var}, {sch})")
            if kind == "record":
                lines.append(f"{pad}{self.record_function(avro_type)}({var}, out)")
                return
            if kind == "enum":
                index = self.constant(
                    {symbol: _long_bytes(i) for i, symbol in enumerate(avro_type["symbols"])}
                )
                lines.append(f"{pad}out += {index}[{var}]")
                return
            if kind == "fixed":
                size = int(avro_type["size"])
                lines.append(f"{pad}if type({var}) is not bytes or len({var}) != {size}: {fail}")
                lines.append(f"{pad}out += {var}")
                return
            if kind == "array":
                item = self._name("i")
                lines.append(f"{pad}if type({var}) is not list and not _is_sequence({var}):")
                lines.append(f"{pad}    {fail}")
                lines.append(f"{pad}if {var}:")
                lines.append(f"{pad}    out += _length(len({var}))")
                lines.append(f"{pad}    for {item} in {var}:")
                self.emit(avro_type["items"], item, lines, depth + 2, where)
                lines.append(f"{pad}out += b'\\x00'")
                return
            if kind == "map":
                key, item, raw = self._name("k"), self._name("m"), self._name("b")
                lines.append(f"{pad}if {var}:")
                lines.append(f"{pad}    out += _length(len({var}))")
                lines.append(f"{pad}    for {key}, {item} in {var}.items():")
                lines.append(f"{pad}        {raw} = {key}.encode()")
                lines.append(f"{pad}        out += _length(len({raw}))")
                lines.append(f"{pad}        out += {raw}")
                self.emit(avro_type["values"], item, lines, depth + 2, where)
                lines.append(f"{pad}out += b'\\x00'")
                return
            avro_type = kind
            if avro_type not in _PRIMITIVE_TYPES:
                raise _Unsupported(f"unsupported type {avro_type}")
        self._primitive(avro_type, var, lines, pad, fail)

    def _primitive(self, kind: str, var: str, lines: list[str], pad: str, fail: str) -> None:
        if kind == "null":
            lines.append(f"{pad}if {var} is not None: {fail}")
        elif kind == "boolean":
            lines.append(f"{pad}if {var} is True: out += b'\\x01'")
            lines.append(f"{pad}elif {var} is False: out += b'\\x00'")
            lines.append(f"{pad}else: {fail}")
        elif kind in ("int", "long"):
            low, high = ("_INT_MIN", "_INT_MAX") if kind == "int" else ("_LONG_MIN", "_LONG_MAX")
            lines.append(
                f"{pad}if type({var}) is not int and not isinstance({var}, int) "
                f"or not {low} <= {var} <= {high}: {fail}"
            )
            lines.append(f"{pad}out += _long_bytes({var})")
        elif kind in ("float", "double"):
            packer = "_pack_float" if kind == "float" else "_pack_double"
            lines.append(
                f"{pad}if type({var}) is not float and not isinstance({var}, (int, float)): {fail}"
            )
            lines.append(f"{pad}out += {packer}({var})")
        elif kind == "string":
            raw = self._name("b")
            lines.append(f"{pad}if type({var}) is not str and not isinstance({var}, str): {fail}")
            size = self._name("n")
            lines.append(f"{pad}{raw} = {var}.encode()")
            lines.append(f"{pad}{size} = len({raw})")
            lines.append(f"{pad}out += _LENGTHS[{size}] if {size} < 16384 else _long_bytes({size})")
            lines.append(f"{pad}out += {raw}")
        else:  # bytes
            lines.append(f"{pad}if not isinstance({var}, (bytes, bytearray)):")
            lines.append(f"{pad}    {fail}")
            lines.append(f"{pad}out += _length(len({var}))")
            lines.append(f"{pad}out += {var}")

    def _union(self, branches: list[Any], var: str, lines: list[str], depth: int, where: str):
        pad = "    " * depth
        others = [b for b in branches if b != "null"]
        if len(others) != 1 or len(branches) > 2:
            raise _Unsupported("only unions of null and one other type are compiled")
        if len(branches) == 1:
            self.emit(others[0], var, lines, depth, where)
            return
        null_index = branches.index("null")
        lines.append(f"{pad}if {var} is None:")
        lines.append(f"{pad}    out += {_long_bytes(null_index)!r}")
        lines.append(f"{pad}else:")
        if others[0] == "string":  # the most common field: branch index and length in one append
            raw, size = self._name("b"), self._name("n")
            table = f"_STRING_PREFIXES[{1 - null_index}]"
            fail = f"raise TypeError(f'{{_shown({var})}} is not a valid value for {where}')"
            check = f"type({var}) is not str and not isinstance({var}, str)"
            lines.append(f"{pad}    if {check}: {fail}")
            lines.append(f"{pad}    {raw} = {var}.encode()")
            lines.append(f"{pad}    {size} = len({raw})")
            lines.append(f"{pad}    if {size} < {_PREFIXED}:")
            lines.append(f"{pad}        out += {table}[{size}]")
            lines.append(f"{pad}    else:")
            lines.append(f"{pad}        out += {_long_bytes(1 - null_index)!r}")
            lines.append(f"{pad}        out += _long_bytes({size})")
            lines.append(f"{pad}    out += {raw}")
            return
        lines.append(f"{pad}    out += {_long_bytes(1 - null_index)!r}")
        self.emit(others[0], var, lines, depth + 1, where)


def compile_writer(parsed: Any) -> Writer:
    """A :data:`Writer` for a schema parsed by fastavro (``parse_schema``): generated Python,
    or fastavro itself when the schema uses something not compiled."""
    named = dict(parsed.get("__named_schemas", {})) if isinstance(parsed, dict) else {}
    compiler = _WriterCompiler(named)
    try:
        lines = ["def _top(v, out):"]
        compiler.emit(parsed, "v", lines, 1, "the value")
    except _Unsupported:
        return _fastavro_writer(parsed)
    namespace: dict[str, Any] = {
        "_long_bytes": _long_bytes,
        "_is_sequence": _is_sequence,
        "_shown": _shown,
        "_length": _length,
        "_LENGTHS": _LENGTHS,
        "_STRING_PREFIXES": _STRING_PREFIXES,
        "_pack_float": struct.Struct("<f").pack,
        "_pack_double": struct.Struct("<d").pack,
        "_INT_MIN": _INT_MIN,
        "_INT_MAX": _INT_MAX,
        "_LONG_MIN": _LONG_MIN,
        "_LONG_MAX": _LONG_MAX,
        **compiler.constants,
    }
    source = "\n\n".join([*compiler.sources, "\n".join(lines)])
    exec(compile(source, f"<avro writer {parsed.get('name', '')}>", "exec"), namespace)
    return namespace["_top"]  # type: ignore[no-any-return]
