"""Fuzz of the Genesys record path: no frame raises out of ``poll()``, and every record it
returns converts (issue 8, defect 9).

Frames are put into the task's input buffer exactly as a receiver thread does (raw ``bytes``,
or ``str``), one at a time, so that a failure names the frame. Each item ``poll`` returns is
then handled as the runtime would: key (string) and value (Avro, ``mock://`` registry)
converters, headers, the offsets-topic JSON of its source partition and offset, its timestamp.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from fuzz_json import FrameFuzzer, delivery_problems
from genesys_helpers import FIXTURES, FakeGenesysHTTP

from connector.api import MalformedInput, SourceRecord
from connector.buffer import Frame
from connector.plugins.genesys.spec import GenesysNotificationsConfig
from connector.plugins.genesys.task import GenesysNotificationsSourceTask
from connector.serde.avro import AvroConverter
from connector.serde.converter import StringConverter
from connector.testing import FakeTaskContext

pytestmark = pytest.mark.timeout(120)

SEED = int(os.environ.get("FUZZ_SEED", "809"))
CASES = int(os.environ.get("FUZZ_CASES", "2500"))
"""Fixed by default; set ``FUZZ_SEED``/``FUZZ_CASES`` to explore further."""
SOURCE = "fuzz/ch0/g0/streaming-fuzz"

SEEDS: list[dict[str, Any]] = [
    orjson.loads(path.read_bytes()) for path in sorted((FIXTURES / "frames").glob("*.json"))
]
EVENT_TOPICS = sorted(
    {s["topicName"] for s in SEEDS if isinstance(s.get("topicName"), str)}
    - {"channel.metadata"}
    - {s["topicName"] for s in SEEDS if str(s.get("topicName")).startswith("v2.system")}
)


@pytest.fixture
def task() -> Iterator[GenesysNotificationsSourceTask]:
    """A started task subscribed to every fixture event topic (its sockets never connect: the
    fake REST server hands out an unreachable connectUri, and frames come from the test)."""
    http = FakeGenesysHTTP()
    config = GenesysNotificationsConfig.model_validate(
        {
            "genesys.login.url": http.url,
            "genesys.api.url": http.url,
            "genesys.client.id": "demo-client",
            "genesys.client.secret": "demo-secret",
            "genesys.subscriptions": [{"topics": EVENT_TOPICS}],
            "reconnect.backoff.initial.ms": 1000,
            "reconnect.backoff.max.ms": 5000,
        }
    )
    started = GenesysNotificationsSourceTask()
    started.start(FakeTaskContext("genesys-fuzz", config))
    yield started
    started.stop()
    http.close()


def feed(task: GenesysNotificationsSourceTask, payload: bytes | str) -> list[Any]:
    """Everything ``poll`` returns for one frame."""
    buffer = task._buffer  # the receivers' side of the task's input
    assert buffer is not None
    assert buffer.put(Frame(payload, time.time_ns(), SOURCE), timeout_s=1)
    return task.poll(0)


def test_random_frames_never_raise_out_of_poll_and_every_record_converts(
    task: GenesysNotificationsSourceTask,
) -> None:
    key_converter = StringConverter()
    value_converter = AvroConverter(SchemaRegistryClient.new_client({"url": "mock://"}))
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    failures: list[str] = []
    for name, payload in FrameFuzzer(SEED, SEEDS).frames(CASES):
        try:
            polled = feed(task, payload)
        except Exception as exc:  # the property under test: report the frame, not the stack
            failures.append(f"{name}: poll raised {type(exc).__name__}: {str(exc)[:200]}")
            continue
        outcomes[type(polled[0]).__name__ if polled else "nothing"] += 1
        for item in polled:
            if type(item) is MalformedInput:
                reasons[item.reason.split(":")[0][:40]] += 1
            failures.extend(
                f"{name}: {problem}"
                for problem in delivery_problems(item, key_converter, value_converter)
            )
    assert not failures, "\n".join(failures[:40])
    # not vacuous: the run made records, malformed input of every family, and ignored frames
    assert outcomes["SourceRecord"] > 300, outcomes
    assert outcomes["MalformedInput"] > 300, outcomes
    assert outcomes["nothing"] > 20, outcomes
    for reason in (
        "bad JSON",
        "undecodable text",
        "nested too deep",
        "lone surrogate",
        "wrong envelope",
        "cannot build a record",
        "topicName ",
    ):
        assert any(r.startswith(reason) for r in reasons), (reason, reasons)


@pytest.mark.parametrize("seed", [s for s in SEEDS if s.get("topicName") in EVENT_TOPICS])
def test_every_fixture_event_is_a_record_that_converts(
    task: GenesysNotificationsSourceTask, seed: dict[str, Any]
) -> None:
    """The fuzz harness's baseline: unmutated events are records (so the fuzz's malformed
    input is the mutations' doing, not the harness's)."""
    value_converter = AvroConverter(SchemaRegistryClient.new_client({"url": "mock://"}))
    (record,) = feed(task, orjson.dumps(seed))
    assert type(record) is SourceRecord
    assert delivery_problems(record, StringConverter(), value_converter) == []
