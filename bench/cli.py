"""``python -m bench``: run the benchmarks, print the tables, optionally record them.

    python -m bench                 # everything (about 6 minutes), printed only
    python -m bench --record        # ... and appended to BENCHMARKS.md (what `make bench` does)
    python -m bench --only e2e,ceilings --e2e-seconds 60
    python -m bench --only e2e --profile   # py-spy profile of the connector during the window
    python -m bench --only eos      # exactly-once against at-least-once, commit latency
    python -m bench --only e2e,rates --exactly-once   # any part with exactly-once enabled

Every run uses a fresh simulator and fresh topics; the devstack is started (and released) as
the test suite does. Runs are bounded in time; a failing run is reported and the next starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import ceilings as bceil
from bench import report
from bench.procstat import load_average
from bench.scenarios import Env, RunResult, run
from bench.sim import Simulator

log = logging.getLogger("bench")
PARTS = ("ceilings", "e2e", "rates", "cost", "backpressure")
EXTRA_PARTS = ("eos",)  # only when asked for with --only


def _wait_for_quiet(limit: float, timeout_s: float) -> float:
    load = load_average()
    deadline = time.monotonic() + timeout_s
    while load > limit and time.monotonic() < deadline:
        log.info("1-minute load average %.2f > %.2f; waiting", load, limit)
        time.sleep(15)
        load = load_average()
    return load


def _devstack() -> tuple[Any, Env]:
    from connector.devstack import Devstack
    from connector.devstack.fetch import KAFKA_MIN_JAVA, find_java

    stack = Devstack()
    endpoints = stack.acquire().endpoints
    java = find_java(KAFKA_MIN_JAVA, purpose="Kafka tools (produce quota)")
    env = Env(
        endpoints.kafka_bootstrap_servers,
        endpoints.schema_registry_url,
        Path(tempfile.mkdtemp(prefix="bench-")),
        java=str(java.path),
        kafka_home=stack.fetch().kafka_home,
    )
    return stack, env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma list of {', '.join(PARTS + EXTRA_PARTS)} (default: all but eos)",
    )
    ap.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    ap.add_argument("--e2e-seconds", type=float, default=30.0, help="flood measuring window")
    ap.add_argument("--warmup", type=float, default=10.0, help="flood warm-up")
    ap.add_argument("--rate-seconds", type=float, default=10.0, help="fixed-rate windows")
    ap.add_argument("--rates", default="1000,5000,20000", help="fixed offered rates, events/s")
    ap.add_argument("--cost-rate", type=float, default=5000.0, help="rate of the cost matrix")
    ap.add_argument("--quota", type=int, default=300_000, help="backpressure: bytes/s quota")
    ap.add_argument("--wait-load", type=float, default=0.0, help="wait for a lower load first")
    ap.add_argument("--wait-load-timeout", type=float, default=600.0)
    ap.add_argument("--profile", action="store_true", help="py-spy the flood run's window")
    ap.add_argument("--json", type=Path, default=None, help="also write raw results here")
    ap.add_argument(
        "--exactly-once",
        action="store_true",
        help="run the connector with exactly.once.source.support: enabled (transaction "
        "boundary --transaction-boundary)",
    )
    ap.add_argument("--transaction-boundary", default="poll", choices=("poll", "interval"))
    ap.add_argument(
        "--transaction-interval-ms",
        type=int,
        default=None,
        help="with --transaction-boundary "
        "interval (default: offset.flush.interval.ms of the bench, 1000)",
    )
    ap.add_argument("--eos-seconds", type=float, default=20.0, help="eos part: each window")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench %(message)s")
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS) - set(EXTRA_PARTS)
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}")
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    stack, env = _devstack()
    load_before = _wait_for_quiet(args.wait_load, args.wait_load_timeout) if args.wait_load else 0.0
    load_before = load_before or load_average()
    runs: list[RunResult] = []
    ceilings: dict[str, Any] | None = None
    sample_bytes = (0.0, 0.0)

    mode: dict[str, Any] = {}
    if args.exactly_once:
        mode = {
            "exactly_once": True,
            "transaction_boundary": args.transaction_boundary,
            "transaction_interval_ms": args.transaction_interval_ms,
        }
    commit_rows: list[dict[str, float]] = []

    def attempt(label: str, **kwargs: Any) -> None:
        kwargs = {**mode, **kwargs}
        log.info("run %s %s", label, kwargs)
        try:
            result = run(env, label, **kwargs)
        except Exception:
            log.error("run %s failed:\n%s", label, traceback.format_exc())
            return
        runs.append(result)
        log.info("%s: %s", label, json.dumps(_brief(result)))

    try:
        if "ceilings" in parts or "e2e" in parts or "eos" in parts:
            ceilings, sample_bytes = _ceilings(env, "ceilings" in parts)
        if "e2e" in parts:
            spy = env.workdir / "flood.pyspy" if args.profile else None
            attempt("flood", warmup_s=args.warmup, measure_s=args.e2e_seconds, pyspy=spy)
            if spy is not None and spy.exists():
                from bench.profile import summarise

                print(summarise(spy))
            attempt(
                "flood-2proc",
                workers=2,
                warmup_s=min(args.warmup, 5.0),
                measure_s=min(args.e2e_seconds, 15.0),
            )
        if "rates" in parts:
            for rate in (float(r) for r in args.rates.split(",")):
                attempt(
                    f"rate-{rate:g}",
                    rate=rate,
                    warmup_s=5,
                    measure_s=args.rate_seconds,
                    latency=True,
                )
            attempt(
                "rate-20000-2proc",
                workers=2,
                rate=20000.0,
                warmup_s=5,
                measure_s=args.rate_seconds,
                latency=True,
            )
        if "cost" in parts:
            for topics, tasks in ((1000, 1), (10, 4), (1000, 4)):
                attempt(
                    f"cost-{topics}t-{tasks}task",
                    topics=topics,
                    tasks=tasks,
                    rate=args.cost_rate,
                    warmup_s=5,
                    measure_s=args.rate_seconds,
                    latency=True,
                )
        if "eos" in parts:
            _eos(attempt, args.warmup, args.eos_seconds)
            from bench.transactions import measure

            log.info("commit latency per transaction size")
            try:
                commit_rows = measure(env.bootstrap, (100, 1000, 10000))
            except Exception:
                log.error("commit latency failed:\n%s", traceback.format_exc())
        if "backpressure" in parts:
            attempt(
                "backpressure",
                warmup_s=5,
                measure_s=max(20.0, args.rate_seconds * 2),
                quota_bytes=args.quota,
            )
    finally:
        stack.release()
    text = report.document(
        runs,
        ceilings if "ceilings" in parts else None,
        command=command,
        load_before=load_before,
        load_after=load_average(),
        frame_bytes=sample_bytes[0],
        value_bytes=sample_bytes[1],
    )
    if commit_rows:
        from bench.transactions import table

        text += "\n" + table(commit_rows)
    print()
    print(text)
    if args.record:
        report.append(text)
        print(f"appended to {report.BENCHMARKS}")
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in runs], indent=1))
    return 0 if runs else 1


def _eos(attempt: Any, warmup_s: float, measure_s: float) -> None:
    """The same flood and the same fixed rate with at-least-once and with exactly-once
    (poll boundary: the default; interval 1 s), alternated so that machine load hits both."""
    alo: dict[str, Any] = {"exactly_once": False}
    poll: dict[str, Any] = {"exactly_once": True, "transaction_boundary": "poll"}
    interval: dict[str, Any] = {
        "exactly_once": True,
        "transaction_boundary": "interval",
        "transaction_interval_ms": 1000,
    }
    flood = {"warmup_s": min(warmup_s, 5.0), "measure_s": measure_s}
    attempt("flood-alo", **alo, **flood)
    attempt("flood-eos-poll", **poll, **flood)
    attempt("flood-eos-interval", **interval, **flood)
    fixed = {"rate": 5000.0, "warmup_s": 5, "measure_s": measure_s, "latency": True}
    attempt("rate-5000-alo", **alo, **fixed, visible_latency=True)
    attempt("rate-5000-eos-poll", **poll, **fixed, visible_latency=True)
    attempt("rate-5000-eos-interval", **interval, **fixed, visible_latency=True)


def _brief(result: RunResult) -> dict[str, Any]:
    keys = ("rate", "cpu_per_1k", "cpu_util", "peak_rss_mb", "sent", "in_kafka", "missing")
    brief = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.as_dict().items()}
    return {k: brief[k] for k in (*keys, "latency_ms", "thread_cpu_per_1k", "notes")}


def _ceilings(env: Env, measure: bool) -> tuple[dict[str, Any], tuple[float, float]]:
    """Capture the frames; measure the ceilings when asked (the sample sizes are reported
    either way)."""
    prefix = f"bench-{env.run_id}-ceiling"
    sim = Simulator(0)
    try:
        sample = bceil.capture(sim, 10, 4000, env.registry, prefix)
        sizes = (sample.mean_frame_bytes, sample.mean_value_bytes)
        if not measure:
            return {}, sizes
        log.info("ceiling (b): websocket-client receive")
        receive = bceil.receive_ceiling(sim, 10, 5.0, frame_reader=False)
        receive_own = bceil.receive_ceiling(sim, 10, 5.0, frame_reader=True)
    finally:
        sim.stop()
    log.info("ceiling (c): fastavro encode")
    fastavro_rate, compiled_rate = bceil.encode_ceiling(sample, 3.0)
    log.info("ceiling (d): record path without I/O")
    pipeline = bceil.pipeline_ceiling(sample, env.registry, 3.0)
    native_pipeline, native_alone = bceil.native_pipeline_ceiling(sample, env.registry, 3.0)
    log.info("ceiling (a): confluent-kafka produce")
    produce = bceil.produce_ceiling(env.bootstrap, sample, 8.0, prefix)
    rows = [
        ("(a) confluent-kafka produce of the encoded records, acked (1 thread)", produce),
        ("(b) websocket-client `recv_data()` of the frames, nothing else", receive),
        ("(b') the connector's FrameReader on the same connection, nothing else", receive_own),
        ("(c) fastavro `schemaless_writer` of the values (parsed schema)", fastavro_rate),
        ("(c') the connector's compiled Avro writer, same values", compiled_rate),
        ("(d) connector record path, no I/O: parse, classify, build, convert", pipeline),
    ]
    if native_pipeline:
        rows.append(("(d') the same on the native path (batches of 500 frames)", native_pipeline))
        rows.append(("(d'') the native work alone: parse, fit, encode (Rust)", native_alone))
    bounds = [("(a) produce", produce), ("(b) receive", receive), ("(c) fastavro", fastavro_rate)]
    return {"rows": rows, "bounds": bounds, "produce": produce}, sizes
