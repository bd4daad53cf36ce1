"""Kafka Connect's REST API (paths, verbs, status codes and JSON shapes) on FastAPI + uvicorn.

The server runs on its own thread beside the worker's; handlers are plain functions (FastAPI
runs them in its thread pool), so a slow operation (stopping a connector waits for its tasks'
final commit) never blocks other requests. Every 4xx/5xx is Connect's JSON error
``{"error_code", "message"}``; ``/openapi.json`` describes the API.

Standalone mode: connectors come from deployment files, so creating, reconfiguring and
deleting a connector answer 400 saying so (distributed mode will write the config topic).
Secrets never leave: configs show ``[hidden]`` for secret keys and every string in every
response passes through the deployment's redactor (traces quote URLs and messages).
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import uvicorn
from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

import connector
from connector.api import OffsetStoreError
from connector.config.models import CONNECTOR_CONFIG_KEYS
from connector.config.redaction import HIDDEN, Redactor
from connector.config.reference import (
    connector_keys,
    flat_config,
    model_keys,
    parse_flat_value,
    to_connect_string,
)
from connector.config.validate import validate_connector_map
from connector.plugins.discovery import PluginEntry, class_name, discover, find_plugin
from connector.runtime.status import State
from connector.runtime.worker import (
    ConnectorNotFoundError,
    ConnectorStateError,
    TaskNotFoundError,
    Worker,
)

logger = logging.getLogger(__name__)

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

STANDALONE_MESSAGE = (
    "This worker runs in standalone mode: its connectors are defined by its deployment files "
    "({files}). Create, change or delete a connector by editing those files and restarting "
    "the worker (`connector validate` checks them first)."
)

_ALTERED = (
    "The Connect framework-managed offsets for this connector have been {verb} successfully. "
    "However, if this connector manages offsets externally, they will need to be manually "
    "{verb} in the system that the connector uses."
)

# Connect's (log4j) level names <-> Python's.
_TO_PYTHON_LEVEL = {
    "OFF": logging.CRITICAL + 10,
    "FATAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "TRACE": logging.DEBUG,
}
_TO_CONNECT_LEVEL = {
    logging.CRITICAL + 10: "OFF",
    logging.CRITICAL: "FATAL",
    logging.ERROR: "ERROR",
    logging.WARNING: "WARN",
    logging.INFO: "INFO",
    logging.DEBUG: "DEBUG",
}


class ConnectError(Exception):
    """An error answered as Connect's ``{"error_code", "message"}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error_code": status, "message": message}, status_code=status)


