"""How to configure, start and probe the two devstack services: Kafka (KRaft) and Apicurio Registry.

Both bind to loopback only. Kafka runs as a single combined broker+controller node with every
internal topic at replication factor 1. The registry keeps its data in an H2 file database in the
state dir (its default is in-memory), so schema ids stay valid for records already in Kafka after a
``down``/``up``; ``up --fresh`` wipes both together. Its global compatibility is BACKWARD,
Confluent's default (Apicurio's is none), so a schema change is refused locally as in production.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.devstack.errors import DevstackError
from connector.devstack.processes import ProcessSpec, port_in_use

LOG = logging.getLogger(__name__)

HOST = "127.0.0.1"
KAFKA = "kafka"
REGISTRY = "registry"
SERVICES: tuple[str, ...] = (KAFKA, REGISTRY)

KAFKA_HEAP = "-Xmx768m"
REGISTRY_HEAP = "-Xmx512m"
CCOMPAT_PATH = "/apis/ccompat/v7"
COMPATIBILITY = "BACKWARD"
"""The registry's global compatibility level: Confluent Schema Registry's default."""

_LOG4J2_YAML = """\
# Written by connector.devstack: warnings only, plus the line that says the broker is up.
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


@dataclass(frozen=True)
class Ports:
    """The loopback ports the devstack listens on."""

    kafka: int = 9092
    controller: int = 9093
    registry: int = 8081


@dataclass(frozen=True)
class StateLayout:
    """Where each service keeps its config, data, log and pid file inside the state dir."""

    root: Path

    def service_dir(self, service: str) -> Path:
        return self.root / service

    def data_dir(self, service: str) -> Path:
        return self.service_dir(service) / "data"

    def log_path(self, service: str) -> Path:
        return self.root / f"{service}.log"

    def pid_path(self, service: str) -> Path:
        return self.root / f"{service}.pid"

    def marker(self, service: str) -> str:
        return f"-Dconnector.devstack={service}@{self.root}"


def kafka_bootstrap(port: int) -> str:
    return f"{HOST}:{port}"


def registry_url(port: int) -> str:
    """The Confluent-compatible API root, the value for SCHEMA_REGISTRY_URL."""
    return f"http://{HOST}:{port}{CCOMPAT_PATH}"


def kafka_spec(layout: StateLayout, kafka_home: Path, java: Path, ports: Ports) -> ProcessSpec:
    """Write server.properties and log4j2.yaml, format storage on first use, return the spec."""
    conf_dir = layout.service_dir(KAFKA)
    data_dir = layout.data_dir(KAFKA)
    conf_dir.mkdir(parents=True, exist_ok=True)
    properties = conf_dir / "server.properties"
    properties.write_text(_server_properties(data_dir, ports))
    log4j = conf_dir / "log4j2.yaml"
    log4j.write_text(_LOG4J2_YAML)
    classpath = str(kafka_home / "libs" / "*")  # expanded by the JVM, not a shell
    if not (data_dir / "meta.properties").is_file():
        _format_kafka_storage(java, classpath, properties)
    marker = layout.marker(KAFKA)
    argv = [
        str(java),
        KAFKA_HEAP,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        marker,
        "-cp",
        classpath,
        "kafka.Kafka",
        str(properties),
    ]
    return ProcessSpec(
        name=KAFKA,
        argv=argv,
        cwd=conf_dir,
        log_path=layout.log_path(KAFKA),
        pid_path=layout.pid_path(KAFKA),
        marker=marker,
        info={"port": ports.kafka, "controller_port": ports.controller},
    )


