"""The native record path (``connector._native``, Rust) against the Python path (issue 14).

The property: whatever the native path makes of a frame is exactly what the Python path makes
of it: the same record (topic, key, headers, source partition and offset, timestamp, schema),
the same value dict, byte-identical Avro (through the converter, and against fastavro), and a
frame the native path leaves to Python (``None``) gets Python's outcome, malformed input with
its reason included. Checked on every fixture, on the simulator's event space (seeded contact
centre runs: every family, every detail event) and on fuzzed frames (``fuzz_json``: unknown
fields, wrong types, deep nesting, huge strings, lone surrogates, invalid UTF-8...), both at the
record builder and through two whole tasks fed the same frames, one on each path.
"""

from __future__ import annotations

import io
import math
import os
import random
import struct
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from fuzz_json import FrameFuzzer
from genesys_helpers import FIXTURES, FakeGenesysHTTP
from native_kit import extension

from connector.api import MalformedInput, SourceRecord
from connector.buffer import Frame
from connector.plugins.genesys import events, schemas, topics
from connector.plugins.genesys.native import NativeRecords, schema_program
from connector.plugins.genesys.spec import GenesysNotificationsConfig
from connector.plugins.genesys.task import GenesysNotificationsSourceTask
from connector.serde.avro import AvroConverter
from connector.serde.encoded import EncodedAvro
from connector.simulator.hub import envelope_parts
from connector.simulator.model import ContactCentre
from connector.testing import FakeTaskContext

pytestmark = pytest.mark.timeout(240)

SEED = int(os.environ.get("FUZZ_SEED", "1409"))
CASES = int(os.environ.get("FUZZ_CASES", "2500"))
RECEIVED_NS = 1_714_557_600_123_456_789

SEEDS: list[dict[str, Any]] = [
    orjson.loads(path.read_bytes()) for path in sorted((FIXTURES / "frames").glob("*.json"))
]
FIXTURE_FRAMES = [path.read_bytes() for path in sorted((FIXTURES / "frames").glob("*.json"))]


def simulator_frames(seed: int, count: int) -> list[bytes]:
    """Frames of a seeded contact-centre run, enveloped as the simulator sends them."""
    model = ContactCentre(seed, 3, 12, 1_714_557_600.0)
    frames = []
    for index, event in enumerate(model.advance(count)):
        head, tail = envelope_parts(event.topic, event.body)
        frames.append(head + f"cid-{seed}-{index}".encode() + tail)
    return frames


SIMULATED = simulator_frames(3, 4000) + simulator_frames(11, 2000)


def event_topics(frames: list[bytes]) -> set[str]:
    found = set()
    for frame in frames:
        classified = events.classify(frame)
        if classified.kind is events.FrameKind.EVENT:
            found.add(classified.envelope["topicName"])  # type: ignore[index]
    return found


SUBSCRIBED = frozenset(event_topics(FIXTURE_FRAMES) | event_topics(SIMULATED))


@pytest.fixture(scope="module")
def ext() -> Any:
    return extension()


@pytest.fixture(scope="module")
def converter() -> AvroConverter:
    return AvroConverter(SchemaRegistryClient.new_client({"url": "mock://"}))


