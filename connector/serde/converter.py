"""Converters turn a record's key or value into the bytes Kafka stores.

A converter is built once per connector and role (key or value) and called on the task thread
for every record, so it must be cheap: resolve and cache everything it can up front.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from connector.api import AvroSchema, ConversionError
from connector.serde.encoded import EncodedAvro, materialised


class Converter(Protocol):
    """Bytes for Kafka. Raises ConversionError for bad input, RetriableError for outages."""

    def convert(self, topic: str, value: Any, schema: AvroSchema | None) -> bytes | None: ...


class StringConverter:
    """UTF-8 text; like Connect's StringConverter, non-strings are rendered as text."""

    def convert(self, topic: str, value: Any, schema: AvroSchema | None) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, dict | list | EncodedAvro):
            return orjson.dumps(value, default=materialised)
        return str(value).encode("utf-8")


class JsonConverter:
    """Schemaless JSON (Connect's JsonConverter with ``schemas.enable=false``)."""

    def convert(self, topic: str, value: Any, schema: AvroSchema | None) -> bytes | None:
        if value is None:
            return None
        try:
            return orjson.dumps(value, default=materialised, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            raise ConversionError(f"value is not JSON-serialisable: {exc}") from exc


class BytesConverter:
    """Passes bytes through (Connect's ByteArrayConverter)."""

    def convert(self, topic: str, value: Any, schema: AvroSchema | None) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        shown = "dict" if type(value) is EncodedAvro else type(value).__name__
        raise ConversionError(f"bytes converter needs bytes, got {shown}")
