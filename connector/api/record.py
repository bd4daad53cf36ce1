"""What a source task hands to the runtime: records, and input it could not turn into one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SourcePartition = Mapping[str, Any]
"""Where a record comes from, e.g. ``{"topic": "v2.users.x.presence"}``: string keys, primitive
values. It is part of the offsets-topic key forever, so its keys must never be renamed."""

SourceOffset = Mapping[str, Any]
"""How far the task got within a source partition: string keys, primitive values."""

Header = tuple[str, bytes | str | None]


@dataclass(frozen=True, slots=True)
class AvroSchema:
    """An Avro schema a plugin attaches to its records.

    ``definition`` is the parsed ``.avsc`` JSON. The converter parses it once and caches it by
    ``name``, so a plugin should build each schema once and reuse the instance.
    """

    name: str
    definition: Mapping[str, Any]

    def __hash__(self) -> int:
        return hash(self.name)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record on its way to Kafka.

    Args:
        topic: the Kafka topic.
        value: the value (a dict for Avro/JSON, ``str``/``bytes`` for the string converter);
            ``None`` makes a tombstone.
        key: the key, converted by the key converter (``str`` by default).
        source_partition: see :data:`SourcePartition`.
        source_offset: see :data:`SourceOffset`; committed once this record and every record
            before it in the same source partition are acked by Kafka.
        timestamp_ms: the record timestamp (epoch ms); ``None`` lets Kafka stamp it.
        headers: extra Kafka headers.
        value_schema: the Avro schema of ``value``; needed by the Avro converter.
        key_schema: the Avro schema of ``key`` when the key converter is Avro.

    >>> r = SourceRecord("t", {"a": 1}, key="k", source_partition={"p": 1}, source_offset={"o": 2})
    >>> r.topic, r.key
    ('t', 'k')
    """

    topic: str
    value: Any
    key: Any = None
    source_partition: SourcePartition | None = None
    source_offset: SourceOffset | None = None
    timestamp_ms: int | None = None
    headers: Sequence[Header] | None = None
    value_schema: AvroSchema | None = None
    key_schema: AvroSchema | None = None


@dataclass(frozen=True, slots=True)
class MalformedInput:
    """Input a task could not turn into a record (a frame that is not JSON, an event that does
    not fit), returned from :meth:`SourceTask.poll` *in its place*, in stream order.

    The runtime applies ``errors.tolerance`` to it exactly as to a record that failed to
    convert: ``none`` fails the task; ``all`` writes ``payload`` to the dead-letter topic with
    ``__connect.errors.*`` headers (or logs it when there is none). Its ``source_offset`` is
    committed only once every record before it in ``source_partition`` is acked, so returning it
    in order is what keeps committed offsets moving forward.

    Args:
        payload: the raw input as received.
        reason: why it is not a record; it becomes the ``exception.message`` header.
        source_partition: where it came from (``None``: it moves no offset).
        source_offset: its position in ``source_partition``.
        exception: the error that rejected it, when there was one.

    >>> MalformedInput(b"{", "not JSON").reason
    'not JSON'
    """

    payload: bytes | str | None
    reason: str
    source_partition: SourcePartition | None = None
    source_offset: SourceOffset | None = None
    exception: BaseException | None = None


Polled = SourceRecord | MalformedInput
"""One item of what :meth:`SourceTask.poll` returns."""
