"""The operator's command line: distinct exit codes with a one-line cause instead of a
traceback, ``--log-format json`` with connector and task, and ``connector status``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kafka_helpers import datagen, wait_until, write_deployment

pytestmark = pytest.mark.integration

Names = Callable[[str], str]


def _connector(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_kafka_unreachable_at_start_is_one_line_and_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "unreachable.yaml"
    document = {
        "worker": {"bootstrap.servers": "127.0.0.1:1", "schema.registry.url": "mock://x"},
        "connectors": [{"name": "d", "plugin": "datagen", "datagen.topic": "t"}],
    }
    path.write_text(yaml.safe_dump(document))
    done = _connector("run", str(path))
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "rdkafka" not in done.stderr and "%3|" not in done.stderr  # no raw librdkafka lines
    causes = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert causes == [
        "connector: cannot start: Kafka at 127.0.0.1:1 is unusable: "
        "Failed to get metadata: Local: Broker transport failure"
    ]


def test_usage_errors_exit_64_without_a_traceback() -> None:
    done = _connector("--log-level", "LOUD", "plugins", timeout=30)
    assert done.returncode == 64
    assert "unknown log level 'LOUD'" in done.stderr and "Traceback" not in done.stderr
    assert _connector("no-such-command", timeout=30).returncode == 64
    unreachable = _connector("status", "--url", f"http://127.0.0.1:{_free_port()}", timeout=30)
    assert unreachable.returncode == 3 and "Traceback" not in unreachable.stderr


def test_json_logs_and_the_status_table_of_a_running_worker(
    kafka_bootstrap: str, schema_registry_url: str, names: Names, tmp_path: Path
) -> None:
    name, port = names("cli"), _free_port()
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=names("cli-offsets"),
        rest_port=port,
        connectors=[
            datagen(name, names("cli-topic"), tasks_max=2, datagen_partitions=2),
            datagen(names("cli-bad"), names("cli-bad-topic"), datagen_invalid_every=2),
        ],
        task_restart_max_retries=0,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "--log-format", "json", "run", str(path)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:

        def table() -> str | None:
            done = _connector("status", str(path), timeout=30)
            running = done.returncode == 0 and done.stdout.count(" RUNNING ") == 3  # bad: FAILED
            return done.stdout if running and " FAILED " in done.stdout else None

        output = wait_until(table, 60, "the connectors in the status table", 0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    rows = [line.split() for line in output.splitlines()]
    assert rows[0] == ["CONNECTOR", "TASK", "STATE", "WORKER", "TRACE"]
    assert [name, "-", "RUNNING"] == rows[1 + [r[0] for r in rows[1:]].index(name)][:3]
    assert any(r[1] == "0" and r[2] == "FAILED" and "Tolerance" in " ".join(r) for r in rows)
    assert process.returncode == 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(entries) >= len(lines) - 3, stderr[-2000:]  # only the plain CLI notices are not
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    tasks = [e for e in entries if e.get("connector") == name and "task" in e]
    assert {e["task"] for e in tasks} == {0, 1}, entries[:20]
