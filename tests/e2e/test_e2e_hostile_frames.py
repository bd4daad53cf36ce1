"""Hostile frames end to end (issue 8, defect 9): simulator -> the real Worker -> real Kafka.

One frame on the channel socket used to restart the Genesys task (13 s without a socket,
reported as a gap): a JSON array nested 1,100 deep, a lone surrogate in the CorrelationId, in
another metadata field or in topicName, and any record or dead letter over 1 MB. Each must land
in the dead-letter topic with its reason, with the task never restarted and no gap reported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_helpers import (
    DLQ_HEADER,
    HEADER_CORRELATION,
    InProcessWorker,
    KafkaView,
    all_topics,
    genesys_block,
    quiesce,
    sent_events,
    wait_until,
    write_deployment,
)

from connector.simulator import GenesysSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

Sim = Callable[..., GenesysSimulator]
StartWorker = Callable[..., InProcessWorker]
View = Callable[..., KafkaView]

HOSTILE = {
    "deep_array": "nested too deep: depth limit exceeded",
    "lone_surrogate_correlation_id": "lone surrogate: ",
    "lone_surrogate_metadata": "lone surrogate: ",
    "lone_surrogate_topic": "lone surrogate: ",
}
"""Simulator bad-frame kind -> how the dead letter's ``exception.message`` starts."""


def start(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> tuple[GenesysSimulator, list[str], InProcessWorker, KafkaView, str]:
    """A running ``hostile`` connector with first events in Kafka: (sim, topics, worker, view,
    channel id)."""
    sim = simulator()
    topics = all_topics(sim)
    path = write_deployment(
        tmp_path / "hostile.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[genesys_block("hostile", sim, prefix, topics=topics)],
    )
    running = worker(path)
    view = kafka_view()
    channel_id = wait_until(
        lambda: (
            running.all_connected("hostile", 1) and running.channels("hostile")[0]["channel_id"]
        ),
        20,
        "the channel to connect",
    )
    wait_until(lambda: view.sync() is not None and len(view.events()) >= 5, 60, "first events")
    return sim, topics, running, view, channel_id


def assert_task_kept_running(
    running: InProcessWorker, view: KafkaView, prefix: str, channel_id: str
) -> None:
    """Never restarted, the same socket throughout, and no gap beyond coverage_start."""
    (task,) = running.status("hostile")["tasks"]
    assert (task["state"], task["restarts"]) == ("RUNNING", 0), task
    assert running.channels("hostile")[0]["channel_id"] == channel_id
    assert running.channels("hostile")[0]["generation"] == 1
    assert {g.value["reason"] for g in view.on(f"{prefix}.hostile.gaps")} == {"coverage_start"}


def test_hostile_frames_are_dead_lettered_with_their_reason_and_the_task_keeps_running(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    sim, topics, running, view, channel_id = start(
        simulator, worker, kafka_view, prefix, tmp_path, kafka_bootstrap, schema_registry_url
    )
    dlq = f"{prefix}.hostile.dlq"
    for kind in HOSTILE:
        sim.faults.bad_frame(kind, channel_id)
    wait_until(
        lambda: view.sync() is not None and len(view.on(dlq)) >= len(HOSTILE),
        30,
        "the dead letters",
    )
    after = len(view.events())
    wait_until(
        lambda: view.sync() is not None and len(view.events()) >= after + 20,
        60,
        "events after the hostile frames",
    )
    quiesce(sim)
    sent = sent_events(sim, topics)
    wait_until(
        lambda: view.sync() is not None and set(sent) <= set(view.correlation_ids()),
        30,
        "every ledger event in Kafka",
    )

    assert view.correlation_ids() == sent, "no event lost or duplicated around the frames"
    letters = view.on(dlq)
    assert len(letters) == len(HOSTILE)
    for (kind, reason), letter in zip(HOSTILE.items(), letters, strict=True):
        message = letter.header(DLQ_HEADER + "exception.message") or ""
        assert message.startswith(reason), (kind, message)
        assert letter.header(DLQ_HEADER + "stage") == "POLL"
        assert letter.raw, "the frame's bytes are kept"
    assert letters[0].raw == b"[" * 1_100 + b"]" * 1_100
    assert all(b"\\ud800" in letter.raw for letter in letters[1:])
    assert_task_kept_running(running, view, prefix, channel_id)


def test_records_and_dead_letters_over_1_mb_are_dead_lettered_and_the_task_keeps_running(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    """Needs the runtime's size check (the lead's part of defect 9): a record too large for
    the topic is dead-lettered, a dead letter too large is truncated, with sizes in headers."""
    sim, topics, running, view, channel_id = start(
        simulator, worker, kafka_view, prefix, tmp_path, kafka_bootstrap, schema_registry_url
    )
    dlq = f"{prefix}.hostile.dlq"
    sim.faults.bad_frame("oversized_bad_json", channel_id, size=1_200_000)
    sim.faults.bad_frame("oversized", channel_id, size=1_200_000)  # a valid, ledgered event
    wait_until(lambda: view.sync() is not None and len(view.on(dlq)) >= 2, 30, "dead letters")
    after = len(view.events())
    wait_until(
        lambda: view.sync() is not None and len(view.events()) >= after + 20,
        60,
        "events after the big frames",
    )
    quiesce(sim)
    sent = sent_events(sim, topics)
    wait_until(
        lambda: (
            view.sync() is not None
            and len(set(sent) - set(view.correlation_ids(exclude=[dlq]))) <= 1
        ),
        30,
        "every ledger event but the big one in Kafka",
    )

    bad_json, big_event = view.on(dlq)
    assert (bad_json.header(DLQ_HEADER + "exception.message") or "").startswith("bad JSON: ")
    assert bad_json.header(DLQ_HEADER + "stage") == "POLL"
    (missing,) = set(sent) - set(view.correlation_ids(exclude=[dlq]))
    assert big_event.header(HEADER_CORRELATION) == missing, "the big event is the dead letter"
    for letter in (bad_json, big_event):
        assert letter.raw is not None and len(letter.raw) < 1_048_576
        assert any("size" in name for name in letter.headers), letter.headers
    assert_task_kept_running(running, view, prefix, channel_id)
