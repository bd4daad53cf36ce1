"""Helpers for the end-to-end tests: simulator -> connector -> real Kafka + schema registry.

Imported by name (``from e2e_helpers import ...``), like the other test folders' helpers.

- :func:`wait_until` polls a predicate until a deadline (no sleeps as synchronisation);
- :class:`KafkaView` reads every Kafka topic of a test (by name prefix) from the beginning and
  decodes Confluent-framed Avro through the registry (magic byte + schema id ->
  ``SchemaRegistryClient.get_schema`` -> fastavro);
- :class:`ChannelLog` records every channel the simulator creates and removes (and why), so a
  test can prove that none of its channels was evicted;
- :func:`genesys_block` / :func:`write_deployment` build deployment YAML the way a user would;
- :class:`InProcessWorker` runs :class:`~connector.runtime.worker.Worker` on a thread;
- :class:`ConnectorProcess` runs ``python -m connector run FILE`` as a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import parse_schema, schemaless_reader

from connector.config.validate import load_deployment
from connector.plugins.genesys import topics as genesys_topics
from connector.runtime.worker import Worker
from connector.simulator import GenesysSimulator, LedgerEntry

REPO_ROOT = Path(__file__).resolve().parents[2]

HEADER_TOPIC = "genesys.topic"
HEADER_VERSION = "genesys.version"
HEADER_CORRELATION = "genesys.correlation.id"
DLQ_HEADER = "__connect.errors."

# Liveness and reconnect knobs scaled to the simulator's 0.3 s heartbeats.
FAST_CONNECTOR: dict[str, Any] = {
    "ping.interval.ms": 300,
    "liveness.timeout.ms": 1500,
    "reconnect.backoff.initial.ms": 50,
    "reconnect.backoff.max.ms": 500,
    "http.timeout.ms": 5000,
    "dedupe.window.ms": 5000,
}

GAP_SLACK_MS = 0
"""How far before a gap's ``from_time`` a lost event's *send* time may lie and still count as
covered: none. A gap starts no later than the server sent the last frame the lost socket
delivered (its latest event time), so everything in flight after it, however long it waited in
the server's and the kernel's buffers, lies inside the window."""


def wait_until(
    predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


# --- Kafka ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Msg:
    """One consumed Kafka record, value decoded (Avro -> dict; other topics: raw bytes)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, bytes]
    value: Any
    raw: bytes | None
    timestamp_ms: int
    schema_id: int | None

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value.decode("utf-8", "replace") if value is not None else None

    @property
    def correlation_id(self) -> str | None:
        return self.header(HEADER_CORRELATION)

    @property
    def genesys_topic(self) -> str | None:
        return self.header(HEADER_TOPIC)


