"""Steady state, rejected topics, malformed frames and several OAuth clients, end to end:
simulator -> the real Worker (in-process) -> real Kafka + schema registry."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_helpers import (
    DLQ_HEADER,
    HEADER_VERSION,
    ChannelLog,
    InProcessWorker,
    KafkaView,
    all_topics,
    genesys_block,
    ledger_for,
    quiesce,
    sent_events,
    wait_until,
    write_deployment,
)

from connector.plugins.genesys import topics as genesys_topics
from connector.simulator import ClientConfig, GenesysSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

Sim = Callable[..., GenesysSimulator]
StartWorker = Callable[..., InProcessWorker]
View = Callable[..., KafkaView]


def expected_key(genesys_topic: str, value: dict) -> str:
    """The record key the plugin promises: the entity id of the family (``RecordBuilder``)."""
    match = genesys_topics.match_topic(genesys_topic)
    source = match.family.key_source
    if source == "body_id" and isinstance(value.get("id"), str):
        return value["id"]
    if source == "body_user_id":
        user = value.get("user") or {}
        return user.get("id") or value.get("id") or match.entity_id
    return match.entity_id or genesys_topic


def test_steady_state_every_ledger_event_exactly_once(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    sim = simulator(rate=100)
    channels = ChannelLog.attach(sim)
    topics = all_topics(sim)
    path = write_deployment(
        tmp_path / "steady.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[genesys_block("steady", sim, prefix, topics=topics)],
    )
    running = worker(path)
    view = kafka_view()
    wait_until(lambda: running.all_connected("steady", 1), 20, "the channel to connect")
    wanted = {"queue.conversations", "queue.observations", "user.routingStatus"}

    def families_seen() -> set[str]:
        view.sync()
        return {r.topic.removeprefix(f"{prefix}.steady.") for r in view.events()}

    wait_until(
        lambda: wanted <= families_seen() and len(view.events()) >= 100,
        60,
        "100 events of the conversation, observation and routing-status families",
    )

    quiesce(sim)
    ledger = ledger_for(sim, topics)
    sent = sent_events(sim, topics)
    assert max(sent.values()) == 1, "one channel: the simulator sent each event once"
    wait_until(
        lambda: view.sync() is not None and set(sent) <= set(view.correlation_ids()),
        30,
        "every ledger event in Kafka",
    )
    view.sync()

    # exactly once: same correlation ids, same counts
    assert view.correlation_ids() == sent
    assert view.decode_errors == []
    by_cid = {e.correlation_id: e for e in ledger}
    gaps_topic = f"{prefix}.steady.gaps"
    for record in view.events():
        entry = by_cid[record.correlation_id]
        family = genesys_topics.match_topic(entry.topic).family
        assert record.topic == f"{prefix}.steady.{family.name}"
        assert record.genesys_topic == entry.topic
        assert record.header(HEADER_VERSION) == "2"
        assert record.schema_id is not None and isinstance(record.value, dict)
        assert record.key == expected_key(entry.topic, record.value), record
    # the value schema of every topic is the one registered under <topic>-value
    for kafka_topic in {r.topic for r in view.records}:
        latest = view.registry.get_latest_version(f"{kafka_topic}-value")
        assert {r.schema_id for r in view.on(kafka_topic)} == {latest.schema_id}
    assert wanted <= families_seen()

    # first start: one coverage_start per topic, no loss reported, no dead letters
    gaps = view.on(gaps_topic)
    assert sorted(g.value["genesys_topic"] for g in gaps) == sorted(topics)
    assert {g.value["reason"] for g in gaps} == {"coverage_start"}
    assert view.on(f"{prefix}.steady.dlq") == []
    status = running.status("steady")
    assert status["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]
    assert channels.removed == {}


def test_rejected_topics_reported_in_status_and_permitted_topics_flow(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    limited = ClientConfig(
        "limited",
        "limited-secret",
        permissions=("routing:queue:view", "conversation:communication:view"),
    )
    sim = simulator(clients=[limited])
    queues = sim.queue_ids
    conversations = genesys_topics.expand_template("queue.conversations", queues)
    observations = genesys_topics.expand_template("queue.observations", queues)
    path = write_deployment(
        tmp_path / "rejected.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[
            genesys_block(
                "limited",
                sim,
                prefix,
                topics=conversations + observations,
                client=("limited", "limited-secret"),
            )
        ],
    )
    running = worker(path)
    view = kafka_view()
    details = wait_until(
        lambda: (
            running.task_details("limited").get("rejected_topics")
            and running.task_details("limited")
        ),
        20,
        "rejected topics in the worker status",
    )
    rejected = details["rejected_topics"]
    assert sorted(r["topic"] for r in rejected) == sorted(observations)
    for entry in rejected:
        assert entry["missing_permissions"] == ["analytics:queueObservation:view"], entry
    [channel] = running.channels("limited")
    assert (channel["topics"], channel["permitted"], channel["rejected"]) == (
        len(conversations + observations),
        len(conversations),
        len(observations),
    )
    assert running.status("limited")["tasks"][0]["state"] == "RUNNING"

    wait_until(lambda: view.sync() is not None and len(view.events()) >= 10, 60, "events")
    quiesce(sim)
    sent = set(sent_events(sim, conversations))
    wait_until(
        lambda: view.sync() is not None and sent <= set(view.correlation_ids()),
        30,
        "every permitted event in Kafka",
    )
    assert {r.topic for r in view.events()} == {f"{prefix}.limited.queue.conversations"}
    # no coverage is promised for a rejected topic: gap records only for permitted ones
    gapped = {g.value["genesys_topic"] for g in view.on(f"{prefix}.limited.gaps")}
    assert gapped == set(conversations)


BAD_FRAMES = {"malformed": "bad JSON", "truncated": "bad JSON", "non_utf8": "undecodable text"}
"""Simulator bad-frame kind -> what the dead letter's ``exception.message`` says."""


