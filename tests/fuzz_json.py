"""Random hostile JSON frames for the record-path fuzz tests (stdlib ``random``, seeded).

Imported by name from the plugin tests (``tests/`` is on ``sys.path`` through its conftest).

A :class:`FrameFuzzer` makes frames of every shape (objects, arrays, scalars, nesting up to and
beyond 1,100 levels), size (empty to 1.2 MB), and encoding (lone surrogates as JSON escapes,
invalid UTF-8, truncated text, integers beyond 64 bits, NaN), and mutates real envelopes
(fixture events) at every level. JSON is written by :func:`write` rather than ``json.dumps``
so that it can hold what ``json.dumps`` cannot write: :class:`Raw` text inserted verbatim.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

DEPTHS = (2, 10, 253, 254, 255, 256, 500, 999, 1000, 1023, 1024, 1025, 1100, 5000)
"""Nesting depths tried: around orjson's write limit (254), its read limit (1,024) and
Python's recursion limit (1,000), and far beyond."""

LONE_SURROGATES = ("\\ud800", "\\udfff", "\\udbff", "\\ud800\\ud800", "\\udc00\\ud800", "\\uDABC")
"""Lone surrogates as JSON escapes (valid JSON syntax; not encodable as UTF-8)."""

HUGE = 1_200_000
"""Bytes of a huge frame: over the 1 MB default ``message.max.bytes``."""

KEYS = (
    "id",
    "name",
    "user",
    "participants",
    "calls",
    "attributes",
    "eventTime",
    "modifiedDate",
    "presenceDefinition",
    "routingStatus",
    "state",
    "purpose",
    "queueId",
    "unknown_fields",
    "topicName",
    "eventBody",
    "metadata",
    "CorrelationId",
    "version",
    "result",
    "message",
    "systemTopicType",
    "type",
    "sym",
    "at",
    "",
    " ",
    "ключ",
    "😀",
    "a.b",
)
"""Object keys: schema field names (so mutations hit typed fields), envelope keys, oddities."""


@dataclass(frozen=True)
class Raw:
    """JSON text written verbatim: a lone surrogate escape, a 5,000-digit number, NaN, deep
    nesting... (hashable, so it can be an object key too)."""

    text: str


