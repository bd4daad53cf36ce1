"""The devstack's single broker must serve transactions (exactly-once delivery needs them):
Kafka's defaults (transaction state log replication factor 3, min ISR 2) would make every
``init_transactions`` time out on one node."""

from __future__ import annotations

from pathlib import Path

from connector.devstack.services import Ports, _server_properties


def test_the_single_broker_is_configured_for_transactions(tmp_path: Path) -> None:
    lines = _server_properties(tmp_path, Ports()).splitlines()
    settings = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    assert settings["transaction.state.log.replication.factor"] == "1"
    assert settings["transaction.state.log.min.isr"] == "1"