def _scrub(value: Any, redact: Callable[[str], str]) -> Any:
    """Every string of a JSON value through ``redact``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, redact) for v in value]
    return value


def _connect_level(level: int) -> str:
    return _TO_CONNECT_LEVEL.get(level, logging.getLevelName(level))


class _LoggerLevels:
    """Connect's ``/admin/loggers`` over Python logging (KIP-495): levels and when an
    operator last changed them."""

    def __init__(self) -> None:
        self._modified: dict[str, int] = {}

    def all(self) -> dict[str, dict[str, Any]]:
        names = ["root"] + sorted(
            name
            for name, known in logging.Logger.manager.loggerDict.items()
            if isinstance(known, logging.Logger) and known.level != logging.NOTSET
        )
        return {name: self.one(name) for name in names}

    def one(self, name: str) -> dict[str, Any]:
        if name != "root" and name not in logging.Logger.manager.loggerDict:
            raise ConnectError(404, f"Logger {name} not found.")
        target = logging.getLogger() if name == "root" else logging.getLogger(name)
        return {
            "level": _connect_level(target.getEffectiveLevel()),
            "last_modified": self._modified.get(name),
        }

    def set(self, name: str, level_name: str) -> list[str]:
        """Set ``name`` and every descendant that has a level of its own; return their names
        (Connect's response to ``PUT /admin/loggers/{name}``)."""
        level = _TO_PYTHON_LEVEL.get(level_name.upper())
        if level is None:
            raise ConnectError(
                400, f"Invalid log level '{level_name}'. Valid levels: {sorted(_TO_PYTHON_LEVEL)}"
            )
        now = int(time.time() * 1000)
        affected = [name]
        if name == "root":
            logging.getLogger().setLevel(level)
            affected += [n for n in self.all() if n != "root"]
        else:
            logging.getLogger(name).setLevel(level)
            affected += [
                n
                for n, known in logging.Logger.manager.loggerDict.items()
                if n.startswith(name + ".")
                and isinstance(known, logging.Logger)
                and known.level != logging.NOTSET
            ]
        for child in affected[1:]:
            logging.getLogger(child).setLevel(level)
        for changed in affected:
            self._modified[changed] = now
        return sorted(set(affected))


def _plugin_info(entry: PluginEntry) -> dict[str, Any]:
    assert entry.connector_class is not None
    return {
        "class": class_name(entry),
        "type": "source",
        "version": entry.connector_class.spec.version,
    }


def create_app(worker: Worker, *, auth: tuple[str, str] | None = None) -> FastAPI:
    """The REST API of ``worker``. With ``auth`` (user, password), every write request needs
    HTTP basic authentication."""
    app = FastAPI(
        title="connector REST API",
        version=connector.__version__,
        description="Kafka Connect's REST API for this worker (standalone mode).",
        docs_url=None,
        redoc_url=None,
    )
    redact: Redactor = worker.deployment.redactor
    loggers = _LoggerLevels()
    deployments = {c.name: c for c in worker.deployment.connectors}
    # The handlers reach the worker through this holder, never a closure over it: FastAPI
    # caches each endpoint's analysis (and so the endpoint) for the process, which would keep
    # a stopped worker, with its Kafka clients, alive forever. ``app.state.release()`` drops it.
    holder = {"worker": worker}

    def live() -> Worker:
        current = holder.get("worker")
        if current is None:
            raise StarletteHTTPException(503, "the worker is stopping")
        return current

    app.state.release = holder.clear

    def respond(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
        return JSONResponse(_scrub(body, redact), status_code=status, headers=headers)

    # -- errors and authentication ---------------------------------------------------------

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"Not found: {request.method} {request.url.path}")
        if exc.status_code == 405:
            return _error(405, f"HTTP {request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return _error(400, redact(f"Invalid request: {problems}"))

    @app.exception_handler(ConnectError)
    async def connect_error(request: Request, exc: ConnectError) -> JSONResponse:
        return _error(exc.status, redact(exc.message))

    @app.exception_handler(ConnectorNotFoundError)
    @app.exception_handler(TaskNotFoundError)
    async def not_found(request: Request, exc: KeyError) -> JSONResponse:
        return _error(404, redact(str(exc)))

    @app.exception_handler(ConnectorStateError)
    async def wrong_state(request: Request, exc: ConnectorStateError) -> JSONResponse:
        return _error(400, redact(str(exc)))

    @app.exception_handler(OffsetStoreError)
    async def offsets_failed(request: Request, exc: OffsetStoreError) -> JSONResponse:
        return _error(500, redact(f"Offsets could not be written: {exc}"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("REST %s %s failed: %r", request.method, request.url.path, exc)
        return _error(500, redact(f"{type(exc).__name__}: {exc}"))

    if auth is not None:
        expected_user, expected_password = auth

        @app.middleware("http")
        async def basic_auth(request: Request, call_next: Any) -> Any:
            if request.method in _WRITE_METHODS and not _authorized(
                request.headers.get("authorization"), expected_user, expected_password
            ):
                return JSONResponse(
                    {"error_code": 401, "message": "Authentication required for this request"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="connector"'},
                )
            return await call_next(request)

    # -- worker ----------------------------------------------------------------------------

    @app.get("/")
    def root() -> Any:
        return respond(
            {
                "version": connector.__version__,
                "commit": connector.__version__,
                "kafka_cluster_id": live().kafka_cluster_id(),
            }
        )

    @app.get("/health")
    def health() -> Any:
        """Connect 3.9's shape; also the readiness signal: unhealthy while a task is FAILED
        or Kafka is unreachable."""
        if not live().started():
            return respond({"status": "starting", "message": "Worker is still starting up."}, 503)
        problems = [
            f"task {entry['name']}-{task['id']} is FAILED"
            for entry in live().status()
            for task in entry["tasks"]
            if task["state"] == State.FAILED.value
        ] + [
            f"connector {entry['name']} is FAILED"
            for entry in live().status()
            if entry["connector"]["state"] == State.FAILED.value
        ]
        if not live().broker_reachable():
            problems.append("Kafka is unreachable")
        if problems:
            return respond({"status": "unhealthy", "message": "; ".join(problems)}, 500)
        return respond(
            {
                "status": "healthy",
                "message": "Worker has completed startup and is ready to handle requests.",
            }
        )

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(live().metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- connectors ------------------------------------------------------------------------

    def status_of(name: str) -> dict[str, Any]:
        if name not in deployments:
            raise ConnectorNotFoundError(name)
        for entry in live().status():
            if entry["name"] == name:
                return entry
        unassigned = {"state": State.UNASSIGNED.value, "worker_id": live().worker_id}
        return {"name": name, "connector": unassigned, "tasks": [], "type": "source"}

    def config_of(name: str) -> dict[str, str]:
        deployment = deployments.get(name)
        if deployment is None:
            raise ConnectorNotFoundError(name)
        entry = find_plugin(discover(), deployment.connector_config.plugin)
        plugin_class = class_name(entry) if entry else deployment.connector_config.plugin
        return flat_config(deployment.connector_config, deployment.plugin_config, plugin_class)

    def info_of(name: str) -> dict[str, Any]:
        tasks = [{"connector": name, "task": t["id"]} for t in status_of(name)["tasks"]]
        return {"name": name, "config": config_of(name), "tasks": tasks, "type": "source"}

    @app.get("/connectors")
    def list_connectors(expand: list[str] = Query(default=[])) -> Any:
        names = sorted(deployments)
        wanted = {part for value in expand for part in value.split(",") if part}
        if not wanted & {"status", "info"}:
            return respond(names)
        result: dict[str, dict[str, Any]] = {}
        for name in names:
            entry: dict[str, Any] = {}
            if "status" in wanted:
                entry["status"] = status_of(name)
            if "info" in wanted:
                entry["info"] = info_of(name)
            result[name] = entry
        return respond(result)

    def standalone() -> ConnectError:
        return ConnectError(
            400, STANDALONE_MESSAGE.format(files=", ".join(live().deployment.files))
        )

    @app.post("/connectors")
    def create_connector(body: Any = Body(default=None)) -> Any:
        name = body.get("name") if isinstance(body, dict) else None
        if isinstance(name, str) and name in deployments:
            raise ConnectError(409, f"Connector {name} already exists")
        raise standalone()

    @app.get("/connectors/{name}")
    def get_connector(name: str) -> Any:
        return respond(info_of(name))

    @app.delete("/connectors/{name}")
    def delete_connector(name: str) -> Any:
        status_of(name)
        raise standalone()

    @app.get("/connectors/{name}/config")
    def get_config(name: str) -> Any:
        return respond(config_of(name))

    @app.put("/connectors/{name}/config")
    def put_config(name: str, body: Any = Body(default=None)) -> Any:
        raise standalone()

    @app.patch("/connectors/{name}/config")
    def patch_config(name: str, body: Any = Body(default=None)) -> Any:
        status_of(name)
        raise standalone()

    @app.get("/connectors/{name}/status")
    def get_status(name: str) -> Any:
        return respond(status_of(name))

    @app.get("/connectors/{name}/tasks")
    def get_tasks(name: str) -> Any:
        status_of(name)
        return respond(
            [
                {"id": {"connector": name, "task": task_id}, "config": _task_config(config)}
                for task_id, config in enumerate(live().task_configs(name))
            ]
        )

    @app.get("/connectors/{name}/tasks-config")
    def get_tasks_config(name: str) -> Any:
        status_of(name)
        return respond(
            {
                f"{name}-{task_id}": _task_config(config)
                for task_id, config in enumerate(live().task_configs(name))
            }
        )

    @app.get("/connectors/{name}/tasks/{task_id}/status")
    def get_task_status(name: str, task_id: int) -> Any:
        return respond(live().task_status(name, task_id))

    @app.post("/connectors/{name}/tasks/{task_id}/restart")
    def restart_task(name: str, task_id: int) -> Any:
        live().restart_task(name, task_id)
        return Response(status_code=204)

    @app.post("/connectors/{name}/restart")
    def restart_connector(name: str, includeTasks: bool = False, onlyFailed: bool = False) -> Any:
        planned = live().restart_connector(name, include_tasks=includeTasks, only_failed=onlyFailed)
        if not includeTasks and not onlyFailed:
            return Response(status_code=204)
        return respond(planned, 202)

    @app.put("/connectors/{name}/pause")
    def pause(name: str) -> Any:
        live().pause_connector(name)
        return Response(status_code=202)

    @app.put("/connectors/{name}/resume")
    def resume(name: str) -> Any:
        live().resume_connector(name)
        return Response(status_code=202)

    @app.put("/connectors/{name}/stop")
    def stop(name: str) -> Any:
        live().stop_connector(name)
        return Response(status_code=204)

    @app.get("/connectors/{name}/topics")
    def topics(name: str) -> Any:
        return respond({name: {"topics": live().connector_topics(name)}})

    @app.put("/connectors/{name}/topics/reset")
    def reset_topics(name: str) -> Any:
        live().reset_connector_topics(name)
        return Response(status_code=202)

    # -- offsets (KIP-875) -----------------------------------------------------------------

    @app.get("/connectors/{name}/offsets")
    def get_offsets(name: str) -> Any:
        return respond({"offsets": live().connector_offsets(name)})

    @app.patch("/connectors/{name}/offsets")
    def alter_offsets(name: str, body: Any = Body(default=None)) -> Any:
        live().connector_state(name)
        live().alter_connector_offsets(name, _offsets_request(body))
        return respond({"message": _ALTERED.format(verb="altered")})

    @app.delete("/connectors/{name}/offsets")
    def reset_offsets(name: str) -> Any:
        live().reset_connector_offsets(name)
        return respond({"message": _ALTERED.format(verb="reset")})

    # -- plugins ---------------------------------------------------------------------------

    def plugin(name: str) -> PluginEntry:
        entry = find_plugin(discover(), name)
        if entry is None or entry.connector_class is None:
            raise ConnectError(404, f"Unknown plugin {name}.")
        return entry

    @app.get("/connector-plugins")
    def list_plugins(connectorsOnly: bool = True) -> Any:
        return respond(
            sorted(
                (_plugin_info(e) for e in discover().values() if e.connector_class is not None),
                key=lambda p: p["class"],
            )
        )

    @app.get("/connector-plugins/{name}/config")
    def plugin_config(name: str) -> Any:
        entry = plugin(name)
        assert entry.connector_class is not None
        keys = model_keys(entry.connector_class.spec.config_model, entry.connector_class.spec.name)
        return respond([key.key_info(order) for order, key in enumerate(keys, start=1)])

    @app.put("/connector-plugins/{name}/config/validate")
    def validate(name: str, body: Any = Body(default=None)) -> Any:
        if not isinstance(body, dict):
            raise ConnectError(400, "The request body must be a JSON object of config keys")
        entry = plugin(name)
        requested = body.get("connector.class")
        if requested is not None and find_plugin(discover(), str(requested)) is not entry:
            raise ConnectError(
                400,
                f"Included connector type {requested} does not match request type {name}",
            )
        return respond(_config_infos(entry, body))

    # -- loggers (KIP-495) -----------------------------------------------------------------

    @app.get("/admin/loggers")
    def get_loggers() -> Any:
        return respond(loggers.all())

    @app.get("/admin/loggers/{name}")
    def get_logger(name: str) -> Any:
        return respond(loggers.one(name))

    @app.put("/admin/loggers/{name}")
    def put_logger(
        name: str,
        body: Any = Body(default=None),
        scope: str = "worker",
    ) -> Any:
        level = body.get("level") if isinstance(body, dict) else None
        if not isinstance(level, str):
            raise ConnectError(400, 'The request body must be {"level": "<LEVEL>"}')
        return respond(loggers.set(name, level))

    return app


def _task_config(config: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): v for k, v in ((k, to_connect_string(v)) for k, v in config.items()) if v}


def _offsets_request(body: Any) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Connect's ``{"offsets": [{"partition": {..}, "offset": {..}|null}]}``."""
    entries = body.get("offsets") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConnectError(
            400, 'The request body must be {"offsets": [{"partition": .., "offset": ..}]}'
        )
    result = []
    for entry in entries:
        partition = entry.get("partition") if isinstance(entry, dict) else None
        offset = entry.get("offset") if isinstance(entry, dict) else None
        if not isinstance(partition, dict) or not (offset is None or isinstance(offset, dict)):
            raise ConnectError(
                400, "Each offset needs a 'partition' object and an 'offset' object or null"
            )
        result.append((partition, offset))
    return result


def _config_infos(entry: PluginEntry, body: Mapping[str, Any]) -> dict[str, Any]:
    """Connect's ``ConfigInfos`` for ``body``, from the same validation as the deployment
    files (``connector validate``)."""
    assert entry.connector_class is not None
    spec = entry.connector_class.spec
    model = spec.config_model
    config = {
        key: value if key in CONNECTOR_CONFIG_KEYS else parse_flat_value(model, key, value)
        for key, value in body.items()
    }
    config.setdefault("connector.class", class_name(entry))
    _, issues, _ = validate_connector_map(config)
    plugin_keys = model_keys(model, spec.name)
    keys = connector_keys() + plugin_keys
    known = {key.name for key in keys}
    errors: dict[str, list[str]] = {}
    for issue in issues:
        key = max(
            (k for k in known if issue.path == k or issue.path.startswith((k + "[", k + "."))),
            key=len,
            default=issue.path,
        )
        errors.setdefault(key, []).append(issue.message)
    configs = []
    for order, key in enumerate(keys, start=1):
        raw = body.get(key.name, body.get("plugin") if key.name == "connector.class" else None)
        shown = HIDDEN if key.secret and raw is not None else raw
        configs.append(
            {
                "definition": key.key_info(order),
                "value": {
                    "name": key.name,
                    "value": shown if shown is None or isinstance(shown, str) else str(shown),
                    "recommended_values": list(key.allowed),
                    "errors": errors.pop(key.name, []),
                    "visible": True,
                },
            }
        )
    for key, messages in errors.items():  # keys no definition knows (typos, unknown keys)
        configs.append(
            {
                "definition": None,
                "value": {
                    "name": key,
                    "value": None,
                    "recommended_values": [],
                    "errors": messages,
                    "visible": True,
                },
            }
        )
    groups = list(dict.fromkeys(key.group for key in keys))
    return {
        "name": class_name(entry),
        "error_count": sum(len(c["value"]["errors"]) for c in configs),
        "groups": groups,
        "configs": configs,
    }


def _authorized(header: str | None, user: str, password: str) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    given_user, _, given_password = decoded.partition(":")
    return secrets.compare_digest(given_user.encode(), user.encode()) & secrets.compare_digest(
        given_password.encode(), password.encode()
    )


class RestServer:
    """The REST API served by uvicorn on a daemon thread (port 0 picks a free port)."""

    def __init__(
        self,
        worker: Worker,
        host: str,
        port: int,
        *,
        auth: tuple[str, str] | None = None,
    ) -> None:
        if auth is None:
            config = worker.config
            password = getattr(config, "rest_basic_auth_password", None)
            user = getattr(config, "rest_basic_auth_user", None)
            if user is not None and password is not None:
                auth = (user, password.get_secret_value())
        self.app = create_app(worker, auth=auth)
        server_log = logging.getLogger("uvicorn.error")  # its start banner says nothing useful
        if server_log.level == logging.NOTSET:
            server_log.setLevel(logging.WARNING)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_keep_alive=30,
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="rest", daemon=True)
        self._host = host

    @property
    def url(self) -> str:
        sockets = [s for server in self._server.servers for s in server.sockets]
        host, port = sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start serving; return once the socket listens (raise if it cannot bind)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise OSError(f"the REST API could not listen on {self._host}")
            if time.monotonic() >= deadline:
                raise TimeoutError("the REST API did not start in time")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10.0)
        self.app.state.release()
