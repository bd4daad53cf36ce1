"""Genesys' limits, end to end: at most 1,000 topics per channel and 20 channels per OAuth client
(the 21st evicts the oldest). Too big a deployment is refused before it runs; a big one is
split over channels; connectors sharing an OAuth client share its channel budget, so the
simulator never has to evict one of our channels, even while they all rotate."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_helpers import (
    REPO_ROOT,
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

from connector.api import ConfigError
from connector.config.validate import load_deployment
from connector.simulator import GenesysSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

Sim = Callable[..., GenesysSimulator]
StartWorker = Callable[..., InProcessWorker]
View = Callable[..., KafkaView]

USER_FAMILIES = ["user.presence", "user.routingStatus", "user.activity", "user.conversations"]


def big_deployment(path: Path, user_ids: int, extra_topics: int = 0) -> Path:
    """A deployment with ``4 * user_ids + extra_topics`` topics and the default budget."""
    ids = [str(uuid.uuid4()) for _ in range(user_ids)]
    extra = [f"v2.users.{uuid.uuid4()}.presence" for _ in range(extra_topics)]
    subscriptions: list[dict] = [{"template": USER_FAMILIES, "ids": ids}]
    if extra:
        subscriptions.append({"topics": extra})
    return write_deployment(
        path,
        bootstrap="127.0.0.1:1",
        registry_url="http://127.0.0.1:1",
        prefix="unused",
        connectors=[
            {
                "name": "big",
                "plugin": "genesys_notifications",
                "genesys.region": "mypurecloud.com",
                "genesys.client.id": "client",
                "genesys.client.secret": "secret",
                "genesys.subscriptions": subscriptions,
            }
        ],
    )


def test_a_deployment_beyond_the_channel_budget_is_refused_with_the_channels_needed(
    tmp_path: Path,
) -> None:
    # 19 usable channels (20 minus one kept for make-before-break rotations) x 1,000 topics
    fits = load_deployment([big_deployment(tmp_path / "fits.yaml", 4750)])
    assert len(fits.connectors[0].plugin_config.topics()) == 19_000

    with pytest.raises(ConfigError) as refused:
        load_deployment([big_deployment(tmp_path / "one-more.yaml", 4750, extra_topics=1)])
    assert "19001 topics need 20 channels" in str(refused.value)
    assert "only 19 channels are usable" in str(refused.value)

    # the 21-channel case through the CLI a user would run first: exit 2, the count needed
    path = big_deployment(tmp_path / "twenty-one.yaml", 5001)
    result = subprocess.run(
        [sys.executable, "-m", "connector", "validate", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert "20004 topics need 21 channels of at most 1000 topics" in result.stderr


def test_1500_topics_use_two_channels_of_at_most_1000_topics(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    sim = simulator(rate=30)
    channels = ChannelLog.attach(sim)
    real = all_topics(sim)
    queue_topics = [t for t in real if not t.startswith("v2.users.")]
    user_topics = [t for t in real if t.startswith("v2.users.")]
    filler = [f"v2.users.{uuid.uuid4()}.presence" for _ in range(1500 - len(real))]
    # queues first, users last: both channels carry topics that have events
    topics = queue_topics + filler + user_topics
    assert len(topics) == 1500
    path = write_deployment(
        tmp_path / "wide.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[genesys_block("wide", sim, prefix, topics=topics)],
    )
    running = worker(path)
    view = kafka_view()
    wait_until(lambda: running.all_connected("wide", 2), 30, "two connected channels")
    ours = [c for c in sim.channels() if c["clientId"] == "demo-client"]
    assert len(ours) == 2
    assert sorted(c["topics"] for c in ours) == [750, 750]
    assert all(c["connected"] for c in ours)
    assert [c["permitted"] for c in running.channels("wide")] == [750, 750]

    wait_until(lambda: view.sync() is not None and len(view.events()) >= 60, 60, "events")
    quiesce(sim)
    ledger = ledger_for(sim, topics)
    assert {e.channel_id for e in ledger} == {c["id"] for c in ours}, "events on both channels"
    sent = sent_events(sim, topics)
    wait_until(
        lambda: view.sync() is not None and set(sent) <= set(view.correlation_ids()),
        30,
        "every ledger event in Kafka",
    )
    assert view.correlation_ids() == sent
    gaps = view.on(f"{prefix}.wide.gaps")
    assert len(gaps) == 1500 and {g.value["reason"] for g in gaps} == {"coverage_start"}
    assert channels.removed == {}


def test_connectors_sharing_an_oauth_client_share_its_20_channels_and_never_evict(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    # the simulator enforces Genesys' limit: a 21st channel of a client evicts the oldest
    sim = simulator(rate=30, max_channels_per_client=20)
    channels = ChannelLog.attach(sim)
    topics = all_topics(sim)  # 92 topics
    # five topics per channel: 10 + 9 channels = the 19 usable ones; the third needs one more
    split = {"first": topics[:50], "second": topics[50:], "third": topics[:5]}
    expected = {"first": 10, "second": 9}
    path = write_deployment(
        tmp_path / "shared.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[
            genesys_block(name, sim, prefix, topics=split[name], **{"channel.max.topics": 5})
            for name in ("first", "second", "third")
        ],
    )
    running = worker(path)
    view = kafka_view()

    third = running.status("third")
    assert third["connector"]["state"] == "FAILED"
    assert "20 channels are needed in total" in third["connector"]["trace"]
    assert third["tasks"] == []
    for name, count in expected.items():
        wait_until(
            lambda name=name, count=count: running.all_connected(name, count),
            30,
            f"{count} connected channels for {name}",
        )
    assert len(channels.created) == 19

    # every channel rotates at once (socket_closing everywhere, a long lead so all 19
    # rotations fit): the one headroom channel is shared, so at most 20 exist at any time
    wait_until(lambda: view.sync() is not None and len(view.events()) >= 30, 60, "events")
    sim.faults.socket_closing(None, lead_s=30.0)
    for name, count in expected.items():
        wait_until(
            lambda name=name, count=count: (
                len([c for c in running.channels(name) if c["generation"] >= 2 and c["connected"]])
                == count
            ),
            40,
            f"every channel of {name} rotated",
        )
    assert len(channels.created) == 38
    # Genesys has no "delete channel": a retired channel lingers until it expires or is
    # evicted. Evicting those is harmless; evicting a channel in use would lose events.
    assert channels.removed_in_use == {}, "the simulator evicted a channel in use"
    assert set(channels.removed.values()) <= {"evicted"}

    before = len(view.events())
    wait_until(
        lambda: view.sync() is not None and len(view.events()) >= before + 20,
        30,
        "events after the rotations",
    )
    quiesce(sim)
    for name in expected:
        sent = set(sent_events(sim, split[name]))

        def arrived(name: str = name) -> set[str | None]:
            return {
                r.correlation_id for r in view.events() if r.topic.startswith(f"{prefix}.{name}.")
            }

        wait_until(
            lambda sent=sent, arrived=arrived: view.sync() is not None and sent <= arrived(),
            30,
            f"every ledger event of {name}",
        )
        assert arrived() == sent
        reasons = {g.value["reason"] for g in view.on(f"{prefix}.{name}.gaps")}
        assert reasons == {"coverage_start"}, (name, reasons)
    assert channels.removed_in_use == {}
    live = {c["channel_id"] for name in expected for c in running.channels(name)}
    assert len(live) == 19 and not live & set(channels.removed)
