"""CPU time and memory of a process from /proc (psutil is not needed)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of every thread of ``pid`` so far."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        raw = handle.read()
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """``{tid: (comm, cpu_s)}`` of every thread of ``pid`` now (user + system seconds)."""
    found: dict[int, tuple[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue  # the thread ended
        comm = raw[raw.index(b"(") + 1 : raw.rindex(b")")].decode(errors="replace")
        fields = raw[raw.rindex(b")") + 2 :].split()
        found[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / _TICKS)
    return found


def python_thread_names(pid: int) -> dict[int, str]:
    """``{tid: Python thread name}`` from ``py-spy dump`` (the bench extra), or ``{}``."""
    import json
    import subprocess

    try:
        out = subprocess.run(
            ["py-spy", "dump", "--pid", str(pid), "--json"],
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout
        return {int(t["os_thread_id"]): str(t["thread_name"]) for t in json.loads(out)}
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
        return {}


THREAD_GROUPS = (
    ("task", ("task-",)),
    ("receiver", ("genesys-ws", "ws-")),
    ("producer poller", ("producer-poller",)),
    ("librdkafka", ("rdk:",)),
)


def thread_group(name: str) -> str:
    """The group of a thread for the per-thread CPU figures (``other`` for the rest)."""
    for group, prefixes in THREAD_GROUPS:
        if name.startswith(prefixes):
            return group
    return "other"


def memory_kb(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` in kB: resident now and its peak since the process started."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def load_average() -> float:
    """The 1-minute load average."""
    with open("/proc/loadavg") as handle:
        return float(handle.read().split()[0])


@dataclass
class Sampler:
    """Samples ``(monotonic, cpu_s, rss_kb)`` of ``pid`` every ``interval_s`` on a thread."""

    pid: int
    interval_s: float = 0.25
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    peak_kb: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procstat", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss, hwm = memory_kb(self.pid)
                self.samples.append((time.monotonic(), cpu_seconds(self.pid), rss))
                self.peak_kb = max(self.peak_kb, hwm)
            except (OSError, ValueError, IndexError):
                return  # the process is gone
            self._stop.wait(self.interval_s)

    def cpu_between(self, t0: float, t1: float) -> float:
        """CPU seconds used between two monotonic instants (nearest samples)."""
        return self._at(t1)[1] - self._at(t0)[1]

    def rss_max_between(self, t0: float, t1: float) -> int:
        return max((s[2] for s in self.samples if t0 <= s[0] <= t1), default=0)

    def _at(self, t: float) -> tuple[float, float, int]:
        return min(self.samples, key=lambda s: abs(s[0] - t))