class KafkaView:
    """Every record of the Kafka topics whose names start with ``prefix``, from the beginning.

    :meth:`sync` picks up new topics, then reads each partition up to the high watermark it saw
    when the call started. Topics named in ``raw_topics`` or ending in ``.dlq`` (dead letters)
    are not Avro-decoded.
    """

    def __init__(
        self,
        bootstrap: str,
        registry_url: str,
        prefix: str,
        *,
        raw_topics: Iterable[str] = (),
        exclude: Iterable[str] = (),
    ) -> None:
        self.prefix = prefix
        self.raw_topics = set(raw_topics)
        self.exclude = set(exclude)
        self.registry = SchemaRegistryClient({"url": registry_url})
        self._parsed: dict[int, Any] = {}
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"e2e-view-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                # watermark queries queue behind the outstanding fetch on the broker
                # connection: keep fetches short or each query waits up to 500 ms
                "fetch.wait.max.ms": 10,
            }
        )
        self._assigned: set[tuple[str, int]] = set()
        self._positions: dict[tuple[str, int], int] = {}
        self.records: list[Msg] = []
        self.decode_errors: list[str] = []

    def close(self) -> None:
        self._consumer.close()

    def _refresh_assignment(self) -> None:
        metadata = self._consumer.list_topics(timeout=10)
        new: list[TopicPartition] = []
        for name, topic in metadata.topics.items():
            if not name.startswith(self.prefix) or name in self.exclude or topic.error:
                continue
            for partition in topic.partitions:
                if (name, partition) not in self._assigned:
                    self._assigned.add((name, partition))
                    self._positions[(name, partition)] = 0
                    new.append(TopicPartition(name, partition, OFFSET_BEGINNING))
        if new:
            self._consumer.incremental_assign(new)

    def sync(self, timeout_s: float = 10.0) -> list[Msg]:
        """Read everything written so far; return the records new since the last call."""
        self._refresh_assignment()
        ends: dict[tuple[str, int], int] = {}
        for tp in self._assigned:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(*tp), timeout=10, cached=False
            )
            if high > self._positions[tp]:
                ends[tp] = high
        before = len(self.records)
        deadline = time.monotonic() + timeout_s
        while any(self._positions[tp] < end for tp, end in ends.items()):
            if time.monotonic() >= deadline:
                break
            for message in self._consumer.consume(2000, timeout=0.2):
                if message.error() is not None:
                    continue
                tp = (message.topic(), message.partition())
                self._positions[tp] = message.offset() + 1
                self.records.append(self._decode(message))
        return self.records[before:]

    def _decode(self, message: Any) -> Msg:
        raw = message.value()
        topic = message.topic()
        schema_id = None
        value: Any = raw
        if topic not in self.raw_topics and not topic.endswith(".dlq") and raw is not None:
            try:
                assert raw[0] == 0 and len(raw) > 5, "not Confluent wire format"
                schema_id = struct.unpack(">I", raw[1:5])[0]
                parsed = self._parsed.get(schema_id)
                if parsed is None:
                    schema = self.registry.get_schema(schema_id)
                    parsed = parse_schema(json.loads(schema.schema_str))
                    self._parsed[schema_id] = parsed
                value = schemaless_reader(io.BytesIO(raw[5:]), parsed)
            except Exception as exc:  # reported by the tests that care
                self.decode_errors.append(f"{topic}@{message.offset()}: {exc!r}")
        key = message.key()
        return Msg(
            topic=topic,
            partition=message.partition(),
            offset=message.offset(),
            key=key.decode("utf-8", "replace") if key is not None else None,
            headers={k: v for k, v in (message.headers() or [])},
            value=value,
            raw=raw,
            timestamp_ms=message.timestamp()[1],
            schema_id=schema_id,
        )

    # --- views --------------------------------------------------------------------------------
    def on(self, topic: str) -> list[Msg]:
        return [r for r in self.records if r.topic == topic]

    def events(self, exclude: Iterable[str] = ()) -> list[Msg]:
        """Records that carry a Genesys correlation id (the event records)."""
        skip = set(exclude)
        return [r for r in self.records if r.topic not in skip and r.correlation_id is not None]

    def correlation_ids(self, exclude: Iterable[str] = ()) -> Counter[str]:
        return Counter(r.correlation_id for r in self.events(exclude))  # type: ignore[misc]


