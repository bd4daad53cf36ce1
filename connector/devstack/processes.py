"""Start, find, wait for and stop the devstack's long-running processes.

The services must outlive the command that started them (``connector devstack up`` returns while
Kafka keeps running), so each one runs in its own session and is found again later through a pid
file in the state dir. A pid file alone is not proof: after a crash or a reboot the pid may belong
to an unrelated process. Every process we start therefore carries a marker argument
(``-Dconnector.devstack=<service>@<state dir>``), and we only ever signal a pid whose
``/proc/<pid>/cmdline`` still contains that marker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

# Popen objects of the processes this Python process started. Holding them lets `stop` reap its
# own children (otherwise a killed child stays a zombie that still "exists" for kill(pid, 0)) and
# keeps Popen's destructor from warning that the child is still running.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessSpec:
    """Everything needed to start one service detached."""

    name: str
    argv: Sequence[str]
    cwd: Path
    log_path: Path
    pid_path: Path
    marker: str
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PidRecord:
    """What a pid file holds: the pid, its marker and what the service was started with."""

    pid: int
    marker: str
    started_at: float
    info: Mapping[str, Any]


def start(spec: ProcessSpec) -> PidRecord:
    """Start ``spec`` in a new session, output to its log file, and write its pid file."""
    spec.cwd.mkdir(parents=True, exist_ok=True)
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    if spec.log_path.exists():  # keep one previous log for post-mortems
        spec.log_path.replace(spec.log_path.with_name(spec.log_path.name + ".1"))
    if spec.marker not in spec.argv:
        raise ValueError(f"the marker {spec.marker!r} must be one of the arguments")
    with open(spec.log_path, "wb") as log:
        proc = subprocess.Popen(
            list(spec.argv),
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no SIGINT/SIGHUP from the terminal or CLI that started it
            close_fds=True,
        )
    _children[proc.pid] = proc
    record = PidRecord(
        pid=proc.pid, marker=spec.marker, started_at=time.time(), info=dict(spec.info)
    )
    _write_pid_file(spec.pid_path, record)
    LOG.info("started %s (pid %d), log %s", spec.name, proc.pid, spec.log_path)
    return record


def find_running(pid_path: Path) -> PidRecord | None:
    """The live process a pid file points at, or None (a stale pid file is removed)."""
    record = read_pid_file(pid_path)
    if record is None:
        return None
    if is_ours(record):
        return record
    LOG.info("removing stale pid file %s (pid %d is not ours any more)", pid_path, record.pid)
    pid_path.unlink(missing_ok=True)
    return None


def read_pid_file(pid_path: Path) -> PidRecord | None:
    try:
        raw = json.loads(pid_path.read_text())
        return PidRecord(
            pid=int(raw["pid"]),
            marker=str(raw["marker"]),
            started_at=float(raw.get("started_at", 0.0)),
            info=dict(raw.get("info", {})),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        LOG.warning("ignoring unreadable pid file %s: %s", pid_path, exc)
        return None


def is_ours(record: PidRecord) -> bool:
    """True if ``record.pid`` is alive and its command line still carries our marker."""
    args = cmdline(record.pid)
    return args is not None and record.marker in args and is_alive(record.pid)


def cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:  # zombies and kernel threads have an empty command line
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def is_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie counts as dead)."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def exit_code(pid: int) -> int | None:
    """The exit code of a child this process started and that has exited, else None."""
    child = _children.get(pid)
    return None if child is None else child.poll()


def stop(pid_path: Path, *, name: str, timeout_s: float = 30.0) -> bool:
    """Stop the process of ``pid_path`` if it is ours: SIGTERM, then SIGKILL after ``timeout_s``.

    Returns True if a process was stopped. The pid file is removed either way.
    """
    record = find_running(pid_path)
    if record is None:
        pid_path.unlink(missing_ok=True)
        return False
    started = time.monotonic()
    _signal(record.pid, signal.SIGTERM)
    if not wait_for_exit(record.pid, timeout_s):
        LOG.warning(
            "%s (pid %d) ignored SIGTERM for %.0f s; killing it", name, record.pid, timeout_s
        )
        _signal(record.pid, signal.SIGKILL)
        wait_for_exit(record.pid, 10.0)
    pid_path.unlink(missing_ok=True)
    _children.pop(record.pid, None)
    LOG.info("stopped %s (pid %d) in %.1f s", name, record.pid, time.monotonic() - started)
    return True


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def wait_until(
    probe: Callable[[], bool],
    *,
    deadline: float,
    still_running: Callable[[], bool],
    interval_s: float = 0.5,
) -> bool:
    """Poll ``probe`` until it answers True (-> True), the process dies or ``deadline`` passes.

    ``deadline`` is a ``time.monotonic()`` value, so several services can share one.
    """
    while True:
        if probe():
            return True
        if not still_running() or time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def port_in_use(host: str, port: int) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _write_pid_file(pid_path: Path, record: PidRecord) -> None:
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_path.with_name(pid_path.name + ".tmp")
    tmp.write_text(
        json.dumps(
            {
                "pid": record.pid,
                "marker": record.marker,
                "started_at": record.started_at,
                "info": dict(record.info),
            },
            indent=2,
        )
        + "\n"
    )
    tmp.replace(pid_path)