def registry_spec(layout: StateLayout, registry_home: Path, java: Path, port: int) -> ProcessSpec:
    """Apicurio Registry's command line: loopback, H2 file storage, temp files in the state dir."""
    service_dir = layout.service_dir(REGISTRY)
    tmp_dir = service_dir / "tmp"
    data_dir = layout.data_dir(REGISTRY)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = layout.marker(REGISTRY)
    argv = [
        str(java),
        REGISTRY_HEAP,
        "-XX:+ExitOnOutOfMemoryError",
        f"-Djava.io.tmpdir={tmp_dir}",
        f"-Dvertx.cacheDirBase={tmp_dir / 'vertx-cache'}",
        f"-Dquarkus.http.host={HOST}",
        f"-Dquarkus.http.port={port}",
        # The management interface (health, metrics) is built in and defaults to 0.0.0.0:9000;
        # an ephemeral loopback port keeps it out of the way of other stacks.
        f"-Dquarkus.management.host={HOST}",
        "-Dquarkus.management.port=0",
        f"-Dapicurio.datasource.url=jdbc:h2:file:{data_dir / 'registry'}",
        f"-Dapicurio.storage.snapshot.location={tmp_dir}",
        f"-Dapicurio.import.work-dir={tmp_dir}",
        # The default global rule, in force from the first request; ensure_compatibility() also
        # sets it through the API for a registry started without this property.
        f"-Dapicurio.rules.global.compatibility={COMPATIBILITY}",
        "-Dquarkus.log.console.format=%d{yyyy-MM-dd HH:mm:ss,SSS} %p [%c{3.}] (%t) %m%n",
        marker,
        "-jar",
        str(registry_home / "quarkus-run.jar"),
    ]
    return ProcessSpec(
        name=REGISTRY,
        argv=argv,
        cwd=service_dir,
        log_path=layout.log_path(REGISTRY),
        pid_path=layout.pid_path(REGISTRY),
        marker=marker,
        info={"port": port},
    )


def kafka_is_ready(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True once the broker serves metadata to an AdminClient."""
    host, _, port = bootstrap.rpartition(":")
    # A plain TCP check first: an AdminClient pointed at a closed port logs a connection error
    # every retry, which would bury the start-up messages.
    if not port_in_use(host, int(port)):
        return False
    from confluent_kafka.admin import AdminClient  # imported late: unit runs never need it

    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "logger": logging.getLogger(__name__ + ".librdkafka"),
    }
    admin = AdminClient(conf)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except Exception as exc:  # KafkaException, or a timeout while the controller starts
        LOG.debug("kafka at %s not ready yet: %s", bootstrap, exc)
        return False
    return bool(metadata.brokers)


def registry_is_ready(url: str, timeout_s: float = 2.0) -> bool:
    """True once ``GET <url>/subjects`` answers 200 with a JSON list."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout_s) as response:
            return response.status == 200 and isinstance(json.loads(response.read()), list)
    except (OSError, ValueError) as exc:  # URLError is an OSError
        LOG.debug("registry at %s not ready yet: %s", url, exc)
        return False


def ensure_compatibility(url: str, level: str = COMPATIBILITY, timeout_s: float = 10.0) -> bool:
    """Set the registry's global compatibility to ``level`` unless it already is (Confluent's
    ``GET``/``PUT <url>/config``); True if it had to be changed.

    Raises:
        DevstackError: the registry did not answer or refused the change.
    """
    config_url = f"{url}/config"
    try:
        with urllib.request.urlopen(config_url, timeout=timeout_s) as response:
            current = json.loads(response.read()).get("compatibilityLevel")
        if current == level:
            return False
        request = urllib.request.Request(
            config_url,
            data=json.dumps({"compatibility": level}).encode(),
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
            method="PUT",
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            applied = json.loads(response.read()).get("compatibility")
    except (OSError, ValueError, AttributeError) as exc:  # URLError and HTTPError are OSErrors
        raise DevstackError(
            f"could not set the registry's global compatibility to {level} at {config_url}: {exc}"
        ) from exc
    if applied != level:
        raise DevstackError(f"the registry at {config_url} answered {applied!r}, not {level}")
    LOG.info("registry global compatibility set to %s (was %s)", level, current)
    return True


def new_cluster_id() -> str:
    """A KRaft cluster id in Kafka's own format (base64url of 16 random bytes, no padding).

    Generated here rather than with ``StorageTool random-uuid`` to save a JVM start; like Kafka's
    ``Uuid.randomUuid`` it never starts with '-' (a command line would read it as an option).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _server_properties(data_dir: Path, ports: Ports) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{ports.controller}",
        "listeners": f"PLAINTEXT://{HOST}:{ports.kafka},CONTROLLER://{HOST}:{ports.controller}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{ports.kafka}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Tests create consumer groups constantly; the default 3 s delay would slow each one.
        "group.initial.rebalance.delay.ms": "0",
    }
    lines = ["# Written by connector.devstack on every start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _format_kafka_storage(java: Path, classpath: str, properties: Path) -> None:
    # No --standalone: the quorum is given statically by controller.quorum.voters.
    cluster_id = new_cluster_id()
    argv = [
        str(java),
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(properties),
    ]
    LOG.info("formatting Kafka storage (cluster id %s)", cluster_id)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise DevstackError(
            f"formatting Kafka storage failed (exit {proc.returncode}): {' '.join(argv)}\n"
            + (proc.stdout + proc.stderr).strip()
        )
