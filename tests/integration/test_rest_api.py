"""The REST API of a running worker (real Kafka, registry, datagen): every endpoint's shape and
effect, and the two Connect REST clients on PyPI (``kafka-connect-py``, ``kafkaconnect``)
driving every call they offer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from kafka_connect import KafkaConnect
from kafka_helpers import datagen, load, running_worker, wait_until, write_deployment
from kafkaconnect.connect import Connect
from requests.exceptions import HTTPError

from connector.runtime.rest import RestServer
from connector.runtime.worker import Worker

pytestmark = pytest.mark.integration

Names = Callable[[str], str]
DATAGEN_CLASS = "connector.plugins.datagen.connector.DatagenSourceConnector"
# what the installed ``kafkaconnect`` script runs (the module has no __main__ guard)
_KAFKACONNECT_CLI = "import sys; from kafkaconnect.cli import main; sys.exit(main())"


@contextmanager
def serving(
    tmp_path: Path, kafka: str, registry: str, names: Names, **connector: Any
) -> Iterator[tuple[str, Worker, str]]:
    """A worker running one datagen connector (two tasks, two streams) behind its REST API;
    yields (url, worker, connector name)."""
    name, topic = names("rest"), names("rest-topic")
    settings = {
        "tasks_max": 2,
        "datagen_partitions": 2,
        "datagen_records_per_second": 200,
        "datagen_batch_size": 20,
        **connector,
    }
    path = write_deployment(
        tmp_path,
        bootstrap=kafka,
        registry=registry,
        offsets_topic=names("rest-offsets"),
        task_restart_max_retries=0,
        producer_statistics_interval_ms=200,
        connectors=[datagen(name, topic, **settings)],
    )
    with running_worker(load(path)) as worker:
        server = RestServer(worker, "127.0.0.1", 0)
        server.start()
        try:
            yield server.url, worker, name
        finally:
            server.stop()


def _get(url: str) -> Any:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _states(url: str, name: str) -> tuple[str, list[str]]:
    status = _get(f"{url}/connectors/{name}/status")
    return status["connector"]["state"], [t["state"] for t in status["tasks"]]


def _polled(worker: Worker, name: str) -> float:
    total = 0.0
    for metric in worker.metrics.records_polled.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels["connector"] == name:
                total += sample.value
    return total


def _unchanged_for(read: Callable[[], float], seconds: float) -> bool:
    """True if ``read()`` keeps one value for ``seconds`` (an observation window, checked
    throughout, not a sleep standing in for synchronisation)."""
    first = read()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if read() != first:
            return False
        time.sleep(0.05)
    return True


def test_endpoint_shapes_of_a_running_connector(
    kafka_bootstrap: str, schema_registry_url: str, names: Names, tmp_path: Path
) -> None:
    with serving(tmp_path, kafka_bootstrap, schema_registry_url, names) as (url, _worker, name):
        wait_until(lambda: _states(url, name) == ("RUNNING", ["RUNNING"] * 2), 30, "running")
        root = _get(f"{url}/")
        assert set(root) == {"version", "commit", "kafka_cluster_id"}
        assert root["kafka_cluster_id"], root
        health = requests.get(f"{url}/health", timeout=10)
        assert (health.status_code, health.json()["status"]) == (200, "healthy")

        expanded = _get(f"{url}/connectors?expand=status&expand=info")
        assert expanded[name]["status"]["connector"]["state"] == "RUNNING"
        assert expanded[name]["info"]["type"] == "source"
        assert set(_get(f"{url}/connectors?expand=status")[name]) == {"status"}
        info = _get(f"{url}/connectors/{name}")
        assert info["tasks"] == [{"connector": name, "task": 0}, {"connector": name, "task": 1}]
        assert info["config"]["connector.class"] == DATAGEN_CLASS

        tasks = _get(f"{url}/connectors/{name}/tasks")
        assert [t["id"] for t in tasks] == [{"connector": name, "task": n} for n in (0, 1)]
        assert [t["config"] for t in tasks] == [{"streams": "s0"}, {"streams": "s1"}]
        assert set(_get(f"{url}/connectors/{name}/tasks-config")) == {f"{name}-0", f"{name}-1"}
        task = _get(f"{url}/connectors/{name}/tasks/1/status")
        assert (task["id"], task["state"]) == (1, "RUNNING") and task["worker_id"]
        missing = requests.get(f"{url}/connectors/{name}/tasks/7/status", timeout=10)
        assert (missing.status_code, missing.json()["error_code"]) == (404, 404)

        labels = f'connector="{name}",task="0"'
        broker_up = 'kafka_producer_broker_up{broker="127.0.0.1:9092"} 1.0'
        wait_until(
            lambda: broker_up in requests.get(f"{url}/metrics", timeout=10).text,
            10,
            "librdkafka statistics with the broker up",
        )
        scraped = requests.get(f"{url}/metrics", timeout=10).text
        running = f'connector="{name}",status="running",task="0"'
        assert f"kafka_connect_connector_task_status{{{running}}} 1.0" in scraped
        assert f"kafka_connect_source_task_source_record_poll_total{{{labels}}} 0.0" not in scraped

        topic = info["config"]["datagen.topic"]
        assert _get(f"{url}/connectors/{name}/topics") == {name: {"topics": [topic]}}
        reset = requests.put(f"{url}/connectors/{name}/topics/reset", timeout=10)
        assert reset.status_code == 202
        # tracked again from the next records on
        wait_until(
            lambda: _get(f"{url}/connectors/{name}/topics")[name]["topics"] == [topic],
            10,
            "the topic tracked again after the reset",
        )


def test_pause_resume_stop_and_offsets(
    kafka_bootstrap: str, schema_registry_url: str, names: Names, tmp_path: Path
) -> None:
    with serving(tmp_path, kafka_bootstrap, schema_registry_url, names) as (url, worker, name):
        wait_until(lambda: _polled(worker, name) > 0, 30, "records polled")
        assert requests.put(f"{url}/connectors/{name}/pause", timeout=10).status_code == 202
        wait_until(lambda: _states(url, name) == ("PAUSED", ["PAUSED"] * 2), 10, "paused")
        assert _unchanged_for(lambda: _polled(worker, name), 1.0), "a paused task polled"
        patched = requests.patch(
            f"{url}/connectors/{name}/offsets",
            json={"offsets": [{"partition": {"stream": "s0"}, "offset": {"seq": 1}}]},
            timeout=10,
        )
        assert patched.status_code == 400
        assert "STOPPED" in patched.json()["message"]

        assert requests.put(f"{url}/connectors/{name}/resume", timeout=10).status_code == 202
        wait_until(lambda: _states(url, name) == ("RUNNING", ["RUNNING"] * 2), 10, "resumed")
        before = _polled(worker, name)
        wait_until(lambda: _polled(worker, name) > before, 10, "polling again")

        assert requests.put(f"{url}/connectors/{name}/stop", timeout=30).status_code == 204
        assert _states(url, name) == ("STOPPED", [])
        offsets = _get(f"{url}/connectors/{name}/offsets")["offsets"]
        assert sorted(o["partition"]["stream"] for o in offsets) == ["s0", "s1"]
        assert all(isinstance(o["offset"]["seq"], int) for o in offsets)

        patched = requests.patch(
            f"{url}/connectors/{name}/offsets",
            json={
                "offsets": [
                    {"partition": {"stream": "s0"}, "offset": {"seq": 5}},
                    {"partition": {"stream": "s1"}, "offset": None},
                ]
            },
            timeout=10,
        )
        assert patched.status_code == 200, patched.text
        assert "altered successfully" in patched.json()["message"]
        assert _get(f"{url}/connectors/{name}/offsets") == {
            "offsets": [{"partition": {"stream": "s0"}, "offset": {"seq": 5}}]
        }
        bad = requests.patch(f"{url}/connectors/{name}/offsets", json={"x": 1}, timeout=10)
        assert bad.status_code == 400
        deleted = requests.delete(f"{url}/connectors/{name}/offsets", timeout=10)
        assert deleted.status_code == 200 and "reset successfully" in deleted.json()["message"]
        assert _get(f"{url}/connectors/{name}/offsets") == {"offsets": []}

        assert requests.put(f"{url}/connectors/{name}/resume", timeout=30).status_code == 202
        wait_until(lambda: _states(url, name) == ("RUNNING", ["RUNNING"] * 2), 30, "restarted")
        # started over from the reset offsets: the first record of each stream again
        wait_until(
            lambda: len(_get(f"{url}/connectors/{name}/offsets")["offsets"]) == 2,
            30,
            "offsets committed after the restart",
        )


def test_restarts_and_a_failed_task_in_health(
    kafka_bootstrap: str, schema_registry_url: str, names: Names, tmp_path: Path
) -> None:
    # every 3rd record breaks its schema and errors.tolerance is none: the tasks fail, and
    # task.restart.max.retries=0 keeps them FAILED for an operator
    with serving(
        tmp_path, kafka_bootstrap, schema_registry_url, names, datagen_invalid_every=3
    ) as (url, _worker, name):
        wait_until(lambda: _states(url, name)[1] == ["FAILED"] * 2, 30, "failed tasks")
        health = requests.get(f"{url}/health", timeout=10)
        assert health.status_code == 500
        assert health.json()["status"] == "unhealthy"
        assert f"task {name}-0 is FAILED" in health.json()["message"]
        task = _get(f"{url}/connectors/{name}/tasks/0/status")
        assert "Tolerance" in task["trace"] or "Error" in task["trace"]
        scraped = requests.get(f"{url}/metrics", timeout=10).text
        failed = f'connector="{name}",status="failed",task="0"'
        assert f"kafka_connect_connector_task_status{{{failed}}} 1.0" in scraped
        assert f'kafka_connect_worker_connector_failed_task_count{{connector="{name}"}} 2.0' in (
            scraped
        )
        assert (
            f'kafka_connect_task_error_total_record_errors{{connector="{name}",task="0"}} 1.0'
            in (scraped)
        )

        plain = requests.post(f"{url}/connectors/{name}/restart", timeout=30)
        assert plain.status_code == 204 and plain.content == b""
        planned = requests.post(
            f"{url}/connectors/{name}/restart?includeTasks=true&onlyFailed=true", timeout=30
        )
        assert planned.status_code == 202
        body = planned.json()
        # shown FAILED (every task is), but its own instance did not fail: not restarted
        assert body["connector"]["state"] == "FAILED"
        assert [t["state"] for t in body["tasks"]] == ["RESTARTING"] * 2
        restarted = requests.post(f"{url}/connectors/{name}/tasks/1/restart", timeout=30)
        assert restarted.status_code == 204
        gone = requests.post(f"{url}/connectors/{name}/tasks/9/restart", timeout=30)
        assert gone.status_code == 404


def test_kafka_connect_py_drives_every_call(
    kafka_bootstrap: str, schema_registry_url: str, names: Names, tmp_path: Path
) -> None:
    with serving(tmp_path, kafka_bootstrap, schema_registry_url, names) as (url, _worker, name):
        client = KafkaConnect(url=url)
        wait_until(lambda: _states(url, name) == ("RUNNING", ["RUNNING"] * 2), 30, "running")
        assert client.get_cluster_info()["kafka_cluster_id"]
        assert client.list_connectors() == [name]
        assert client.list_connectors(expand="status", state="running")[name]["status"]
        assert name in client.list_connectors(expand="info", pattern="it-rest")
        assert client.get_connector(name)["name"] == name
        assert client.get_connector_config(name)["connector.class"] == DATAGEN_CLASS
        assert client.get_connector_status(name)["connector"]["state"] == "RUNNING"
        assert len(client.list_connector_tasks(name)) == 2
        assert client.get_connector_task_status(name, 0)["state"] in ("RUNNING", "UNASSIGNED")
        assert client.restart_connector_task(name, 0) is None
        assert client.restart_connector(name) is None  # 204
        restarted = client.restart_connector(name, include_tasks=True)
        assert [t["state"] for t in restarted["tasks"]] == ["RESTARTING"] * 2
        assert client.restart_all_connectors() is None
        assert name in client.list_connector_topics(name)
        assert client.reset_connector_topics(name) is None
        assert DATAGEN_CLASS in [p["class"] for p in client.list_connector_plugins()]
        validated = client.validate_connector_config(
            "DatagenSourceConnector", {"name": "x", "datagen.topic": "t"}
        )
        assert validated["error_count"] == 0
        assert client.pause_connector(name) is None
        wait_until(lambda: _states(url, name)[0] == "PAUSED", 10, "paused")
        assert client.resume_connector(name) is None
        assert client.pause_all_connectors() is None
        assert client.resume_all_connectors() is None
        wait_until(lambda: _states(url, name)[0] == "RUNNING", 10, "resumed")
        assert client.stop_connector(name) is None
        assert _states(url, name) == ("STOPPED", [])
        assert client.resume_all_connectors() is None
        assert client.stop_all_connectors() is None
        assert _states(url, name) == ("STOPPED", [])
        # standalone: connectors are defined by files; a clear error, not a crash
        for call in (
            lambda: client.create_connector({"name": "new", "config": {}}),
            lambda: client.update_connector(name, {"datagen.topic": "x"}),
            lambda: client.delete_connector(name),
            lambda: client.delete_all_connectors(),
        ):
            with pytest.raises(HTTPError) as raised:
                call()
            assert raised.value.response.status_code == 400
            assert "standalone mode" in raised.value.response.json()["message"]


def test_kafkaconnect_drives_every_call_through_its_api_and_cli(
    kafka_bootstrap: str, schema_registry_url: str, names: Names, tmp_path: Path
) -> None:
    with serving(tmp_path, kafka_bootstrap, schema_registry_url, names) as (url, _worker, name):
        wait_until(lambda: _states(url, name) == ("RUNNING", ["RUNNING"] * 2), 30, "running")
        connect = Connect(url)
        assert json.loads(connect.list()) == [name]
        assert json.loads(connect.info(name))["name"] == name
        assert json.loads(connect.status(name))["connector"]["state"] == "RUNNING"
        assert json.loads(connect.config(name))["tasks.max"] == "2"
        assert len(json.loads(connect.tasks(name))) == 2
        assert name in json.loads(connect.topics(name))
        assert DATAGEN_CLASS in connect.plugins()
        assert connect.restart(name) == ""  # 204, no body
        assert connect.pause(name) == ""
        wait_until(lambda: _states(url, name)[0] == "PAUSED", 10, "paused")
        assert connect.resume(name) == ""
        config = json.loads(connect.config(name))
        assert json.loads(connect.validate(DATAGEN_CLASS, json.dumps(config)))["error_count"] == 0
        for answer in (
            connect.create_or_update(name, json.dumps(config)),
            connect.validate_and_create(name, json.dumps(config)),
            connect.remove(name),
        ):
            assert json.loads(answer)["error_code"] == 400, answer

        config_file = tmp_path / "connector.json"
        config_file.write_text(json.dumps(config))
        for command in (
            ["list"],
            ["info", name],
            ["status", name],
            ["config", name],
            ["tasks", name],
            ["topics", name],
            ["plugins"],
            ["restart", name],
            ["pause", name],
            ["resume", name],
            ["delete", name],
            ["upload", str(config_file), "--name", name, "--dry-run"],
            ["upload", str(config_file), "--name", name],
        ):
            done = subprocess.run(
                [sys.executable, "-c", _KAFKACONNECT_CLI, "--connect", url, *command],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, (command, done.stderr)
            assert "Traceback" not in done.stderr, (command, done.stderr)
