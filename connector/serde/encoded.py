"""A record value that is already Avro: what the native record path puts in a SourceRecord.

The native path fits and encodes an event in one pass (``connector._native``), so its record's
value is the Avro body (no framing) for ``schema``. The Avro converter writes that body as is,
behind the registry's framing for the record's topic; every other reader of the value (a
transform that looks into it, the JSON converter, a dead letter) sees the dict the Python path
would have built, made on first access from the event's source by ``decode``. So transforms
that only touch the topic, key or headers keep the fast path, and everything else still works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from connector.api import AvroSchema


class EncodedAvro(Mapping[str, Any]):
    """``body``: the Avro binary encoding of the value under ``schema``; ``decode(source)``:
    the value as a dict (called once, on first access).

    The native extension makes these without calling ``__init__``: it sets the five slots
    directly, as ``object.__setattr__`` does (``tests/unit/serde`` checks it builds valid ones).
    """

    __slots__ = ("_decode", "_source", "_value", "body", "schema")

    def __init__(
        self, body: bytes, schema: AvroSchema, source: Any, decode: Callable[[Any], Any]
    ) -> None:
        self.body = body
        self.schema = schema
        self._source = source
        self._decode = decode
        self._value: Any = None

    def materialise(self) -> Any:
        """The value as the Python path builds it (a dict), made once."""
        value = self._value
        if value is None:
            value = self._value = self._decode(self._source)
        return value

    def __getitem__(self, key: str) -> Any:
        return self.materialise()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.materialise())

    def __len__(self) -> int:
        return len(self.materialise())

    def __repr__(self) -> str:
        return repr(self.materialise())


def materialised(value: Any) -> Any:
    """``value``, or the dict of an :class:`EncodedAvro` (for orjson's ``default``, which is
    called for a type it cannot write)."""
    if type(value) is EncodedAvro:
        return value.materialise()
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
