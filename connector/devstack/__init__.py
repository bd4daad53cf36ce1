"""A real single-node Apache Kafka (KRaft) and Apicurio Registry on loopback, for demos and tests.

Nothing is faked: the jars come from Maven (see :mod:`connector.devstack.fetch`) and run as detached
JVMs (see :mod:`connector.devstack.processes`), so integration tests exercise the same broker and
Confluent-compatible registry API that production uses.

    >>> from connector import devstack
    >>> result = devstack.up()                          # doctest: +SKIP
    >>> result.endpoints.kafka_bootstrap_servers        # doctest: +SKIP
    '127.0.0.1:9092'
    >>> devstack.down()                                 # doctest: +SKIP

State dir layout (default ``<cache>/state``)::

    kafka.pid  kafka.log  kafka/{server.properties,log4j2.yaml,data/}
    registry.pid  registry.log  registry/{data/,tmp/}
    .lock  leases/<pid>  autostarted

Test sessions share one stack through :meth:`Devstack.acquire` / :meth:`Devstack.release`: each
session holds a lease, and a stack that a test session started is stopped when the last session
holding a lease releases it. A stack started by a person (``connector devstack up``) is never
stopped by tests.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from connector.devstack import processes, services
from connector.devstack.errors import DevstackError
from connector.devstack.fetch import (
    APICURIO_VERSION,
    KAFKA_MIN_JAVA,
    KAFKA_VERSION,
    REGISTRY_MIN_JAVA,
    Distributions,
    default_cache_dir,
    fetch_all,
    find_java,
)
from connector.devstack.services import KAFKA, REGISTRY, SERVICES, Ports, StateLayout

__all__ = [
    "Devstack",
    "DevstackConfig",
    "DevstackError",
    "DevstackStatus",
    "Endpoints",
    "ServiceStatus",
    "UpResult",
    "down",
    "fetch",
    "status",
    "up",
]

LOG = logging.getLogger(__name__)

DEFAULT_UP_TIMEOUT_S = 180.0
DEFAULT_STOP_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class DevstackConfig:
    """Where the stack listens and keeps its files; the defaults match ``connector devstack up``."""

    kafka_port: int = 9092
    controller_port: int = 9093
    registry_port: int = 8081
    state_dir: Path | None = None  # default: <cache_dir>/state
    cache_dir: Path | None = None  # default: $CONNECTOR_CACHE_DIR or ~/.cache/connector-devstack

    @property
    def ports(self) -> Ports:
        return Ports(
            kafka=self.kafka_port, controller=self.controller_port, registry=self.registry_port
        )

    def resolved_cache_dir(self) -> Path:
        return (self.cache_dir or default_cache_dir()).expanduser().resolve()

    def resolved_state_dir(self) -> Path:
        return (self.state_dir or self.resolved_cache_dir() / "state").expanduser().resolve()


@dataclass(frozen=True)
class Endpoints:
    """How clients reach the stack; the names are the environment variables tests read."""

    kafka_bootstrap_servers: str
    schema_registry_url: str

    def as_env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "SCHEMA_REGISTRY_URL": self.schema_registry_url,
        }

    def shell_lines(self) -> str:
        """``NAME=value`` lines, so ``export $(connector devstack up)`` works."""
        return "\n".join(f"{name}={value}" for name, value in self.as_env().items())


@dataclass(frozen=True)
class ServiceStatus:
    """One service as found through its pid file, plus whether it answers right now."""

    name: str
    pid: int | None
    endpoint: str
    is_ready: bool
    log_path: Path

    @property
    def is_running(self) -> bool:
        return self.pid is not None


@dataclass(frozen=True)
class DevstackStatus:
    """Both services; ``is_up`` only when both run and answer."""

    kafka: ServiceStatus
    registry: ServiceStatus
    endpoints: Endpoints
    state_dir: Path

    @property
    def services(self) -> tuple[ServiceStatus, ServiceStatus]:
        return (self.kafka, self.registry)

    @property
    def is_up(self) -> bool:
        return all(s.is_running and s.is_ready for s in self.services)


@dataclass(frozen=True)
class UpResult:
    """The endpoints, and which services this call started (empty if all were already up)."""

    endpoints: Endpoints
    started: tuple[str, ...]


class Devstack:
    """Fetches, starts, checks and stops the stack of one state dir.

    Every method that changes state holds an exclusive file lock on ``<state>/.lock`` so that two
    CLIs or test sessions on the same machine never start the same service twice. The lock is
    re-entrant within one instance.
    """

    def __init__(self, config: DevstackConfig | None = None) -> None:
        self.config = config or DevstackConfig()
        self.cache_dir = self.config.resolved_cache_dir()
        self.state_dir = self.config.resolved_state_dir()
        self.layout = StateLayout(self.state_dir)
        self._lock_handle: IO[str] | None = None
        self._lock_depth = 0

    # -- public operations -------------------------------------------------------------------

    def fetch(self) -> Distributions:
        """Fetch Kafka and Apicurio Registry into the cache unless they are already there."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return fetch_all(self.cache_dir)

    def up(self, *, fresh: bool = False, timeout_s: float = DEFAULT_UP_TIMEOUT_S) -> UpResult:
        """Start whatever is not running and wait until both services answer.

        Idempotent: a running, healthy stack is left alone, except that the registry's global
        compatibility is set back to BACKWARD if it is not. ``fresh`` stops the stack and wipes
        its data first. A stack that a test session started is adopted (tests won't stop it).

        Raises:
            DevstackError: a port is taken, Java or Maven is missing, or a service did not become
                ready within ``timeout_s`` (the message carries the tail of its log).
        """
        with self.lock():
            result = self._up(fresh=fresh, timeout_s=timeout_s)
            self._autostarted_path().unlink(missing_ok=True)
            return result

    def down(
        self, *, timeout_s: float = DEFAULT_STOP_TIMEOUT_S, only: Iterable[str] | None = None
    ) -> tuple[str, ...]:
        """Stop the services (all, or ``only`` these) that this state dir's pid files point at.

        Only processes whose command line still carries this state dir's marker are signalled.
        Returns the names of the services that were stopped.
        """
        names = set(SERVICES if only is None else only)
        with self.lock():
            stopped = tuple(
                name
                for name in SERVICES
                if name in names
                and processes.stop(self.layout.pid_path(name), name=name, timeout_s=timeout_s)
            )
            if only is None:
                self._autostarted_path().unlink(missing_ok=True)
            return stopped

    def status(self) -> DevstackStatus:
        """What runs now, read from the pid files and checked with a quick probe."""
        kafka_record = processes.find_running(self.layout.pid_path(KAFKA))
        registry_record = processes.find_running(self.layout.pid_path(REGISTRY))
        endpoints = self._endpoints(kafka_record, registry_record)
        kafka = ServiceStatus(
            name=KAFKA,
            pid=None if kafka_record is None else kafka_record.pid,
            endpoint=endpoints.kafka_bootstrap_servers,
            is_ready=kafka_record is not None
            and services.kafka_is_ready(endpoints.kafka_bootstrap_servers, timeout_s=3.0),
            log_path=self.layout.log_path(KAFKA),
        )
        registry = ServiceStatus(
            name=REGISTRY,
            pid=None if registry_record is None else registry_record.pid,
            endpoint=endpoints.schema_registry_url,
            is_ready=registry_record is not None
            and services.registry_is_ready(endpoints.schema_registry_url),
            log_path=self.layout.log_path(REGISTRY),
        )
        return DevstackStatus(
            kafka=kafka, registry=registry, endpoints=endpoints, state_dir=self.state_dir
        )

    def acquire(self, *, timeout_s: float = DEFAULT_UP_TIMEOUT_S) -> UpResult:
        """Use the stack from a test session: reuse a running one (on any ports) or start it.

        Registers a lease for this process; pair with :meth:`release`.
        """
        with self.lock():
            current = self.status()
            if current.is_up:
                services.ensure_compatibility(current.endpoints.schema_registry_url)
                result = UpResult(endpoints=current.endpoints, started=())
            else:
                result = self._up(fresh=False, timeout_s=timeout_s)
            leases = self._leases_dir()
            leases.mkdir(parents=True, exist_ok=True)
            (leases / str(os.getpid())).write_text(f"{time.time()}\n")
            if result.started:
                autostarted = set(self._read_autostarted()) | set(result.started)
                self._autostarted_path().write_text(json.dumps(sorted(autostarted)) + "\n")
            return result

    def release(self, *, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> tuple[str, ...]:
        """Drop this process's lease; the last holder stops what test sessions started.

        Returns the names of the services stopped (empty while other sessions hold leases).
        """
        with self.lock():
            leases = self._leases_dir()
            (leases / str(os.getpid())).unlink(missing_ok=True)
            others = [p for p in leases.glob("*") if p.name.isdigit() and self._lease_is_live(p)]
            if others:
                LOG.info("devstack still used by %d other session(s); leaving it up", len(others))
                return ()
            autostarted = self._read_autostarted()
            self._autostarted_path().unlink(missing_ok=True)
            if not autostarted:
                return ()
            return self.down(timeout_s=timeout_s, only=autostarted)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the state dir's exclusive lock (re-entrant within this instance)."""
        if self._lock_depth == 0:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.state_dir / ".lock", "a+")  # noqa: SIM115 (held across yields)
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._lock_handle = handle
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_handle is not None:
                fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
                self._lock_handle.close()
                self._lock_handle = None

    # -- internals ---------------------------------------------------------------------------

    def _up(self, *, fresh: bool, timeout_s: float) -> UpResult:
        if fresh:
            self.down()
            for name in SERVICES:
                shutil.rmtree(self.layout.service_dir(name), ignore_errors=True)
            LOG.info("wiped devstack data in %s", self.state_dir)
        ports = self.config.ports
        if len({ports.kafka, ports.controller, ports.registry}) != 3:
            raise DevstackError(f"the Kafka, controller and registry ports must differ: {ports}")
        records = {name: processes.find_running(self.layout.pid_path(name)) for name in SERVICES}
        self._check_running_ports(records, ports)
        missing = [name for name, record in records.items() if record is None]
        started: list[str] = []
        if missing:
            self._check_ports_free(missing, ports)
            dists = self.fetch()
            specs = []
            # Resolve both Javas before starting anything, so a missing JDK fails cleanly.
            if KAFKA in missing:
                java = find_java(KAFKA_MIN_JAVA, purpose=f"Apache Kafka {KAFKA_VERSION}")
                specs.append(services.kafka_spec(self.layout, dists.kafka_home, java.path, ports))
            if REGISTRY in missing:
                java = find_java(REGISTRY_MIN_JAVA, purpose=f"Apicurio Registry {APICURIO_VERSION}")
                specs.append(
                    services.registry_spec(
                        self.layout, dists.registry_home, java.path, ports.registry
                    )
                )
            for spec in specs:
                records[spec.name] = processes.start(spec)
                started.append(spec.name)
        endpoints = self._endpoints(records[KAFKA], records[REGISTRY])
        try:
            self._wait_ready(records, endpoints, timeout_s=timeout_s)
            # Also for a registry that was already running, started before the default was set.
            services.ensure_compatibility(endpoints.schema_registry_url)
        except DevstackError:
            # Leave nothing half-started behind: a retry then starts from a clean slate.
            self.down(only=started)
            raise
        LOG.info(
            "devstack up (%s): %s and %s",
            "started " + ", ".join(started) if started else "already running",
            endpoints.kafka_bootstrap_servers,
            endpoints.schema_registry_url,
        )
        return UpResult(endpoints=endpoints, started=tuple(started))

    def _wait_ready(
        self,
        records: dict[str, processes.PidRecord | None],
        endpoints: Endpoints,
        *,
        timeout_s: float,
    ) -> None:
        started = time.monotonic()
        deadline = started + timeout_s
        probes = {
            KAFKA: lambda: services.kafka_is_ready(endpoints.kafka_bootstrap_servers),
            REGISTRY: lambda: services.registry_is_ready(endpoints.schema_registry_url),
        }
        for name in SERVICES:
            record = records[name]
            assert record is not None
            pid = record.pid
            if processes.wait_until(
                probes[name],
                deadline=deadline,
                still_running=functools.partial(processes.is_alive, pid),
            ):
                LOG.info("%s ready after %.1f s", name, time.monotonic() - started)
                continue
            log_path = self.layout.log_path(name)
            if processes.is_alive(pid):
                reason = f"did not answer within {timeout_s:.0f} s"
            else:
                code = processes.exit_code(pid)
                reason = "exited during start-up" + ("" if code is None else f" (exit {code})")
            raise DevstackError(
                f"{name} (pid {pid}) {reason}. Last lines of {log_path}:\n"
                + processes.tail(log_path, _LOG_TAIL_LINES)
                + "\n(if its data is damaged, `connector devstack up --fresh` starts over)"
            )

    def _endpoints(
        self, kafka: processes.PidRecord | None, registry: processes.PidRecord | None
    ) -> Endpoints:
        # A running service is reported on the port it was started with, not the configured one.
        kafka_port = int(kafka.info.get("port", self.config.kafka_port)) if kafka else None
        registry_port = (
            int(registry.info.get("port", self.config.registry_port)) if registry else None
        )
        return Endpoints(
            kafka_bootstrap_servers=services.kafka_bootstrap(kafka_port or self.config.kafka_port),
            schema_registry_url=services.registry_url(registry_port or self.config.registry_port),
        )

    def _check_running_ports(
        self, records: dict[str, processes.PidRecord | None], ports: Ports
    ) -> None:
        wanted = {KAFKA: ports.kafka, REGISTRY: ports.registry}
        for name, record in records.items():
            if record is None:
                continue
            actual = record.info.get("port")
            if actual is not None and int(actual) != wanted[name]:
                raise DevstackError(
                    f"{name} of state dir {self.state_dir} already runs on port {actual}, not "
                    f"{wanted[name]}: run `connector devstack down` first, or use another "
                    "--state-dir for a second stack"
                )

    def _check_ports_free(self, names: list[str], ports: Ports) -> None:
        wanted: list[tuple[str, int, str]] = []
        if KAFKA in names:
            wanted += [
                ("Kafka", ports.kafka, "--kafka-port"),
                ("Kafka controller", ports.controller, "--controller-port"),
            ]
        if REGISTRY in names:
            wanted.append(("the registry", ports.registry, "--registry-port"))
        for what, port, flag in wanted:
            if processes.port_in_use(services.HOST, port):
                raise DevstackError(
                    f"port {services.HOST}:{port} wanted for {what} is already in use by a process "
                    f"this devstack (state dir {self.state_dir}) did not start; stop it or pass "
                    f"{flag}"
                )

    def _leases_dir(self) -> Path:
        return self.state_dir / "leases"

    def _autostarted_path(self) -> Path:
        return self.state_dir / "autostarted"

    def _read_autostarted(self) -> list[str]:
        try:
            names = json.loads(self._autostarted_path().read_text())
        except (OSError, ValueError):
            return []
        return [str(n) for n in names if n in SERVICES] if isinstance(names, list) else []

    @staticmethod
    def _lease_is_live(lease: Path) -> bool:
        pid = int(lease.name)
        if processes.is_alive(pid):
            return True
        lease.unlink(missing_ok=True)  # its session died without releasing
        return False


def fetch(config: DevstackConfig | None = None) -> Distributions:
    """Fetch both services into the cache (idempotent); see :meth:`Devstack.fetch`."""
    return Devstack(config).fetch()


def up(
    config: DevstackConfig | None = None,
    *,
    fresh: bool = False,
    timeout_s: float = DEFAULT_UP_TIMEOUT_S,
) -> UpResult:
    """Start the stack (idempotent) and return its endpoints; see :meth:`Devstack.up`."""
    return Devstack(config).up(fresh=fresh, timeout_s=timeout_s)


def down(
    config: DevstackConfig | None = None, *, timeout_s: float = DEFAULT_STOP_TIMEOUT_S
) -> tuple[str, ...]:
    """Stop the stack; returns the names of the services stopped. See :meth:`Devstack.down`."""
    return Devstack(config).down(timeout_s=timeout_s)


def status(config: DevstackConfig | None = None) -> DevstackStatus:
    """What runs and whether it answers; see :meth:`Devstack.status`."""
    return Devstack(config).status()
