"""Planned channel changes lose nothing, end to end: ``socket_closing``, channel expiry (rotation
before the channel's lifetime ends) and token expiry (rotation before the token that created the
channel expires). Every event the simulator wrote to any of our sockets reaches Kafka."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import (
    ChannelLog,
    InProcessWorker,
    KafkaView,
    all_topics,
    genesys_block,
    quiesce,
    sent_events,
    wait_until,
    write_deployment,
)

from connector.simulator import ClientConfig, GenesysSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

Sim = Callable[..., GenesysSimulator]
StartWorker = Callable[..., InProcessWorker]
View = Callable[..., KafkaView]


class FastClock:
    """A monotonic clock running ``factor`` times faster than the real one.

    ``channel.rotate.interval.ms`` cannot be below 60 s (a production guard), so the channel-age
    rotation is exercised by handing the worker (and so the task's channel supervisor) this
    clock, as ``Worker(deployment, clock=...)`` allows; the simulator's channel lifetime is
    real time. Sockets, heartbeats, pings and the liveness watchdog keep real time.
    """

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.origin = time.monotonic()

    def __call__(self) -> float:
        return self.origin + (time.monotonic() - self.origin) * self.factor


def run_until_rotated(
    running: InProcessWorker, name: str, generation: int, timeout_s: float
) -> list[dict[str, Any]]:
    return wait_until(
        lambda: [
            c for c in running.channels(name) if c["generation"] >= generation and c["connected"]
        ],
        timeout_s,
        f"{name}'s channel to reach generation {generation}",
    )


def assert_no_loss(
    sim: GenesysSimulator, view: KafkaView, topics: list[str], gaps_topic: str
) -> Counter[str]:
    """Quiesce the simulator; every event of the ledger is in Kafka; only coverage_start gaps."""
    quiesce(sim)
    sent = set(sent_events(sim, topics))
    wait_until(
        lambda: view.sync() is not None and sent <= set(view.correlation_ids()),
        30,
        "every ledger event in Kafka",
    )
    view.sync()
    arrived = view.correlation_ids()
    assert set(arrived) == sent
    reasons = Counter(g.value["reason"] for g in view.on(gaps_topic))
    assert set(reasons) == {"coverage_start"}, reasons
    return arrived


def test_socket_closing_rotates_without_loss(
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
    topics = all_topics(sim)
    path = write_deployment(
        tmp_path / "closing.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[genesys_block("closing", sim, prefix, topics=topics)],
    )
    running = worker(path)
    view = kafka_view()
    wait_until(lambda: running.all_connected("closing", 1), 20, "the channel to connect")
    for generation in (2, 3, 4):
        [current] = running.channels("closing")
        view.sync()
        before = len(view.events())
        sim.faults.socket_closing(current["channel_id"], lead_s=1.0)
        [rotated] = run_until_rotated(running, "closing", generation, 20)
        assert rotated["channel_id"] != current["channel_id"]
        # the old socket is closed by the simulator after the lead time; events keep flowing
        wait_until(
            lambda cid=current["channel_id"]: (
                not any(c["connected"] for c in sim.channels() if c["id"] == cid)
            ),
            10,
            "the old socket to be closed",
        )
        wait_until(
            lambda before=before: view.sync() is not None and len(view.events()) > before + 5,
            30,
            "events on the new channel",
        )
    arrived = assert_no_loss(sim, view, topics, f"{prefix}.closing.gaps")
    assert max(arrived.values()) == 1, "overlap duplicates are dropped"
    assert len(channels.created) == 4 and channels.removed == {}


def test_channel_expiry_is_preempted_by_rotation_without_loss(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    sim = simulator(rate=30, channel_ttl_s=4.0)  # channels live 4 s after their subscription
    channels = ChannelLog.attach(sim)
    topics = all_topics(sim)
    clock = FastClock(30.0)  # 60 s rotation interval -> 2 s real
    path = write_deployment(
        tmp_path / "expiry.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[
            genesys_block(
                "expiry",
                sim,
                prefix,
                topics=topics,
                **{
                    "channel.rotate.interval.ms": 60_000,
                    "channel.rotate.on.token.expiry": False,
                },
            )
        ],
        **{"offset.flush.interval.ms": 9_000},  # 0.3 s real on the fast clock
    )
    running = worker(path, clock)
    view = kafka_view()
    # 12+ s of streaming: without rotation the first channel would have expired three times
    run_until_rotated(running, "expiry", 6, 40)
    assert_no_loss(sim, view, topics, f"{prefix}.expiry.gaps")
    expired = channels.removed_for("expired")
    assert expired, "the simulator did expire channels (the retired ones)"
    [current] = running.channels("expiry")
    assert current["channel_id"] not in channels.removed
    assert set(channels.removed.values()) == {"expired"}


def test_token_expiry_is_preempted_by_rotation_without_loss(
    simulator: Sim,
    worker: StartWorker,
    kafka_view: View,
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    # tokens live 6 s and the simulator closes a token's channels when it expires
    sim = simulator(rate=30, clients=[ClientConfig("demo-client", "demo-secret", token_ttl_s=6)])
    channels = ChannelLog.attach(sim)
    topics = all_topics(sim)
    path = write_deployment(
        tmp_path / "token.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[genesys_block("token", sim, prefix, topics=topics)],
    )
    running = worker(path)
    view = kafka_view()
    run_until_rotated(running, "token", 3, 40)
    assert_no_loss(sim, view, topics, f"{prefix}.token.gaps")
    assert len(sim.hub.authority.tokens) >= 3, "a new token per rotation"
    [current] = running.channels("token")
    assert current["channel_id"] not in channels.removed
    # old channels die with their tokens, but only after they were retired (no gap above)
    assert set(channels.removed.values()) <= {"token expired"}
