"""One hostile frame on the channel socket costs that frame only (issue 8, defect 9).

Each frame comes from the simulator over the real socket and must come out of ``poll()`` as
:class:`MalformedInput` with its reason (or as a record, for a valid 1.2 MB event), with
nothing raised, the socket kept (no reconnect, no gap) and the events after it delivered.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
import test_task_simulator as simulated
from confluent_kafka.schema_registry import SchemaRegistryClient
from fuzz_json import delivery_problems
from test_task_simulator import (
    Running,
    assert_ledger_received,
    channel_id,
    make_config,
    wait_for,
)

from connector.serde.avro import AvroConverter
from connector.serde.converter import StringConverter
from connector.simulator import GenesysSimulator

pytestmark = pytest.mark.timeout(60)

sim = simulated.sim  # the fixtures: a started simulator, and tasks polled like the runtime
running = simulated.running


def converters() -> tuple[StringConverter, AvroConverter]:
    return StringConverter(), AvroConverter(SchemaRegistryClient.new_client({"url": "mock://"}))


def assert_stream_goes_on(run: Running, channel: str) -> None:
    """Events keep coming on the same socket, and no gap other than coverage_start."""
    count = len(run.events())
    wait_for(lambda: len(run.events()) > count + 5, 10, "events after the hostile frame")
    assert not run.errors, run.errors
    assert channel_id(run) == channel
    assert run.ctx.status["channels"][0]["generation"] == 1, "the socket was never replaced"
    assert {g.value["reason"] for g in run.gaps()} == {"coverage_start"}


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("deep_array", "nested too deep: depth limit exceeded"),
        ("lone_surrogate_correlation_id", "lone surrogate: "),
        ("lone_surrogate_metadata", "lone surrogate: "),
        ("lone_surrogate_topic", "lone surrogate: "),
        ("oversized_bad_json", "bad JSON: "),
    ],
)
def test_hostile_frames_are_malformed_input_and_the_stream_goes_on(
    sim: GenesysSimulator, running: Callable[..., Running], kind: str, reason: str
) -> None:
    run = running()
    first = channel_id(run)
    wait_for(lambda: len(run.events()) >= 5, 10, "first events")

    sim.faults.bad_frame(kind, first, size=1_200_000)

    wait_for(lambda: run.malformed, 10, "the hostile frame as malformed input")
    (letter,) = run.malformed
    assert letter.reason.startswith(reason), letter.reason
    assert isinstance(letter.payload, bytes) and letter.payload
    if kind == "oversized_bad_json":
        assert len(letter.payload) > 1_200_000
    if kind.startswith("lone_surrogate"):
        assert b"\\ud800" in letter.payload, "the frame's bytes are kept as they came"
    assert delivery_problems(letter, *converters()) == []
    assert_stream_goes_on(run, first)
    assert run.ctx.counters[("malformed_frames", ())] == 1


def test_a_valid_event_of_1_2_mb_is_a_record_that_converts(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    config = make_config(sim)
    run = running(config)
    first = channel_id(run)

    sim.faults.bad_frame("oversized", first, size=1_200_000)

    wait_for(lambda: any(len(str(r.value)) > 1_200_000 for r in run.events()), 10, "the big record")
    (big,) = [r for r in run.events() if len(str(r.value)) > 1_200_000]
    assert delivery_problems(big, *converters()) == []
    assert_ledger_received(sim, run, set(config.topics()))
    assert run.malformed == [] and not run.errors


def test_an_event_of_a_topic_not_subscribed_is_malformed_input(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    run = running()
    first = channel_id(run)
    stranger = "v2.users.00000000-0000-4000-8000-000000000000.presence"
    frame = orjson.dumps({"topicName": stranger, "eventBody": {"id": "x"}, "metadata": {}})

    sim.faults.raw_frame(frame, first)

    wait_for(lambda: run.malformed, 10, "the stranger as malformed input")
    assert run.malformed[0].reason == f"topicName {stranger!r} is not subscribed here"
    assert run.malformed[0].payload == frame
    assert_stream_goes_on(run, first)


def test_a_correlation_id_too_long_for_an_offset_is_malformed_input(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    run = running()
    first = channel_id(run)
    topic = make_config(sim).topics()[0]
    frame = orjson.dumps(
        {"topicName": topic, "eventBody": {}, "metadata": {"CorrelationId": "c" * 1_200_000}}
    )

    sim.faults.raw_frame(frame, first)

    wait_for(lambda: run.malformed, 10, "the frame as malformed input")
    assert run.malformed[0].reason.startswith(
        "cannot build a record: metadata.CorrelationId has 1,200,000 characters"
    )
    assert_stream_goes_on(run, first)


def test_hostile_text_in_a_404_frame_makes_a_bounded_gap_record(
    sim: GenesysSimulator, running: Callable[..., Running]
) -> None:
    run = running()
    first = channel_id(run)
    huge = "x" * 1_200_000
    sim.faults.raw_frame(orjson.dumps({"result": "404", "message": huge}), first)

    wait_for(lambda: run.gaps("channel_lost"), 10, "the channel_lost gap")
    (gap, *_) = run.gaps("channel_lost")
    assert len(gap.value["detail"]) < 1_000 and gap.value["detail"].endswith("characters)")
    assert delivery_problems(gap, *converters()) == []
    assert not run.errors and run.malformed == []


@pytest.mark.parametrize(
    "frame",
    [
        b'{"topicName":"channel.metadata","eventBody":{"message":' + b"[" * 1000 + b"]" * 1000,
        b'{"topicName":"channel.metadata","eventBody":{"message":'
        + b"[" * 1000
        + b"]" * 1000
        + b"}}",
        b'{"result":' + b"[" * 1020 + b"]" * 1020 + b"}",
        b'{"topicName":"v2.system.x","eventBody":{"reason":"\\ud800"}}',
    ],
    ids=["truncated deep heartbeat", "deep heartbeat message", "deep result", "lone surrogate"],
)
def test_hostile_control_frames_never_fail_the_task(
    sim: GenesysSimulator, running: Callable[..., Running], frame: bytes
) -> None:
    run = running()
    first = channel_id(run)
    wait_for(lambda: len(run.events()) >= 5, 10, "first events")

    sim.faults.raw_frame(frame, first)

    assert_stream_goes_on(run, first)
    for letter in run.malformed:
        assert delivery_problems(letter, *converters()) == []
