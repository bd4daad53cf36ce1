"""Fixtures for the simulator tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sim_helpers import Api

from connector.simulator import ClientConfig, GenesysSimulator, SimulatorConfig

FAST = dict(
    heartbeat_interval_s=0.2,
    socket_closing_lead_s=0.3,
    start_time=1714557600.0,
    rate=0,
)


@pytest.fixture
def make_sim() -> Iterator[Callable[..., GenesysSimulator]]:
    sims: list[GenesysSimulator] = []

    def make(**overrides: Any) -> GenesysSimulator:
        cfg = SimulatorConfig(**{**FAST, **overrides})
        sim = GenesysSimulator(cfg).start()
        sims.append(sim)
        return sim

    yield make
    for s in sims:
        s.stop()


@pytest.fixture
def sim(make_sim: Callable[..., GenesysSimulator]) -> GenesysSimulator:
    return make_sim(
        clients=[
            ClientConfig("demo-client", "demo-secret"),
            ClientConfig("limited", "limited-secret", ("routing:queue:view",)),
        ]
    )


@pytest.fixture
def api(sim: GenesysSimulator) -> Api:
    return Api(sim)