def test_malformed_frames_land_in_the_dead_letter_topic_and_the_stream_goes_on(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    kinds, reasons = tuple(BAD_FRAMES), tuple(BAD_FRAMES.values())
    sim = simulator()
    topics = all_topics(sim)
    path = write_deployment(
        tmp_path / "malformed.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[genesys_block("bad", sim, prefix, topics=topics)],
    )
    running = worker(path)
    view = kafka_view()
    dlq = f"{prefix}.bad.dlq"
    channel_id = wait_until(
        lambda: running.all_connected("bad", 1) and running.channels("bad")[0]["channel_id"],
        20,
        "the channel to connect",
    )
    wait_until(lambda: view.sync() is not None and len(view.events()) >= 5, 60, "first events")
    for kind in kinds:
        sim.faults.bad_frame(kind, channel_id)
    wait_until(
        lambda: view.sync() is not None and len(view.on(dlq)) >= len(kinds),
        30,
        "the dead letters",
    )
    after = len(view.events())
    wait_until(
        lambda: view.sync() is not None and len(view.events()) >= after + 20,
        60,
        "events after the bad frames",
    )
    quiesce(sim)
    sent = sent_events(sim, topics)
    wait_until(
        lambda: view.sync() is not None and set(sent) <= set(view.correlation_ids()),
        30,
        "every ledger event in Kafka",
    )
    assert view.correlation_ids() == sent, "no event lost or duplicated around the bad frames"

    letters = view.on(dlq)
    assert len(letters) == len(kinds)
    messages = [letter.header(DLQ_HEADER + "exception.message") or "" for letter in letters]
    for reason, message in zip(reasons, messages, strict=True):
        assert reason in message, messages
    for letter in letters:
        assert letter.header(DLQ_HEADER + "stage") == "POLL"
        assert letter.header(DLQ_HEADER + "connector.name") == "bad"
        assert letter.raw, "the frame's bytes are kept"
    assert b"\xff\xfe" in letters[2].raw, "non-UTF-8 bytes are kept as they came"
    assert running.status("bad")["tasks"][0]["state"] == "RUNNING"
    # a bad frame is not a gap: the socket stayed up
    assert {g.value["reason"] for g in view.on(f"{prefix}.bad.gaps")} == {"coverage_start"}


def test_two_oauth_clients_in_one_process_each_get_their_events(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    sim = simulator(
        clients=[ClientConfig("client-a", "secret-a"), ClientConfig("client-b", "secret-b")]
    )
    channels = ChannelLog.attach(sim)
    topics = all_topics(sim)
    # overlapping subscriptions: the simulator fans shared topics out to both channels
    subscriptions = {"alpha": topics[:60], "beta": topics[40:]}
    clients = {"alpha": ("client-a", "secret-a"), "beta": ("client-b", "secret-b")}
    path = write_deployment(
        tmp_path / "two-clients.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[
            genesys_block(name, sim, prefix, topics=subscriptions[name], client=clients[name])
            for name in ("alpha", "beta")
        ],
    )
    running = worker(path)
    view = kafka_view()
    for name in ("alpha", "beta"):
        wait_until(lambda name=name: running.all_connected(name, 1), 20, f"{name} to connect")
    wait_until(
        lambda: (
            view.sync() is not None
            and all(
                len([r for r in view.events() if r.topic.startswith(f"{prefix}.{name}.")]) >= 20
                for name in ("alpha", "beta")
            )
        ),
        60,
        "events for both connectors",
    )
    quiesce(sim)
    for name, (client_id, _) in clients.items():
        ours = channels.of_client(client_id)
        assert len(ours) == 1
        sent = sent_events(sim, subscriptions[name], ours)

        def arrived(name: str = name) -> Counter[str]:
            return Counter(
                r.correlation_id for r in view.events() if r.topic.startswith(f"{prefix}.{name}.")
            )

        wait_until(
            lambda sent=sent, arrived=arrived: (
                view.sync() is not None and set(sent) <= set(arrived())
            ),
            30,
            f"every ledger event of {name}",
        )
        assert arrived() == sent, f"{name}: exactly the events of its own channel"
        assert {
            r.genesys_topic for r in view.events() if r.topic.startswith(f"{prefix}.{name}.")
        } <= set(subscriptions[name])
    # an event sent to both channels (a topic both subscribe) reaches both connectors
    per_client = [
        {e.correlation_id for e in ledger_for(sim, topics, channels.of_client(c))}
        for c, _ in clients.values()
    ]
    on_both = per_client[0] & per_client[1]
    assert on_both
    for name in ("alpha", "beta"):
        assert on_both <= {
            r.correlation_id for r in view.events() if r.topic.startswith(f"{prefix}.{name}.")
        }
    assert channels.removed == {}
