"""One benchmark run: simulator -> ``connector run`` -> Kafka, measured from the outside."""

from __future__ import annotations

import itertools
import logging
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench import kafka as bkafka
from bench import sim as bsim
from bench.connector import ConnectorProcess, deployment, kafka_topics, wait_for
from bench.procstat import (
    Sampler,
    load_average,
    python_thread_names,
    thread_cpu,
    thread_group,
)

log = logging.getLogger("bench")


@dataclass
class Env:
    """Where the benchmarks run."""

    bootstrap: str
    registry: str
    workdir: Path
    java: str | None = None
    kafka_home: Path | None = None
    run_id: str = field(default_factory=lambda: time.strftime("%H%M%S"))


@dataclass
class RunResult:
    label: str
    topics: int
    tasks: int
    offered: float  # events/s asked of the simulator; 0 = flood as fast as possible
    seconds: float = 0.0
    rate: float = 0.0  # acked events/s over the window
    rate_min_1s: float = 0.0
    rate_max_1s: float = 0.0
    cpu_per_1k: float = 0.0  # connector CPU seconds per 1,000 acked events
    cpu_util: float = 0.0  # connector CPU seconds per wall second
    peak_rss_mb: float = 0.0  # VmHWM of the connector process
    window_rss_mb: float = 0.0  # max VmRSS sampled in the window
    rss_timeline_mb: list[float] = field(default_factory=list)
    sent: int = 0  # ledger total
    in_kafka: int = 0
    missing: int = 0
    duplicates: int = 0
    unknown: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50/p99/max/n
    mean_frame_bytes: float = 0.0
    load_before: float = 0.0
    notes: list[str] = field(default_factory=list)
    workers: int = 1  # connector processes
    mode: str = "at-least-once"  # or "exactly-once (<boundary>)"
    visible_ms: dict[str, float] = field(default_factory=dict)  # send -> read_committed
    transactions: dict[str, float] = field(default_factory=dict)  # from the worker's /metrics
    # CPU seconds per 1,000 acked events by thread group (the first connector process)
    thread_cpu_per_1k: dict[str, float] = field(default_factory=dict)

    @property
    def lossless(self) -> bool:
        return self.missing == 0 and self.sent > 0 and self.in_kafka >= self.sent

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def set_quota(env: Env, client_id: str, byte_rate: int | None) -> None:
    """Broker-side produce quota of ``client_id`` (``None`` removes it)."""
    assert env.java and env.kafka_home, "the devstack's java and Kafka home are needed"
    change = (
        ["--add-config", f"producer_byte_rate={byte_rate}"]
        if byte_rate
        else ["--delete-config", "producer_byte_rate"]
    )
    subprocess.run(
        [
            env.java,
            "-cp",
            str(env.kafka_home / "libs" / "*"),
            "kafka.admin.ConfigCommand",
            "--bootstrap-server",
            env.bootstrap,
            "--alter",
            *change,
            "--entity-type",
            "clients",
            "--entity-name",
            client_id,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def run(
    env: Env,
    label: str,
    *,
    topics: int = 10,
    tasks: int = 1,
    workers: int = 1,
    rate: float = 0.0,
    warmup_s: float = 10.0,
    measure_s: float = 30.0,
    latency: bool = False,
    quota_bytes: int | None = None,
    producer: dict[str, Any] | None = None,
    profile: str | None = None,
    pyspy: Path | None = None,
    offset_flush_ms: int = 1000,
    keep_topics: bool = False,
    exactly_once: bool = False,
    transaction_boundary: str = "poll",
    transaction_interval_ms: int | None = None,
    visible_latency: bool = False,
) -> RunResult:
    """Run the connector against a fresh simulator and fresh topics; measure; verify.

    ``workers`` > 1 runs that many ``connector run`` processes, each with its own connector
    (its own channel) and a share of the Genesys topics, writing to the same Kafka topics;
    CPU is then summed over the processes and the peak RSS is that of the largest. The run's
    topics (``bench-<time>-<label>.*``) are deleted afterwards unless ``keep_topics``.
    """
    result = RunResult(label, topics, tasks, rate, load_before=load_average())
    result.workers = workers
    if exactly_once:
        result.mode = f"exactly-once ({transaction_boundary})"
    rest_ports = [free_port() if exactly_once else None for _ in range(workers)]
    name = f"bench-{env.run_id}-{label}"
    genesys = bsim.conversation_topics(topics)
    targets = kafka_topics(name, genesys)
    k = bkafka.Kafka(env.bootstrap)
    k.create_topics([*targets, f"{name}.gaps", f"{name}.dlq"])
    client_id = f"{name}-producer"
    if quota_bytes:
        set_quota(env, client_id, quota_bytes)
    sim = bsim.Simulator(rate)
    procs: list[ConnectorProcess] = []
    samplers: list[Sampler] = []
    visible: bkafka.VisibleTimes | None = None
    try:
        for index in range(workers):
            config = deployment(
                name=name if workers == 1 else f"{name}-w{index}",
                routing=name,
                sim_url=sim.url,
                bootstrap=env.bootstrap,
                registry=env.registry,
                topics=genesys[index::workers],
                tasks=tasks,
                producer={"client.id": client_id, **(producer or {})},
                offset_flush_ms=offset_flush_ms,
                exactly_once=exactly_once,
                transaction_boundary=transaction_boundary,
                transaction_interval_ms=transaction_interval_ms,
                rest_port=rest_ports[index],
            )
            procs.append(ConnectorProcess(config, env.workdir, profile=profile))
            samplers.append(Sampler(procs[-1].pid).start())

        def dead() -> ConnectorProcess | None:
            return next((p for p in procs if not p.alive()), None)

        def acked() -> int:
            return k.acked(targets, committed=exactly_once)

        if not wait_for(lambda: acked() > 0 or dead() is not None, 60):
            raise RuntimeError(f"{label}: no record reached Kafka in 60 s:\n{procs[0].log_tail()}")
        exited = dead()
        if exited is not None:
            raise RuntimeError(f"{label}: a connector exited:\n{exited.log_tail()}")
        time.sleep(warmup_s)
        spy = None
        if pyspy is not None:
            spy = subprocess.Popen(
                ["py-spy", "record", "-p", str(procs[0].pid), "-d", str(int(measure_s))]
                + ["-r", "200", "-f", "raw", "-o", str(pyspy), "--threads"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        if visible_latency:
            visible = bkafka.VisibleTimes(env.bootstrap, targets, sim.cids.event_id)
        names = python_thread_names(procs[0].pid)
        threads0 = thread_cpu(procs[0].pid)
        t0, a0, l0 = time.monotonic(), acked(), sim.ledger_total()
        timeline = [(t0, a0)]
        while time.monotonic() - t0 < measure_s:
            time.sleep(min(1.0, measure_s - (time.monotonic() - t0)))
            timeline.append((time.monotonic(), acked()))
        t1, a1 = timeline[-1]
        l1 = sim.ledger_total()
        threads1 = thread_cpu(procs[0].pid)
        per_group: dict[str, float] = {}
        for tid, (comm, cpu_s) in threads1.items():
            group = thread_group(names.get(tid, comm))
            used = cpu_s - threads0.get(tid, (comm, 0.0))[1]
            per_group[group] = per_group.get(group, 0.0) + used
        result.thread_cpu_per_1k = {
            g: round(c / max(1, a1 - a0) * 1000 * workers, 4) for g, c in sorted(per_group.items())
        }
        result.seconds = t1 - t0
        result.rate = (a1 - a0) / (t1 - t0)
        per_second = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(timeline)]
        result.rate_min_1s, result.rate_max_1s = min(per_second), max(per_second)
        cpu = sum(sampler.cpu_between(t0, t1) for sampler in samplers)
        result.cpu_util = cpu / (t1 - t0)
        result.cpu_per_1k = cpu / max(1, a1 - a0) * 1000
        result.window_rss_mb = max(s.rss_max_between(t0, t1) for s in samplers) / 1024
        if spy is not None:
            spy.wait(60)
        if exactly_once:
            result.transactions = _transaction_metrics(rest_ports)
        # Stop the source, let everything sent reach Kafka (or give up), then stop the connector.
        sim.pause()
        if quota_bytes:
            set_quota(env, client_id, None)
            quota_bytes = None
        time.sleep(0.5)
        result.sent = sim.ledger_total()
        if not wait_for(lambda: acked() >= result.sent, 120, 0.5):
            result.notes.append("not everything sent reached Kafka within 120 s of the pause")
        if visible is not None:
            visible.stop()
        result.in_kafka = acked()
        result.peak_rss_mb = max(sampler.peak_kb for sampler in samplers) / 1024
        result.rss_timeline_mb = [round(x[2] / 1024, 1) for x in samplers[0].samples[::4]]
        for sampler in samplers:
            sampler.stop()
        for proc in procs:
            code = proc.stop()
            if code != 0:
                result.notes.append(f"connector exit code {code}")
        window = None
        sent_ns: dict[int, int] = {}
        if latency and l1 > l0:
            sent_ns = sim.ledger_sent_ns(l0, l1)
            window = (min(sent_ns), max(sent_ns) + 1)
        back = bkafka.read_back(
            env.bootstrap,
            targets,
            result.in_kafka,
            result.sent,
            sim.cids.event_id,
            bsim.FLOOD_FIRST_ID,
            window,
        )
        result.missing = back.ids.count(0)
        result.duplicates = sum(c - 1 for c in back.ids if c > 1)
        result.unknown = back.unknown
        if exactly_once:  # offsets counted transaction markers too: the records are those read
            result.in_kafka = back.records
        if back.records != result.in_kafka:
            result.notes.append(f"read back {back.records} of {result.in_kafka} records")
        if visible is not None and sent_ns:
            seen = visible.received_ns
            lat = [(seen[eid] - ns) / 1e6 for eid, ns in sent_ns.items() if eid in seen]
            result.visible_ms = {
                "p50": _percentile(lat, 0.50),
                "p99": _percentile(lat, 0.99),
                "max": max(lat) if lat else float("nan"),
                "n": len(lat),
            }
        if sent_ns:
            lat = [
                (back.append_ms[eid] * 1_000_000 - ns) / 1e6
                for eid, ns in sent_ns.items()
                if eid in back.append_ms
            ]
            result.latency_ms = {
                "p50": _percentile(lat, 0.50),
                "p99": _percentile(lat, 0.99),
                "max": max(lat) if lat else float("nan"),
                "mean": statistics.fmean(lat) if lat else float("nan"),
                "n": len(lat),
            }
        return result
    finally:
        for sampler in samplers:
            sampler.stop()
        for proc in procs:
            if proc.alive():
                proc.stop()
        if quota_bytes:
            try:
                set_quota(env, client_id, None)
            except Exception:  # best effort; the client id is unique to this run
                log.warning("could not remove the quota of %s", client_id)
        sim.stop()
        if visible is not None:
            visible.stop()
        if not keep_topics:
            k.delete_prefixed(f"{name}.")
        k.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _transaction_metrics(ports: list[int | None]) -> dict[str, float]:
    """Transactions committed and aborted, mean size and commit time, summed over the
    connector processes (their REST ``/metrics``)."""
    totals: dict[str, float] = {}
    for port in ports:
        if port is None:
            continue
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException as exc:
            log.warning("no /metrics on port %s: %s", port, exc)
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name
                if name == "connector_source_transaction_total":
                    key = sample.labels.get("outcome", "")
                elif name in (
                    "connector_source_transaction_size_sum",
                    "connector_source_transaction_size_count",
                    "connector_source_transaction_commit_seconds_sum",
                ):
                    key = name.removeprefix("connector_source_transaction_")
                else:
                    continue
                totals[key] = totals.get(key, 0.0) + sample.value
    count = totals.get("size_count", 0.0)
    if count:
        totals["mean_size"] = totals["size_sum"] / count
        totals["mean_commit_ms"] = totals["commit_seconds_sum"] / count * 1000
    return totals