def python_outcome(builder: events.RecordBuilder, payload: bytes | str) -> Any:
    """What the task's Python path makes of a data frame (``_frame``, without the session)."""
    classified = events.classify(payload)
    if classified.kind is not events.FrameKind.EVENT:
        return ("frame", classified.kind, classified.message)
    topic = classified.envelope["topicName"]  # type: ignore[index]
    if topic not in SUBSCRIBED:
        return ("not subscribed", topic)
    try:
        return builder.build(classified.envelope, RECEIVED_NS // 1_000_000)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        return ("malformed", str(exc))


def assert_same_record(
    native: SourceRecord, python: Any, converter: AvroConverter, name: str
) -> bytes:
    assert type(python) is SourceRecord, (name, python)
    assert type(native.value) is EncodedAvro, name
    for field in ("topic", "key", "source_partition", "source_offset", "timestamp_ms"):
        assert getattr(native, field) == getattr(python, field), (name, field)
    assert list(native.headers or ()) == list(python.headers or ()), name
    assert native.value_schema is python.value_schema, name
    assert native.key_schema is None and python.key_schema is None
    assert native.value.materialise() == python.value, name
    ours = converter.convert(native.topic, native.value, native.value_schema)
    theirs = converter.convert(python.topic, python.value, python.value_schema)
    assert ours == theirs, name
    assert ours is not None and ours[5:] == native.value.body
    return native.value.body


def compare_frames(
    ext: Any, converter: AvroConverter, frames: Iterator[tuple[str, bytes | str]]
) -> Counter[str]:
    builder = events.RecordBuilder(topics.Router())
    records = NativeRecords(ext, builder, SUBSCRIBED)
    outcomes: Counter[str] = Counter()
    for name, payload in frames:
        (native,) = records.build([Frame(payload, RECEIVED_NS, "fuzz")])
        python = python_outcome(builder, payload)
        if native is None:
            outcomes["python"] += 1
            continue
        assert_same_record(native, python, converter, name)
        outcomes["native"] += 1
    return outcomes


def test_fixture_and_simulator_events_are_identical_and_all_take_the_native_path(
    ext: Any, converter: AvroConverter
) -> None:
    frames = [(f"fixture {i}", f) for i, f in enumerate(FIXTURE_FRAMES)]
    frames += [(f"simulated {i}", f) for i, f in enumerate(SIMULATED)]
    outcomes = compare_frames(ext, converter, iter(frames))
    typed = sum(
        1
        for _, frame in frames
        if events.classify(frame).kind is events.FrameKind.EVENT
        and topics.match_topic(events.classify(frame).topic or "").family.schema is not None
    )
    # every typed event of the simulator's event space is built natively (else the fast path
    # silently is not one); the rest are heartbeats, system frames, the envelope family
    assert outcomes["native"] == typed > 5000, outcomes
    families = Counter(
        topics.match_topic(events.classify(f).topic or "").family.name for _, f in frames
    )
    assert {f.name for f in topics.FAMILIES} <= set(families), families


def test_fuzzed_frames_are_identical_or_left_to_the_python_path(
    ext: Any, converter: AvroConverter
) -> None:
    seeds = SEEDS + [orjson.loads(f) for f in SIMULATED[:200]]
    outcomes = compare_frames(ext, converter, FrameFuzzer(SEED, seeds).frames(CASES))
    # not vacuous: mutated events (unknown fields, wrong types...) went through the native path
    assert outcomes["native"] > CASES // 5, outcomes
    assert outcomes["python"] > CASES // 5, outcomes


def test_mutations_inside_the_body_are_fitted_identically(
    ext: Any, converter: AvroConverter
) -> None:
    """Every typed field of the bench families given values of every JSON type (the misfits go
    to ``unknown_fields`` at their level), plus duplicate keys and escapes."""
    rng = random.Random(SEED)
    samples: list[Any] = [
        None, True, False, 0, -1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 1.5, -0.0, 1e300, 5e-324,
        "", "x", "é\u2028\x00\"\\", [], [1, "a"], ["a", "b"], {}, {"id": "x", "z": [None]},
    ]  # fmt: skip
    bases = [orjson.loads(f) for f in SIMULATED[:400] if b"eventBody" in f]

    def mutate(value: Any, depth: int) -> Any:
        if isinstance(value, dict):
            out = {k: mutate(v, depth + 1) for k, v in value.items()}
            if rng.random() < 0.3 and out:
                out[rng.choice(list(out))] = rng.choice(samples)
            if rng.random() < 0.2:
                out[f"unknown{depth}"] = rng.choice(samples)
            return out
        if isinstance(value, list):
            return [mutate(v, depth + 1) for v in value]
        return rng.choice(samples) if rng.random() < 0.1 else value

    def frames() -> Iterator[tuple[str, bytes]]:
        for index, base in enumerate(bases):
            envelope = dict(base, eventBody=mutate(base["eventBody"], 0))
            data = orjson.dumps(envelope)
            yield f"mutated body {index}", data
            if index % 7 == 0:  # a repeated key: the first place, the last value (a dict's)
                yield (
                    f"repeated key {index}",
                    data[:-1]
                    + b',"topicName":'
                    + orjson.dumps(envelope["topicName"])
                    + b',"version":"3"}',
                )
            if index % 11 == 0:  # escapes where the plain text had none
                yield f"escaped {index}", data.replace(b'"id"', b'"\\u0069d"', 1)

    outcomes = compare_frames(ext, converter, frames())
    assert outcomes["native"] > len(bases) // 2, outcomes


def test_native_bodies_are_fastavros_encoding(ext: Any) -> None:
    """Against the reference encoder: fastavro's schemaless_writer of the Python path's value."""
    builder = events.RecordBuilder(topics.Router())
    records = NativeRecords(ext, builder, SUBSCRIBED)
    parsed: dict[str, Any] = {}
    frames = FIXTURE_FRAMES + SIMULATED[::20]
    built = records.build([Frame(f, RECEIVED_NS, "s") for f in frames])
    checked = 0
    for frame, record in zip(frames, built, strict=True):
        if record is None:
            continue
        schema = record.value_schema
        assert schema is not None
        if schema.name not in parsed:
            parsed[schema.name] = fastavro.parse_schema(dict(schema.definition), named_schemas={})
        buffer = io.BytesIO()
        value = builder.build(events.classify(frame).envelope, 0).value  # type: ignore[arg-type]
        fastavro.schemaless_writer(buffer, parsed[schema.name], value)
        assert buffer.getvalue() == record.value.body
        checked += 1
    assert checked > 200


# -- the layers underneath ---------------------------------------------------------------------


def test_json_text_is_orjsons_for_every_frame_the_native_parser_accepts(ext: Any) -> None:
    """Parse + write of the native JSON layer == orjson.dumps(orjson.loads(frame)); a frame it
    refuses is one the Python path then decides on (it refuses a subset of what orjson takes)."""
    accepted = refused = 0
    frames = [f for _, f in FrameFuzzer(SEED + 1, SEEDS).frames(CASES)] + SIMULATED[:500]
    frames += [b'{"a":1,"a":2,"b":{"a":3,"a":[4]},"a":5}', b"-0", b"1E+2", b"-1e-400"]
    frames += [b"18446744073709551615", b"18446744073709551616", b"-9223372036854775809"]
    frames += [b"[-0]", b"[-0.0]", b"[0.0]", b"[-0e3]", b"[-1]"]
    frames += [b'{"k%d":%d}' % (i, i) for i in range(3)]
    frames += [orjson.dumps({f"k{i % 700}": i for i in range(1400)})]  # many keys, repeated
    for frame in frames:
        data = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame
        ours = ext.json_roundtrip(data)
        if ours is None:
            refused += 1
            continue
        accepted += 1
        assert ours == orjson.dumps(orjson.loads(data)), data[:200]
    assert accepted > 1000 and refused > 100, (accepted, refused)


def test_floats_are_written_as_orjson_writes_them(ext: Any) -> None:
    rng = random.Random(SEED)
    values = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
    values += [m * 10.0**e for e in range(-30, 30) for m in (1.0, 1.5, 9.999999999999998, 0.3)]
    values += [float(2**n) for n in range(-1074, 1024, 7)]
    values += [rng.uniform(-1e6, 1e6) for _ in range(20_000)]
    while len(values) < 200_000:
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            values.append(value)
    for value in values:
        assert ext.format_float(value) == orjson.dumps(value).decode(), repr(value)


def test_event_times_are_pythons(ext: Any) -> None:
    """``iso_epoch_ms`` either gives ``events.parse_time_ms``'s answer or leaves it to Python."""
    rng = random.Random(SEED)
    texts = ["2024-05-01T10:00:00.000Z", "2024-02-29T23:59:59.999Z", "2023-02-29T00:00:00Z"]
    texts += ["1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "0001-01-01T00:00:00+00:01"]
    texts += ["9999-12-31T23:59:59.999999Z", "2024-05-01T10:00:00.1234567Z", "2024-05-01"]
    texts += ["2024-05-01T10:00:00+24:00", "2024-05-01T10:00:00-23:59", "2024-05-01t10:00:00Z"]
    texts += ["2255-06-05T23:47:34.740992Z", "2255-06-05T23:47:34.740993Z", "x" * 30]
    start = datetime(1, 1, 1, tzinfo=UTC)
    for _ in range(50_000):
        if rng.random() < 0.8:  # mostly around now, the rest anywhere in 1..9999
            since = 62_135_596_800_000_000 + rng.randrange(4_102_444_800_000_000)
        else:
            since = rng.randrange(315_537_897_600_000_000)
        moment = start + timedelta(microseconds=since)
        text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
        digits = rng.choice((0, 1, 2, 3, 3, 3, 6, 7))
        if digits:
            text += "." + f"{moment.microsecond:06d}{rng.randrange(10)}"[:digits]
        text += rng.choice(("Z", "Z", "+00:00", "-05:30", "+13:45", "+99:00", "", " "))
        if rng.random() < 0.05:
            at = rng.randrange(len(text))
            text = text[:at] + rng.choice("0123456789-:TZ.x") + text[at + 1 :]
        texts.append(text)
    answered = 0
    for text in texts:
        ours = ext.iso_epoch_ms(text)
        if ours is None:
            continue
        answered += 1
        expected = events.parse_time_ms(text)
        assert (ours if 0 <= ours <= events.MAX_TIME_MS else None) == expected, text
    assert answered > 15_000


def test_schemas_outside_the_native_subset_stay_on_the_python_path() -> None:
    record = {"type": "record", "name": "R", "namespace": "n"}
    unknown = {"name": "unknown_fields", "type": ["null", "string"], "default": None}
    fine = {**record, "fields": [{"name": "a", "type": ["null", "long"]}, unknown]}
    assert schema_program(fine) == {
        "records": [{"fields": [{"name": "a", "type": "long", "null": 0}, {**_u(), "null": 0}]}]
    }
    for field in (
        {"name": "a", "type": "long"},  # not nullable: the Python writer raises on null
        {"name": "a", "type": ["null", "long"], "default": 3},
        {"name": "a", "type": ["null", "float"]},  # struct.pack('<f') may overflow
        {"name": "a", "type": ["null", "long", "string"]},
        {"name": "a", "type": ["null", {"type": "enum", "name": "E", "symbols": ["X"]}]},
        {"name": "a", "type": ["null", {"type": "array", "items": ["null", "string"]}]},
        {"name": "a", "type": ["null", "long"], "genesys.json": True},
    ):
        assert schema_program({**record, "fields": [field, unknown]}) is None, field
    assert schema_program({**record, "fields": [{"name": "a", "type": ["null", "string"]}]}) is None
    for name in schemas.schema_names():
        if name in (schemas.ENVELOPE_SCHEMA, schemas.GAP_SCHEMA):
            continue
        assert schema_program(schemas.load_definition(name), schemas.NAMESPACE) is not None, name


def _u() -> dict[str, Any]:
    return {"name": "unknown_fields", "type": "string"}


# -- two whole tasks, one on each path ---------------------------------------------------------


def _task(monkeypatch: pytest.MonkeyPatch, http: FakeGenesysHTTP, path: str) -> Any:
    config = GenesysNotificationsConfig.model_validate(
        {
            "genesys.login.url": http.url,
            "genesys.api.url": http.url,
            "genesys.client.id": "demo-client",
            "genesys.client.secret": "demo-secret",
            "genesys.subscriptions": [{"topics": sorted(SUBSCRIBED)}],
            "reconnect.backoff.initial.ms": 1000,
            "reconnect.backoff.max.ms": 5000,
            "dedupe.window.ms": 2000,  # frames below come 0.1 s apart: 20 frames per window
        }
    )
    monkeypatch.setenv("CONNECTOR_NATIVE", path)
    task = GenesysNotificationsSourceTask()
    task.start(FakeTaskContext(f"genesys-{path}", config))
    return task


def _comparable(item: Any, converter: AvroConverter) -> Any:
    if type(item) is MalformedInput:
        return ("malformed", item.payload, item.reason, item.source_partition, item.source_offset)
    value = converter.convert(item.topic, item.value, item.value_schema)
    plain = item.value.materialise() if type(item.value) is EncodedAvro else item.value
    return (
        item.topic, item.key, item.source_partition, item.source_offset, item.timestamp_ms,
        list(item.headers or ()), item.value_schema, plain, value,
    )  # fmt: skip


def test_two_tasks_fed_the_same_frames_poll_the_same_items(
    ext: Any, monkeypatch: pytest.MonkeyPatch, converter: AvroConverter
) -> None:
    """Through ``poll()`` (batches of frames, malformed input in place, the Python path's
    frames in between the native ones): the same records and the same malformed input with
    the same reasons, in the same order."""
    http = FakeGenesysHTTP()
    python = _task(monkeypatch, http, "0")
    native = _task(monkeypatch, http, "require")
    assert python._native is None and native._native is not None
    try:
        fuzzed = [f for _, f in FrameFuzzer(SEED + 2, SEEDS).frames(CASES // 2)]
        frames: list[Any] = fuzzed + SIMULATED[:1500] + FIXTURE_FRAMES
        rng = random.Random(SEED)
        rng.shuffle(frames)
        # rotations in between (the duplicate filter drops repeats from the start of one until
        # its window after the end), and repeated frames inside and outside those windows
        rotations = sorted(rng.sample(range(1, len(frames)), 24))  # started, finished, ...
        for index, at in reversed(list(enumerate(rotations))):
            frames.insert(at, ("control", ("rotation_started", "rotation_finished")[index % 2]))
        for at in sorted(rng.sample(range(1, len(frames)), 40), reverse=True):
            if not isinstance(frames[at - 1], tuple):
                frames.insert(at, frames[at - 1])
        kinds: Counter[str] = Counter()
        for start in range(0, len(frames), 97):
            batch = [
                Frame(orjson.dumps({"source": "fuzz/s", "kind": f[1]}), RECEIVED_NS + i * 10**8,
                      "genesys-control:fuzz/s")
                if isinstance(f, tuple)
                else Frame(f, RECEIVED_NS + i * 10**8, "fuzz/s")
                for i, f in enumerate(frames[start : start + 97], start)
            ]  # fmt: skip
            polled = {}
            for task in (python, native):
                for frame in batch:
                    assert task._buffer.put(frame, timeout_s=1)
                polled[task] = task.poll(0)
            assert [_comparable(i, converter) for i in polled[native]] == [
                _comparable(i, converter) for i in polled[python]
            ]
            kinds.update(type(i.value).__name__ for i in polled[native] if type(i) is SourceRecord)
            kinds.update(type(i).__name__ for i in polled[native])
        # both paths inside one task: native records, and Python ones around the rotations
        assert kinds["EncodedAvro"] > 500 and kinds["dict"] > 500, kinds
        assert kinds["MalformedInput"] > 300, kinds
        assert native._dedupe.dropped == python._dedupe.dropped > 0
    finally:
        python.stop()
        native.stop()
        http.close()


def test_the_native_path_is_said_once_and_by_the_cli(
    ext: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from connector import native
    from connector.cli import main

    monkeypatch.setenv("CONNECTOR_NATIVE", "auto")
    assert native.describe().startswith(f"native (connector._native {ext.__version__}")
    monkeypatch.setenv("CONNECTOR_NATIVE", "0")
    assert native.describe() == "python (CONNECTOR_NATIVE=0)" and native.extension() is None
    monkeypatch.setenv("CONNECTOR_NATIVE", "auto")
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert "record path: native" in capsys.readouterr().out
    assert main(["plugins"]) == 0
    assert "record path: native" in capsys.readouterr().out
