"""The dashboard and the alert rules against a real Prometheus (Debian's ``prometheus``
package, installed by .ci/run) scraping a running worker: a Genesys connector on the simulator
(with a dropped socket, so a gap is reported) and a datagen connector whose task fails.

``promtool check rules`` passes; every dashboard query returns data; every series an alert
expression uses exists; the task-failed alert becomes active."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from e2e_helpers import (
    REPO_ROOT,
    InProcessWorker,
    all_topics,
    genesys_block,
    wait_until,
    write_deployment,
)

from connector.runtime.rest import RestServer
from connector.simulator import GenesysSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "connector.json"
_METRIC = re.compile(r"\b((?:kafka_connect|kafka_producer|connector_plugin)_[a-z0-9_]+)")


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (apt-get install prometheus; .ci/run does)"
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_promtool_accepts_the_alert_rules_and_the_compose_config(tmp_path: Path) -> None:
    checked = subprocess.run(
        [_tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout
    # docker-compose's config, with the rules where the compose file mounts them
    config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    config["rule_files"] = [str(ALERTS)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [_tool("promtool"), "check", "config", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start Prometheus scraping a ``/metrics`` target every second; yields its URL."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = _free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "connector", "static_configs": [{"targets": [target]}]}
            ],
        }
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        processes.append(
            subprocess.Popen(
                [
                    _tool("prometheus"),
                    f"--config.file={path}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / "prometheus.log").open("wb"),
            )
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(url), 30, "Prometheus to start")
        return url

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=20)


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    response = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_every_dashboard_query_and_alert_series_has_data_from_a_running_worker(
    simulator: Callable[..., GenesysSimulator],
    prometheus: Callable[[str], str],
    prefix: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    schema_registry_url: str,
) -> None:
    sim = simulator(rate=50)
    presence = [t for t in all_topics(sim) if t.endswith(".presence")][:1]
    genesys = genesys_block("watched", sim, prefix, topics=presence)
    failing = {
        "name": "failing",
        "plugin": "datagen",
        "datagen.topic": f"{prefix}.failing",
        "datagen.invalid.every": 2,
    }
    path = write_deployment(
        tmp_path / "observed.yaml",
        bootstrap=kafka_bootstrap,
        registry_url=schema_registry_url,
        prefix=prefix,
        connectors=[genesys, failing],
        **{"task.restart.max.retries": 0, "producer.statistics.interval.ms": 500},
    )
    running = InProcessWorker(path).start()
    rest = RestServer(running.worker, "127.0.0.1", 0)
    rest.start()
    try:
        wait_until(lambda: running.all_connected("watched", 1), 30, "the channel to connect")
        channel_id = running.channels("watched")[0]["channel_id"]
        sim.faults.drop(channel_id)  # a lost socket: a gap window is reported after reconnecting
        wait_until(
            lambda: running.task_details("watched").get("gaps_reported"), 30, "a gap reported"
        )
        url = prometheus(rest.url.removeprefix("http://"))
        wait_until(lambda: _query(url, 'up{job="connector"} == 1'), 30, "the first scrape")

        dashboard = json.loads(DASHBOARD.read_text())
        queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
        assert len(queries) >= 20
        for expr in queries:  # rate() and increase() need two scrapes: poll, do not sleep
            wait_until(lambda expr=expr: _query(url, expr), 30, f"data for {expr}")

        rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
        used = {name for rule in rules for name in _METRIC.findall(rule["expr"])}
        assert len(used) >= 10
        for name in sorted(used):
            assert _query(url, f"count({name})"), f"no series {name} for the alert rules"

        active = wait_until(
            lambda: _query(url, 'ALERTS{alertname="ConnectorTaskFailed",connector="failing"}'),
            30,
            "the task-failed alert to become active",
        )
        assert active[0]["metric"]["alertstate"] in ("pending", "firing")
        gap_seconds = _query(url, 'connector_plugin_gap_seconds_total{connector="watched"}')
        assert float(gap_seconds[0]["value"][1]) > 0
        latency = "kafka_connect_source_task_record_e2e_latency_seconds"
        observed = _query(url, f'{latency}_count{{connector="watched"}}')
        assert float(observed[0]["value"][1]) > 0
        p99 = _query(
            url, f'histogram_quantile(0.99, sum by (le) ({latency}_bucket{{connector="watched"}}))'
        )
        assert 0 < float(p99[0]["value"][1]) < 10, p99
    finally:
        rest.stop()
        running.stop()
