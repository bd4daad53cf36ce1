"""The connector under test: its deployment file and its process (``connector run``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from connector.plugins.genesys import topics as genesys_topics

FAMILIES = ("queue.conversations", "user.conversations", "conversation.detail")
OFFSETS_TOPIC = os.environ.get("BENCH_OFFSETS_TOPIC", "bench-connect-offsets")
"""The worker's offsets topic (shared by every run on the devstack unless overridden)."""


def kafka_topics(prefix: str, genesys: list[str]) -> list[str]:
    """The Kafka topics the records of ``genesys`` topics go to (``<prefix>.<family>``)."""
    families = sorted({genesys_topics.match_topic(t).family.name for t in genesys})
    return [f"{prefix}.{family}" for family in families]


def deployment(
    *,
    name: str,
    routing: str,
    sim_url: str,
    bootstrap: str,
    registry: str,
    topics: list[str],
    tasks: int,
    producer: dict[str, Any] | None = None,
    offset_flush_ms: int = 1000,
    exactly_once: bool = False,
    transaction_boundary: str = "poll",
    transaction_interval_ms: int | None = None,
    rest_port: int | None = None,
) -> dict[str, Any]:
    """A deployment of the Genesys connector against the simulator, topics ``<routing>.<family>``.

    With ``tasks`` > 1 the topics are split into that many channels (one task each). With
    ``exactly_once`` the worker runs every task in transactions (``transaction_boundary``)."""
    per_channel = min(1000, -(-len(topics) // tasks))
    worker: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "schema.registry.url": registry,
        "offset.storage.topic": OFFSETS_TOPIC,
        "offset.flush.interval.ms": offset_flush_ms,
        **{f"producer.{k}": v for k, v in (producer or {}).items()},
    }
    eos: dict[str, Any] = {}
    if exactly_once:
        worker["exactly.once.source.support"] = "enabled"
        worker["group.id"] = name
        eos["transaction.boundary"] = transaction_boundary
        if transaction_interval_ms is not None:
            eos["transaction.boundary.interval.ms"] = transaction_interval_ms
    if rest_port is not None:
        worker["rest.port"] = rest_port
    return {
        "worker": worker,
        "connectors": [
            {
                "name": name,
                "plugin": "genesys_notifications",
                "tasks.max": tasks,
                "key.converter": "string",
                "value.converter": "avro",
                "errors.tolerance": "all",
                "errors.deadletterqueue.topic.name": f"{routing}.dlq",
                "genesys.login.url": sim_url,
                "genesys.api.url": sim_url,
                "genesys.client.id": "demo-client",
                "genesys.client.secret": "demo-secret",
                "genesys.subscriptions": [{"topics": topics}],
                "channel.max.topics": per_channel,
                "topic.routing": f"{routing}.{{family}}",
                "gaps.topic": f"{routing}.gaps",
                **eos,
            }
        ],
    }


class ConnectorProcess:
    """``python -m connector run <file>`` with its output in ``<dir>/<name>.log``."""

    def __init__(self, config: dict[str, Any], directory: Path, *, profile: str | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        name = config["connectors"][0]["name"]
        self.path = directory / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = directory / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        args = ["--log-level", "WARNING", "run", str(self.path)]
        cmd = [sys.executable, "-m", "connector", *args]
        if profile:  # a script that runs connector.cli.main(argv) with instrumentation around
            cmd = [sys.executable, profile, *args]
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ}
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return int(self.proc.returncode)

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def wait_for(predicate: Any, timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False