def write(value: Any) -> str:
    """JSON text of ``value``, which may hold :class:`Raw` parts (as values or keys)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{write_key(k)}:{write(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(write(v) for v in value) + "]"
    return orjson.dumps(value).decode()


def write_key(key: Any) -> str:
    return key.text if isinstance(key, Raw) else orjson.dumps(str(key)).decode()


def nested(depth: int, kind: str = "[", inner: str = "1") -> Raw:
    """``depth`` levels of arrays (``[``) or single-key objects (``{``) around ``inner``."""
    if kind == "[":
        return Raw("[" * depth + inner + "]" * depth)
    return Raw('{"a":' * depth + inner + "}" * depth)


class FrameFuzzer:
    """Frames for one seeded run; every method draws from ``self.rng`` only."""

    def __init__(self, seed: int, seeds: Sequence[dict[str, Any]] = ()) -> None:
        self.rng = random.Random(seed)
        self.seeds = list(seeds)
        self.events = [s for s in self.seeds if _is_event(s)] or self.seeds

    # -- values ------------------------------------------------------------------------------
    def text(self) -> Any:
        """A string of some kind, or a :class:`Raw` string with a lone surrogate."""
        rng = self.rng
        pick = rng.randrange(40)
        if pick == 0:
            return ""
        if pick == 1:
            return "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 40)))
        if pick == 2:
            return rng.choice(("é", "中文", "😀", "\u0000", "\u2028", "\\", '"', "\ufeff", "\x7f"))
        if pick == 3:
            return Raw('"' + rng.choice(LONE_SURROGATES) + rng.choice(("", "x", "\\n")) + '"')
        if pick == 4:
            return "x" * rng.choice((300, 5_000, 70_000))
        if pick == 5:
            return rng.choice(
                (
                    "0001-01-01T00:00:00Z",
                    "0001-01-01T00:00:00",
                    "9999-12-31T23:59:59.999Z",
                    "2024-02-30T00:00:00Z",
                    "2024-05-01T10:00:00.000Z",
                    "1969-12-31T23:59:59Z",
                    "+275760-09-13T00:00:00Z",
                )
            )
        if pick == 6:
            return rng.choice(("²", "١٢٣", "99999999999999999999", "1714557600000", "-5", "NaN"))
        if pick == 7:
            return "v2.users." + rng.choice(("", "x", "😀", "a" * 300)) + ".presence"
        if pick < 12:
            return "6a8e057a-d340-4d9f-aabb-66ed9ffc2d8b"
        return "".join(rng.choice(string.ascii_letters) for _ in range(rng.randrange(1, 12)))

    def number(self) -> Any:
        rng = self.rng
        return rng.choice(
            (
                0,
                -1,
                1,
                2**31,
                2**63 - 1,
                2**63,
                2**64 - 1,
                -(2**63),
                1_714_557_600_000,
                253_402_300_800_000,
                0.5,
                -0.0,
                1e308,
                5e-324,
                Raw(str(2**64)),
                Raw(str(2**70)),
                Raw("-" + str(2**80)),
                Raw("9" * 5_000),
                Raw("NaN"),
                Raw("Infinity"),
                Raw("-Infinity"),
                Raw("1e400"),
                Raw("-0"),
                Raw("1E+2"),
            )
        )

    def scalar(self) -> Any:
        pick = self.rng.randrange(6)
        if pick == 0:
            return None
        if pick == 1:
            return self.rng.choice((True, False))
        if pick in (2, 3):
            return self.number()
        return self.text()

    def value(self, depth: int = 0) -> Any:
        """A random JSON value: scalars, arrays, objects, now and then deeply nested text."""
        rng = self.rng
        pick = rng.randrange(12)
        if pick == 0 and depth < 2:
            kind = rng.choice(("[", "{"))
            return nested(rng.choice(DEPTHS), kind, write(self.scalar()))
        if pick in (1, 2) and depth < 5:
            return [self.value(depth + 1) for _ in range(rng.randrange(0, 5))]
        if pick in (3, 4) and depth < 5:
            return {self.key(): self.value(depth + 1) for _ in range(rng.randrange(0, 6))}
        return self.scalar()

    def key(self) -> Any:
        if self.rng.randrange(40) == 0:
            return Raw('"k' + self.rng.choice(LONE_SURROGATES) + '"')
        return self.rng.choice(KEYS)

    # -- mutations of real envelopes -----------------------------------------------------------
    def mutate(self, envelope: Any) -> Any:
        """A copy of ``envelope`` with one to three random changes at random levels."""
        tree = orjson.loads(orjson.dumps(envelope))
        for _ in range(self.rng.randrange(1, 4)):
            tree = self._mutate_once(tree)
        return tree

    def _mutate_once(self, tree: Any) -> Any:
        rng = self.rng
        if rng.randrange(6) == 0 and isinstance(tree, dict):  # the envelope's own fields
            field = rng.choice(("topicName", "eventBody", "metadata", "version", "result"))
            if field == "metadata" and rng.randrange(2):
                tree["metadata"] = {"CorrelationId": self.value(), self.key(): self.value()}
            elif field == "topicName" and rng.randrange(2):
                topic = str(tree.get("topicName"))
                tree["topicName"] = rng.choice(
                    (
                        Raw(orjson.dumps(topic).decode()[:-1] + rng.choice(LONE_SURROGATES) + '"'),
                        topic.upper(),
                        topic + "x",
                        "x" * HUGE,
                        "v2.system.socket_closing",
                        "channel.metadata",
                    )
                )
            else:
                tree[field] = self.value()
            return tree
        parent, key = self._random_slot(tree)
        if parent is None:
            return self.value()
        action = rng.randrange(4)
        if action == 0 and isinstance(parent, dict):
            parent.pop(key, None)
        elif action == 1 and isinstance(parent, dict):
            parent[self.key()] = self.value()
        else:
            parent[key] = self.value()
        return tree

    def _random_slot(self, tree: Any) -> tuple[Any, Any]:
        """A random (container, key) inside ``tree``, at a random depth."""
        parent, key = None, None
        current = tree
        if (
            isinstance(tree, dict)
            and isinstance(tree.get("eventBody"), dict)
            and self.rng.randrange(4)
        ):
            current = tree["eventBody"]  # mostly inside the body, where the typed fields are
        while isinstance(current, dict | list) and current:
            keys = list(current) if isinstance(current, dict) else list(range(len(current)))
            parent, key = current, self.rng.choice(keys)
            current = current[key]
            if self.rng.randrange(3) == 0:
                break
        return parent, key

    # -- frames ------------------------------------------------------------------------------
    def encode(self, tree: Any) -> bytes | str:
        """The frame of ``tree``: usually its UTF-8 bytes; sometimes damaged or a ``str``."""
        data = write(tree).encode("utf-8")
        rng = self.rng
        pick = rng.randrange(24)
        if pick == 0 and data:
            return data[: rng.randrange(len(data))]  # truncated
        if pick == 1:
            at = rng.randrange(len(data) + 1)
            junk = rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\xf4\x90\x80\x80"))
            return data[:at] + junk + data[at:]  # invalid UTF-8 (or a NUL) somewhere
        if pick == 2:
            return b"\xef\xbb\xbf" + data  # a byte order mark
        if pick == 3:
            text = data.decode("utf-8")
            return text.replace("\\ud800", "\ud800")  # a str frame with a raw lone surrogate
        if pick == 4:
            return b" \n\t" + data + b" \r\n"
        return data

    def frames(self, count: int) -> Iterator[tuple[str, bytes | str]]:
        """``count`` random frames as ``(how it was made, frame)``, after the fixed cases."""
        yield from fixed_frames(self.seeds)
        rng = self.rng
        for index in range(count):
            pick = rng.randrange(10)
            if self.seeds and pick < 6:
                seed = rng.choice(self.events if rng.randrange(5) else self.seeds)
                yield f"mutated #{index}", self.encode(self.mutate(seed))
            elif pick < 8:
                yield (
                    f"random object #{index}",
                    self.encode({self.key(): self.value() for _ in range(rng.randrange(0, 6))}),
                )
            else:
                yield f"random value #{index}", self.encode(self.value())


def _is_event(frame: dict[str, Any]) -> bool:
    topic = frame.get("topicName")
    return (
        isinstance(frame.get("eventBody"), dict)
        and isinstance(topic, str)
        and topic != "channel.metadata"
        and not topic.startswith("v2.system")
    )


def fixed_frames(seeds: Sequence[dict[str, Any]]) -> Iterator[tuple[str, bytes | str]]:
    """The cases of issue 8 (defect 9) and their neighbours, always included."""
    for depth in DEPTHS:
        yield f"array nested {depth}", nested(depth).text.encode()
        yield f"object nested {depth}", nested(depth, "{").text.encode()
    yield "empty frame", b""
    yield "whitespace", b"  \n "
    yield "null", b"null"
    yield "bad JSON, 1.2 MB", b'{"topicName":"' + b"x" * HUGE
    yield "array, 1.2 MB", b"[" + b"1," * (HUGE // 2) + b"1]"
    yield "invalid UTF-8 only", b"\xff\xfe\xfd"
    for seed in seeds:
        name = str(seed.get("topicName") or seed.get("result"))
        yield f"seed {name}", orjson.dumps(seed)
        envelope = dict(seed)
        if isinstance(envelope.get("eventBody"), dict):
            yield (
                f"seed {name} with a 1.2 MB string",
                write(
                    {**envelope, "eventBody": {**envelope["eventBody"], "blob": "x" * HUGE}}
                ).encode(),
            )
            for depth in (254, 255, 1000, 1022, 1100):
                body = {**envelope["eventBody"], "deep": nested(depth)}
                yield (
                    f"seed {name} with nesting {depth} in the body",
                    write({**envelope, "eventBody": body}).encode(),
                )
        for surrogate in LONE_SURROGATES[:2]:
            yield (
                f"seed {name}, lone surrogate CorrelationId",
                write({**envelope, "metadata": {"CorrelationId": Raw(f'"{surrogate}"')}}).encode(),
            )
            yield (
                f"seed {name}, lone surrogate in metadata",
                write(
                    {**envelope, "metadata": {"CorrelationId": "c", "type": Raw(f'"x{surrogate}"')}}
                ).encode(),
            )
            if isinstance(seed.get("topicName"), str):
                topic = orjson.dumps(seed["topicName"]).decode()[:-1] + surrogate + '"'
                yield (
                    f"seed {name}, lone surrogate topicName",
                    write({**envelope, "topicName": Raw(topic)}).encode(),
                )
        yield (
            f"seed {name}, CorrelationId of 1.2 MB",
            write({**envelope, "metadata": {"CorrelationId": "c" * HUGE}}).encode(),
        )
        yield (
            f"seed {name}, version nested 1000",
            write({**envelope, "version": nested(1000)}).encode(),
        )


KAFKA_TOPIC_CHARS = frozenset(string.ascii_letters + string.digits + "._-")
OFFSET_MAX_BYTES = 4_096
"""A source partition or offset larger than this would bloat the offsets topic."""
REASON_MAX_CHARS = 2_000


def delivery_problems(item: Any, key_converter: Any, value_converter: Any) -> list[str]:
    """What the runtime would fail on when it handles ``item`` (one thing ``poll`` returned):
    the key and value converters, header and topic encoding, the offsets-topic JSON of the
    source partition and offset, the timestamp librdkafka takes; for malformed input, the
    dead letter's payload and headers. Empty when the runtime can deliver it."""
    import traceback

    from connector.api import MalformedInput, SourceRecord

    problems: list[str] = []

    def check(what: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            problems.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
            return None

    for what, value in (
        ("source partition", item.source_partition),
        ("source offset", item.source_offset),
    ):
        if value is not None:
            data = check(what, lambda value=value: orjson.dumps(dict(value)))
            if data is not None and len(data) > OFFSET_MAX_BYTES:
                problems.append(f"{what} is {len(data):,} bytes")
    if type(item) is MalformedInput:
        if not isinstance(item.payload, bytes | None):
            check("payload", lambda: item.payload.encode("utf-8"))
        if not isinstance(item.reason, str) or len(item.reason) > REASON_MAX_CHARS:
            problems.append(f"reason is {len(str(item.reason)):,} characters")
        check("reason", lambda: item.reason.encode("utf-8"))
        if item.reason.startswith("cannot handle the frame"):
            problems.append(f"a plugin bug was caught by the frame guard: {item.reason[:300]}")
        if item.exception is not None:
            check(
                "stack trace", lambda: "".join(traceback.format_exception(item.exception)).encode()
            )
        return problems
    assert type(item) is SourceRecord, item
    record: SourceRecord = item
    if not (
        isinstance(record.topic, str)
        and 0 < len(record.topic) < 250
        and set(record.topic) <= KAFKA_TOPIC_CHARS
    ):
        problems.append(f"topic {str(record.topic)[:100]!r} is not a Kafka topic name")
        return problems
    check("key", lambda: key_converter.convert(record.topic, record.key, record.key_schema))
    check("value", lambda: value_converter.convert(record.topic, record.value, record.value_schema))
    for name, value in record.headers or ():
        check(f"header name {name[:50]!r}", lambda name=name: name.encode("utf-8"))
        if isinstance(value, str):
            check(f"header {name!r}", lambda value=value: value.encode("utf-8"))
        elif not isinstance(value, bytes | None):
            problems.append(f"header {name!r} is a {type(value).__name__}")
    ts = record.timestamp_ms
    if ts is not None and not (type(ts) is int and 0 <= ts < 2**63):
        problems.append(f"timestamp {ts!r} is not one Kafka takes")
    return problems
