"""Results as Markdown tables, printed and appended to BENCHMARKS.md."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.scenarios import RunResult

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        kb = 0
    return (
        f"{os.cpu_count()} cores ({model}), {kb / 1024 / 1024:.1f} GiB memory, "
        f"Python {platform.python_version()}"
    )


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=BENCHMARKS.parent,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record_path() -> str:
    """The connector's record path in these runs (they inherit this process's environment)."""
    from connector import native

    return native.describe()


def _n(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def runs_table(runs: list[RunResult]) -> str:
    head = (
        "| Run | Topics | Tasks | Procs | Offered ev/s | Acked ev/s | 1 s min-max | Latency p50 "
        "/ p99 / max ms | CPU s per 1k ev | CPU cores | Peak RSS MB | Sent / in Kafka | Lost / dup "
        "|\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in runs:
        lat = r.latency_ms
        latency = f"{_n(lat['p50'], 1)} / {_n(lat['p99'], 1)} / {_n(lat['max'], 1)}" if lat else "-"
        offered = "flood" if not r.offered else _n(r.offered)
        rows.append(
            f"| {r.label} | {r.topics:,} | {r.tasks} | {r.workers} | {offered}"
            f" | {_n(r.rate)} | {_n(r.rate_min_1s)}-{_n(r.rate_max_1s)} | {latency}"
            f" | {_n(r.cpu_per_1k, 3)} | {_n(r.cpu_util, 2)} | {_n(r.peak_rss_mb)}"
            f" | {r.sent:,} / {r.in_kafka:,} | {r.missing} / {r.duplicates} |"
        )
    return head + "\n".join(rows) + "\n"


def delivery_table(runs: list[RunResult]) -> str:
    """At-least-once against exactly-once: rate, CPU, latency to the log and to a
    read_committed consumer, and what the transactions looked like."""
    head = (
        "| Run | Mode | Offered ev/s | Acked ev/s | CPU s per 1k ev | Append p50 / p99 ms | "
        "Visible (read_committed) p50 / p99 ms | Transactions committed / aborted | "
        "Mean records per transaction | Mean commit ms | Lost / dup |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in runs:
        lat, vis, txn = r.latency_ms, r.visible_ms, r.transactions
        append = f"{_n(lat['p50'], 1)} / {_n(lat['p99'], 1)}" if lat else "-"
        visible = f"{_n(vis['p50'], 1)} / {_n(vis['p99'], 1)}" if vis else "-"
        transactions = (
            f"{_n(txn.get('committed', 0))} / {_n(txn.get('aborted', 0))}" if txn else "-"
        )
        rows.append(
            f"| {r.label} | {r.mode} | {'flood' if not r.offered else _n(r.offered)}"
            f" | {_n(r.rate)} | {_n(r.cpu_per_1k, 3)} | {append} | {visible} | {transactions}"
            f" | {_n(txn.get('mean_size', float('nan')))} | "
            f"{_n(txn.get('mean_commit_ms', float('nan')), 1)} | {r.missing} / {r.duplicates} |"
        )
    return head + "\n".join(rows) + "\n"


def ceilings_table(ceilings: dict[str, Any], best_e2e: float) -> str:
    lines = ["| Ceiling (same machine, same run) | Events/s |", "|---|---|"]
    for label, value in ceilings["rows"]:
        lines.append(f"| {label} | {_n(value)} |")
    lowest_label, lowest = min(ceilings["bounds"], key=lambda item: item[1])
    lines.append("")
    produce = ceilings.get("produce")
    if produce:
        lines.append(
            f"End to end (flood) {_n(best_e2e)} events/s = **{best_e2e / produce:.3f} of the "
            f"librdkafka ceiling** ((a), {_n(produce)} events/s; target at least 0.2)."
        )
    lines.append(
        f"End to end (flood) {_n(best_e2e)} events/s = {best_e2e / lowest:.2f}x the lowest "
        f"ceiling ({lowest_label}, {_n(lowest)} events/s)."
    )
    return "\n".join(lines) + "\n"


def notes(runs: list[RunResult]) -> str:
    out = []
    for r in runs:
        for note in r.notes:
            out.append(f"- {r.label}: {note}")
        if r.thread_cpu_per_1k:
            out.append(
                f"- {r.label}: CPU s per 1k events by thread"
                + (" (first process)" if r.workers > 1 else "")
                + ": "
                + ", ".join(f"{g} {v:.4f}" for g, v in r.thread_cpu_per_1k.items())
            )
        if r.rss_timeline_mb and r.label.startswith("backpressure"):
            out.append(
                f"- {r.label}: connector RSS every second (MB): "
                + ", ".join(f"{v:.0f}" for v in r.rss_timeline_mb)
            )
    return "\n".join(out) + ("\n" if out else "")


def document(
    runs: list[RunResult],
    ceilings: dict[str, Any] | None,
    *,
    command: str,
    load_before: float,
    load_after: float,
    frame_bytes: float,
    value_bytes: float,
) -> str:
    best = next((r.rate for r in runs if r.label == "flood"), 0.0)
    parts = [
        f"### Run of {time.strftime('%Y-%m-%d %H:%M')} UTC (commit {commit()})",
        "",
        f"Machine: {machine()}. Simulator, Kafka, the registry, the connector and the harness "
        f"share these cores. 1-minute load average {load_before:.2f} before, {load_after:.2f} "
        "after (other work on the machine included).",
        f"Command: `{command}`. Frames average {frame_bytes:,.0f} B, Avro values "
        f"{value_bytes:,.0f} B. Record path: {record_path()}.",
        "",
        runs_table(runs),
    ]
    if any(r.mode != "at-least-once" or r.visible_ms for r in runs):
        parts.append(delivery_table(runs))
    if ceilings:
        parts.append(ceilings_table(ceilings, best))
    extra = notes(runs)
    if extra:
        parts.append(extra)
    return "\n".join(parts)


def append(text: str) -> None:
    with BENCHMARKS.open("a") as handle:
        handle.write("\n" + text)