def read_offsets(bootstrap: str, topic: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The latest committed source offset per key of an offsets topic (JSON key text)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"e2e-offsets-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return {}
        ends = {}
        for partition in metadata.partitions:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s, cached=False
            )
            if high > 0:
                ends[partition] = high
        if not ends:
            return {}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        seen = dict.fromkeys(ends, 0)
        result: dict[str, Any] = {}
        deadline = time.monotonic() + timeout_s
        while any(seen[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.2):
                if message.error() is not None:
                    continue
                seen[message.partition()] = message.offset() + 1
                key = message.key().decode()
                value = message.value()
                if value is None:
                    result.pop(key, None)
                else:
                    result[key] = json.loads(value)
        return result
    finally:
        consumer.close()


class ProduceQuota:
    """A broker-side produce quota (``producer_byte_rate``) on one Kafka client id, so that Kafka
    is slower than the source and the connector falls behind, as with a throttled production
    cluster. Set with the devstack's own Kafka tools; :meth:`remove` (idempotent, also on exit
    of the ``with`` block) deletes it, so no other client of the shared broker is affected."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.active = False

    def _alter(self, *change: str) -> None:
        from connector.devstack import Devstack
        from connector.devstack.fetch import KAFKA_MIN_JAVA, find_java

        java = find_java(KAFKA_MIN_JAVA, purpose="Kafka tools (produce quota)")
        home = Devstack().fetch().kafka_home
        subprocess.run(
            [
                str(java.path),
                "-cp",
                str(home / "libs" / "*"),
                "kafka.admin.ConfigCommand",
                "--bootstrap-server",
                self.bootstrap,
                "--alter",
                *change,
                "--entity-type",
                "clients",
                "--entity-name",
                self.client_id,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def set(self, bytes_per_s: int) -> ProduceQuota:
        self._alter("--add-config", f"producer_byte_rate={bytes_per_s}")
        self.active = True
        return self

    def remove(self) -> None:
        if self.active:
            self._alter("--delete-config", "producer_byte_rate")
            self.active = False

    def __enter__(self) -> ProduceQuota:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


# --- simulator ------------------------------------------------------------------------------------


@dataclass
class ChannelLog:
    """Every channel the simulator created (id -> client) and removed (id -> reason), and
    which removed channels still had an open socket (were in use) when they went."""

    created: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    removed_in_use: dict[str, str] = field(default_factory=dict)

    @classmethod
    def attach(cls, sim: GenesysSimulator) -> ChannelLog:
        """Wrap the registry's create/remove callbacks (on the simulator's loop thread)."""
        log = cls()
        registry = sim.hub.registry

        def install() -> None:
            create, on_removed = registry.create, registry.on_removed

            def logged_create(token: Any) -> Any:
                channel = create(token)
                log.created[channel.id] = channel.client_id
                return channel

            def logged_removed(channel: Any, reason: str) -> None:
                log.removed[channel.id] = reason
                if channel.socket is not None and channel.socket.open:
                    log.removed_in_use[channel.id] = reason
                on_removed(channel, reason)

            registry.create = logged_create  # type: ignore[method-assign]
            registry.on_removed = logged_removed

        sim.call(install)
        return log

    def of_client(self, client_id: str) -> set[str]:
        return {cid for cid, client in self.created.items() if client == client_id}

    def removed_for(self, reason: str) -> dict[str, str]:
        return {cid: why for cid, why in self.removed.items() if why == reason}


def all_topics(sim: GenesysSimulator) -> list[str]:
    """Every queue and user topic of the simulator's contact centre that the connector maps to
    a typed family (4 queues x 3 + 20 users x 4 with the default model)."""
    queue_families = ("queue.conversations", "queue.observations", "queue.users")
    user_families = ("user.presence", "user.routingStatus", "user.activity", "user.conversations")
    out = []
    for family in queue_families:
        out += genesys_topics.expand_template(family, sim.queue_ids)
    for family in user_families:
        out += genesys_topics.expand_template(family, sim.user_ids)
    return out


def ledger_for(
    sim: GenesysSimulator, topics: Iterable[str], channels: set[str] | None = None
) -> list[LedgerEntry]:
    wanted = set(topics)
    return [
        e
        for e in sim.ledger.entries()
        if e.topic in wanted and (channels is None or e.channel_id in channels)
    ]


def sent_events(
    sim: GenesysSimulator, topics: Iterable[str], channels: set[str] | None = None
) -> Counter[str]:
    """Correlation id -> times the simulator wrote it to one of our sockets; never empty (a
    test that saw no event proves nothing, so this fails with the simulator's state)."""
    sent = Counter(e.correlation_id for e in ledger_for(sim, topics, channels))
    assert sent, f"the simulator sent nothing on our topics: {sim.status()} {sim.channels()}"
    return sent


def quiesce(sim: GenesysSimulator) -> None:
    """Stop generating events; the ledger is final once the loop has run the rate change."""
    sim.set_rate(rate=0)
    # set_rate runs on the loop thread and returns after it; publish() is synchronous there,
    # so no event can be ledgered after this call returns.


# --- deployments ----------------------------------------------------------------------------------


def genesys_block(
    name: str,
    sim: GenesysSimulator,
    prefix: str,
    *,
    topics: list[str],
    client: tuple[str, str] = ("demo-client", "demo-secret"),
    routing: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A ``genesys_notifications`` connector block against ``sim`` with per-test Kafka topics."""
    block: dict[str, Any] = {
        "name": name,
        "plugin": "genesys_notifications",
        "tasks.max": 1,
        "key.converter": "string",
        "value.converter": "avro",
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": f"{prefix}.{name}.dlq",
        "genesys.login.url": sim.base_url,
        "genesys.api.url": sim.base_url,
        "genesys.client.id": client[0],
        "genesys.client.secret": client[1],
        "genesys.subscriptions": [{"topics": list(topics)}],
        "topic.routing": routing or f"{prefix}.{name}.{{family}}",
        "gaps.topic": f"{prefix}.{name}.gaps",
        **FAST_CONNECTOR,
    }
    block.update(overrides)
    return block


def write_deployment(
    path: Path,
    *,
    bootstrap: str,
    registry_url: str,
    prefix: str,
    connectors: list[dict[str, Any]],
    **worker: Any,
) -> Path:
    """Write a deployment YAML (worker block with a per-test offsets topic) and return its path."""
    document = {
        "worker": {
            "bootstrap.servers": bootstrap,
            "schema.registry.url": registry_url,
            "offset.storage.topic": f"{prefix}.offsets",
            "offset.storage.partitions": 1,
            "offset.storage.replication.factor": 1,
            "offset.flush.interval.ms": 300,
            "task.shutdown.graceful.timeout.ms": 3000,
            **worker,
        },
        "connectors": connectors,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class InProcessWorker:
    """The real :class:`Worker` on a background thread (``Worker.run`` until stopped)."""

    def __init__(self, path: Path, clock: Callable[[], float] | None = None) -> None:
        self.deployment = load_deployment([path])
        self.worker = Worker(self.deployment, clock=clock) if clock else Worker(self.deployment)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> InProcessWorker:
        self.worker.start()
        self._thread = threading.Thread(
            target=self.worker.run, args=(self._stop,), kwargs={"tick_s": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the worker did not stop within 30 s"
        self._thread = None

    def status(self, connector: str) -> dict[str, Any]:
        for entry in self.worker.status():
            if entry["name"] == connector:
                return entry
        raise KeyError(connector)

    def task_details(self, connector: str, task: int = 0) -> dict[str, Any]:
        tasks = self.status(connector)["tasks"]
        return dict(tasks[task].get("details") or {}) if len(tasks) > task else {}

    def channels(self, connector: str) -> list[dict[str, Any]]:
        return list(self.task_details(connector).get("channels") or [])

    def all_connected(self, connector: str, expected: int) -> bool:
        channels = self.channels(connector)
        return len(channels) == expected and all(c["connected"] for c in channels)


class ConnectorProcess:
    """``python -m connector run FILE`` as a subprocess, logging to a file."""

    def __init__(self, path: Path, log_path: Path) -> None:
        self.path = path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ConnectorProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "connector", "run", str(self.path)],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def signal(self, signum: int, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signum)
        return self.proc.wait(timeout_s)

    def kill(self) -> int:
        return self.signal(signal.SIGKILL)

    def terminate(self) -> int:
        return self.signal(signal.SIGTERM)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_stopped(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- assertions -----------------------------------------------------------------------------------


def epoch_ms(value: Any) -> int | None:
    """Epoch ms of a decoded ``timestamp-millis`` (fastavro gives an aware datetime)."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    raise TypeError(f"not a timestamp: {value!r}")


def gap_window(gap: Msg) -> tuple[int | None, int, str]:
    """``(from_ms, to_ms, reason)`` of a decoded gap record."""
    value = gap.value
    to_ms = epoch_ms(value["to_time"])
    assert to_ms is not None, gap
    return epoch_ms(value["from_time"]), to_ms, value["reason"]


def gap_windows(gaps: Iterable[Msg]) -> dict[str, list[tuple[int | None, int, str]]]:
    """Genesys topic -> [(from_ms, to_ms, reason)] from decoded gap records."""
    windows: dict[str, list[tuple[int | None, int, str]]] = {}
    for gap in gaps:
        windows.setdefault(gap.value["genesys_topic"], []).append(gap_window(gap))
    return windows


def uncovered(
    missing: Iterable[LedgerEntry],
    windows: Mapping[str, list[tuple[int | None, int, str]]],
    reasons: set[str],
    slack_ms: int = GAP_SLACK_MS,
) -> tuple[list[LedgerEntry], int]:
    """Missing events no gap window (of one of ``reasons``) covers, and the largest slack used
    (ms by which a covered event's send time precedes its window's ``from_time``)."""
    bad: list[LedgerEntry] = []
    worst = 0
    for entry in missing:
        sent_ms = entry.sent_ns / 1e6
        best: float | None = None
        for start, end, reason in windows.get(entry.topic, []):
            if reason not in reasons or start is None or sent_ms > end:
                continue
            early = max(0.0, start - sent_ms)
            if early <= slack_ms and (best is None or early < best):
                best = early
        if best is None:
            bad.append(entry)
        else:
            worst = max(worst, int(best))
    return bad, worst
