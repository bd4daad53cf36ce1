"""The Dockerfile, docker-compose.yml and the Prometheus/Grafana files cannot run here (no
Docker): check what can be checked. Every file parses, every path and command they refer to
exists, and the pieces agree with each other (ports, mounts, datasource, deployment)."""

from __future__ import annotations

import fnmatch
import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.config.validate import load_deployment
from connector.runtime.rest import create_app
from connector.runtime.worker import Worker

ROOT = Path(__file__).resolve().parents[2]


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose


def test_the_image_is_slim_non_root_and_copies_only_what_exists() -> None:
    instructions = _dockerfile()
    stages = [args for op, args in instructions if op == "FROM"]
    assert stages and all("-slim" in stage for stage in stages)
    final = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    users = [args for op, args in instructions[final:] if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for op, args in instructions:
        if op != "COPY" or args.startswith("--from"):
            continue
        *sources, _ = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert not any(fnmatch.fnmatch(source, p) for p in ignored), f"{source} is ignored"


def test_the_image_runs_the_projects_command_on_the_mounted_deployment() -> None:
    instructions = dict(_dockerfile())
    entrypoint = json.loads(instructions["ENTRYPOINT"])
    command = json.loads(instructions["CMD"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint[0] in scripts
    assert command[0] == "run"
    mounts = {
        v.split(":")[1]: v.split(":")[0] for v in _compose()["services"]["connector"]["volumes"]
    }
    assert command[1] in mounts, "the deployment the image runs is mounted by the compose file"
    assert "/health" in instructions["HEALTHCHECK"]


def test_compose_has_every_service_and_every_mounted_path_exists() -> None:
    services = _compose()["services"]
    assert {"kafka", "registry", "connector", "prometheus", "grafana"} <= set(services)
    assert (ROOT / services["connector"]["build"] / "Dockerfile").is_file()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            assert (ROOT / host).exists(), f"{name} mounts {host}, which does not exist"


def test_the_compose_deployment_validates_and_listens_where_it_is_scraped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = _compose()["services"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["connector"]["volumes"]}
    deployment = load_deployment([ROOT / mounts["/etc/connector/deployment.yaml"]], environ={})
    host, port = deployment.worker.rest_address() or ("", 0)
    assert (host, port) == ("0.0.0.0", 8083)
    assert f"{port}:{port}" in services["connector"]["ports"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"connector:{port}"]
    assert scrape["scrape_configs"][0]["metrics_path"] == "/metrics"
    prometheus_mounts = {
        v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]
    }
    for rule_file in scrape["rule_files"]:
        assert prometheus_mounts[rule_file] == "./deploy/prometheus/alerts.yml"
    paths = {route.path for route in create_app(Worker(deployment)).routes}  # type: ignore[attr-defined]
    assert {"/metrics", "/health"} <= paths


def test_grafana_provisioning_points_at_the_dashboard_and_its_datasource() -> None:
    services = _compose()["services"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    providers = yaml.safe_load((provisioning / "dashboards/connector.yml").read_text())
    dashboards_path = providers["providers"][0]["options"]["path"]
    dashboards = ROOT / mounts[dashboards_path]
    dashboard = json.loads((dashboards / "connector.json").read_text())
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])
