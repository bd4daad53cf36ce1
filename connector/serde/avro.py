"""Avro in the Confluent wire format (magic 0, 4-byte big-endian schema id, Avro body).

The registry is asked once per (topic, schema): the id and the parsed schema are cached and
every later record is encoded by fastavro into a reused buffer, with no registry round trip.
Registry failures are classified at this boundary: unreachable or 5xx -> RetriableError (the
runtime backs off and retries, nothing is lost); 4xx (incompatible, invalid) -> ConversionError.
"""

from __future__ import annotations

import io
import json
import struct
import threading
from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema, schemaless_writer

from connector.api import AvroSchema, ConversionError, RetriableError
from connector.serde.registry import SubjectNameStrategy, topic_name_strategy

_MAGIC = 0


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
        self._cache: dict[tuple[str, str], tuple[bytes, Any]] = {}
        self._lock = threading.Lock()
        self._buffer = io.BytesIO()

    def convert(self, topic: str, value: Any, schema: AvroSchema | None) -> bytes | None:
        if value is None:
            return None
        if schema is None:
            raise ConversionError("the Avro converter needs a value schema; the record has none")
        entry = self._cache.get((topic, schema.name))
        if entry is None:
            entry = self.resolve(topic, schema)
        prefix, parsed = entry
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        buffer.write(prefix)
        try:
            schemaless_writer(buffer, parsed, value)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise ConversionError(f"value does not match Avro schema {schema.name}: {exc}") from exc
        return buffer.getvalue()

    def resolve(self, topic: str, schema: AvroSchema) -> tuple[bytes, Any]:
        """Look up or register ``schema`` for ``topic``; cache its id and parsed form."""
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
            entry = (struct.pack(">bI", _MAGIC, schema_id), parsed)
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
