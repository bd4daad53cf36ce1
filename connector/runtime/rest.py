"""A Kafka Connect-compatible, read-only REST API: ``GET /``, ``/connectors``,
``/connectors/{name}``, ``/connectors/{name}/status``, ``/connectors/{name}/tasks``,
``/connector-plugins`` and Prometheus ``/metrics``. Secrets are never returned: only the
plugin config's public form (pydantic ``SecretStr`` renders as ``**********``)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import connector
from connector.plugins.discovery import discover


class RestServer:
    def __init__(self, worker: Any, host: str, port: int) -> None:
        self._worker = worker
        handler = type("Handler", (_Handler,), {"worker": worker})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    worker: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        statuses = {s["name"]: s for s in self.worker.status()}
        deployments = {c.name: c for c in self.worker.deployment.connectors}
        if parts == ["metrics"]:
            body = generate_latest(self.worker.metrics.registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if not parts:
            return self._json(
                200, {"version": connector.__version__, "commit": "", "kafka_cluster_id": ""}
            )
        if parts == ["connectors"]:
            return self._json(200, sorted(statuses))
        if parts == ["connector-plugins"]:
            return self._json(
                200,
                [
                    {"class": e.target, "type": "source", "version": e.connector_class.spec.version}
                    for e in discover().values()
                    if e.connector_class is not None
                ],
            )
        if len(parts) >= 2 and parts[0] == "connectors":
            name = parts[1]
            if name not in statuses:
                return self._json(
                    404, {"error_code": 404, "message": f"Connector {name} not found"}
                )
            deployment = deployments[name]
            config = {
                "name": name,
                "connector.class": deployment.connector_config.plugin,
                "tasks.max": str(deployment.connector_config.tasks_max),
                **{
                    k: str(v)
                    for k, v in deployment.plugin_config.model_dump(
                        by_alias=True, mode="json"
                    ).items()
                },
            }
            if len(parts) == 2:
                tasks = [{"connector": name, "task": t["id"]} for t in statuses[name]["tasks"]]
                return self._json(
                    200, {"name": name, "config": config, "tasks": tasks, "type": "source"}
                )
            if parts[2] == "status":
                return self._json(200, statuses[name])
            if parts[2] == "config":
                return self._json(200, config)
            if parts[2] == "tasks":
                return self._json(
                    200,
                    [{"id": {"connector": name, "task": t["id"]}} for t in statuses[name]["tasks"]],
                )
        self._json(404, {"error_code": 404, "message": "Not found"})

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
