"""``connector run | validate | plugins | tail | offsets``: the runtime's sub-commands."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from connector.api import ConfigError

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from connector.api import AvroSchema

from connector.logs import EXIT_INVALID, EXIT_RUNTIME

DEFAULT_REST_URL = "http://127.0.0.1:8083"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = subparsers.add_parser("run", help="run a deployment until SIGTERM/Ctrl-C")
    run.add_argument("files", nargs="+", help="deployment YAML files or directories")
    run.set_defaults(handler=_run)

    validate = subparsers.add_parser("validate", help="check deployment files; exit 2 if invalid")
    validate.add_argument("files", nargs="+")
    validate.add_argument(
        "--connect",
        action="store_true",
        help="also check online: broker, schema registry, plugin credentials and permissions",
    )
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: one object on stdout (valid, connectors, issues, warnings) for machines",
    )
    validate.set_defaults(handler=_validate)

    status = subparsers.add_parser(
        "status", help="the connectors and tasks of a running worker, as a table (REST API)"
    )
    status.add_argument(
        "files", nargs="*", help="deployment files: use their worker's REST address"
    )
    status.add_argument(
        "--url",
        default=None,
        help=f"the worker's REST API (default $CONNECTOR_REST_URL or {DEFAULT_REST_URL})",
    )
    status.set_defaults(handler=_status)

    plugins = subparsers.add_parser("plugins", help="list installed connector plugins")
    plugins.set_defaults(handler=_plugins)

    tail = subparsers.add_parser("tail", help="print a topic's records, Avro decoded")
    tail.add_argument("topic")
    tail.add_argument("--bootstrap-servers", default=None)
    tail.add_argument("--schema-registry-url", default=None)
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("-n", "--max-records", type=int, default=0, help="stop after N records")
    tail.add_argument("--timeout", type=float, default=0, help="stop after N idle seconds")
    tail.set_defaults(handler=_tail)

    offsets = subparsers.add_parser("offsets", help="list committed source offsets")
    offsets.add_argument("files", nargs="+")
    offsets.add_argument("--connector", default=None, help="only this connector")
    offsets.add_argument(
        "--reset",
        action="store_true",
        help="write tombstones for the listed offsets (run only while the connector is stopped)",
    )
    offsets.set_defaults(handler=_offsets)


def _load(files: list[str]) -> Any:
    from connector.config.validate import format_warning, load_deployment

    try:
        deployment = load_deployment(files)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"invalid deployment: {len(exc.issues)} problem(s)", file=sys.stderr)
        return None
    for warning in deployment.warnings:
        print(format_warning(warning), file=sys.stderr)
    return deployment


def _run(args: argparse.Namespace) -> int:
    from connector.config.redaction import redact_logging
    from connector.runtime.rest import RestServer
    from connector.runtime.worker import Worker

    deployment = _load(args.files)
    if deployment is None:
        return EXIT_INVALID
    redact_logging(deployment.redactor)
    worker = Worker(deployment)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        print(f"received {signal.Signals(signum).name}, stopping", file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rest = None
    address = deployment.worker.rest_address()
    try:
        if address is not None:  # before the worker starts: /health says "starting" meanwhile
            rest = RestServer(worker, *address)
            rest.start()
            print(f"REST API on {rest.url}", file=sys.stderr)
        worker.start()
    except _expected_start_failures() as exc:
        print(
            deployment.redactor(f"connector: cannot start: {_start_failure(exc, deployment)}"),
            file=sys.stderr,
        )
        worker.stop()
        if rest is not None:
            rest.stop()
        return EXIT_RUNTIME
    try:
        worker.run(stop)
    finally:
        if rest is not None:
            rest.stop()
    return 0


def _start_failure(exc: BaseException, deployment: Any) -> str:
    """One line: what could not be used at start, and why."""
    from confluent_kafka import KafkaException

    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else exc
        reason = error.str() if hasattr(error, "str") else str(error)
        return f"Kafka at {deployment.worker.bootstrap_servers} is unusable: {reason}"
    if isinstance(exc, OSError):
        return f"the REST API cannot listen: {exc}"
    return _describe(exc)


def _status(args: argparse.Namespace) -> int:
    import os

    import requests

    url = args.url
    if url is None and args.files:
        deployment = _load(args.files)
        if deployment is None:
            return EXIT_INVALID
        address = deployment.worker.rest_address()
        if address is None:
            print(
                "connector: the deployment has no REST API (set worker rest.port)", file=sys.stderr
            )
            return EXIT_INVALID
        host = "127.0.0.1" if address[0] in ("0.0.0.0", "::") else address[0]
        url = f"http://{host}:{address[1]}"
    url = (url or os.environ.get("CONNECTOR_REST_URL") or DEFAULT_REST_URL).rstrip("/")
    try:
        response = requests.get(f"{url}/connectors", params={"expand": "status"}, timeout=10)
        response.raise_for_status()
        statuses = response.json()
    except (requests.RequestException, ValueError) as exc:
        print(f"connector: cannot read {url}/connectors: {_describe(exc)}", file=sys.stderr)
        return EXIT_RUNTIME
    print(format_status_table(statuses))
    return 0


def format_status_table(statuses: dict[str, Any]) -> str:
    """``GET /connectors?expand=status`` as a table: a connector line, then one per task."""
    rows = [("CONNECTOR", "TASK", "STATE", "WORKER", "TRACE")]
    for name in sorted(statuses):
        status = statuses[name]["status"]
        connector = status["connector"]
        rows.append(
            (
                name,
                "-",
                connector["state"],
                connector.get("worker_id", ""),
                _trace_summary(connector.get("trace")),
            )
        )
        for task in status["tasks"]:
            rows.append(
                (
                    name,
                    str(task["id"]),
                    task["state"],
                    task.get("worker_id", ""),
                    _trace_summary(task.get("trace")),
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    ).rstrip()


def _trace_summary(trace: str | None) -> str:
    """A trace's last line (the exception message), shortened for a table cell."""
    if not trace:
        return ""
    lines = [line for line in trace.strip().splitlines() if line.strip()]
    return lines[-1][:120] if lines else ""


def _expected_start_failures() -> tuple[type[BaseException], ...]:
    from confluent_kafka import KafkaException

    from connector.api import OffsetStoreError

    return (KafkaException, OffsetStoreError, OSError, TimeoutError)


def _validate_json(args: argparse.Namespace) -> int:
    """``validate --format json``: the same checks, reported as one JSON object."""
    from connector.config.validate import validate_paths

    def issue(item: Any) -> dict[str, Any]:
        return {"file": item.file, "line": item.line, "path": item.path, "message": item.message}

    deployment, issues = validate_paths(args.files)
    problems = _connection_checks(deployment) if deployment is not None and args.connect else []
    redact = deployment.redactor if deployment is not None else str
    report = {
        "valid": deployment is not None and not problems,
        "connectors": [c.name for c in deployment.connectors] if deployment else [],
        "issues": [issue(i) for i in issues]
        + [{"file": None, "line": None, "path": "", "message": redact(p)} for p in problems],
        "warnings": [issue(w) for w in deployment.warnings] if deployment else [],
    }
    print(json.dumps(report, indent=2))
    return 0 if report["valid"] else EXIT_INVALID


def _validate(args: argparse.Namespace) -> int:
    if args.format == "json":
        return _validate_json(args)
    deployment = _load(args.files)
    if deployment is None:
        return EXIT_INVALID
    problems: list[str] = []
    if args.connect:
        problems = _connection_checks(deployment)
        for problem in problems:
            print(deployment.redactor(problem), file=sys.stderr)  # exception text quotes URLs
    names = ", ".join(c.name for c in deployment.connectors) or "no connectors"
    if problems:
        print(f"invalid deployment: {len(problems)} problem(s) found online", file=sys.stderr)
        return EXIT_INVALID
    print(f"valid: {len(deployment.connectors)} connector(s) ({names})")
    return 0


def _connection_checks(deployment: Any) -> list[str]:
    from confluent_kafka.admin import AdminClient

    from connector.serde.factory import registry_client

    problems: list[str] = []
    worker = deployment.worker
    try:
        AdminClient({"bootstrap.servers": worker.bootstrap_servers}).list_topics(timeout=10)
    except Exception as exc:
        problems.append(f"worker.bootstrap.servers: cannot reach Kafka: {exc}")
    urls = {worker.schema_registry_url} | {
        c.connector_config.value_converter_config.get("schema.registry.url")
        for c in deployment.connectors
    }
    unreachable: set[str] = set()
    for url in sorted(u for u in urls if u):
        try:
            registry_client(url, worker.schema_registry).get_subjects()
        except Exception as exc:
            unreachable.add(url)
            problems.append(f"schema.registry.url: cannot reach {url}: {_describe(exc)}")
    for connector in deployment.connectors:
        where = f"{connector.file}: connectors[{connector.name}]"
        instance = connector.connector_class()
        try:
            for issue in instance.check_connection(connector.plugin_config):
                problems.append(f"{where}.{issue}")
        except Exception as exc:  # a plugin's check must report, not crash the command
            problems.append(f"{where}: connection check failed: {_describe(exc)}")
        config = connector.connector_config.value_converter_config
        if (config.get("schema.registry.url") or worker.schema_registry_url) in unreachable:
            continue  # reported once above; every subject would only repeat it
        try:
            problems.extend(_compatibility_problems(connector, instance, worker))
        except Exception as exc:
            problems.append(f"{where}: cannot check schema compatibility: {_describe(exc)}")
    return problems


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, for a one-line problem (never a traceback)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _compatibility_problems(connector: Any, instance: Any, worker: Any) -> list[str]:
    """Each known value schema must be usable the way the converter will use it: registered
    (``auto.register.schemas=false``) or with a latest version (``use.latest.version``), and
    compatible with what its subject already holds."""
    import json as jsonlib

    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    from connector.serde.avro import record_full_name
    from connector.serde.factory import converter_flag, registry_client
    from connector.serde.registry import strategy_named

    connector_config = connector.connector_config
    if connector_config.value_converter != "avro":
        return []
    config = connector_config.value_converter_config
    url = config.get("schema.registry.url") or worker.schema_registry_url
    client = registry_client(url, worker.schema_registry)
    strategy = strategy_named(str(config.get("value.subject.name.strategy", "TopicNameStrategy")))
    auto_register = converter_flag(config, "auto.register.schemas")
    use_latest = converter_flag(config, "use.latest.version")
    problems = []
    for topic, schema in instance.value_schemas(connector.plugin_config, connector.name).items():
        subject = strategy(topic, record_full_name(schema.definition), False)
        if use_latest or not auto_register:
            missing = _registration_problem(
                client, subject, schema, use_latest, converter_flag(config, "normalize.schemas")
            )
            if missing is not None:
                problems.append(f"connectors[{connector.name}]: {missing}")
                continue
        try:
            compatible = client.test_compatibility(
                subject, Schema(jsonlib.dumps(schema.definition), "AVRO")
            )
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                continue  # a new subject: nothing to be compatible with
            problems.append(f"connectors[{connector.name}]: subject {subject}: {exc}")
            continue
        if not compatible:
            problems.append(
                f"connectors[{connector.name}]: schema {schema.name} is not compatible with the "
                f"latest version of subject {subject} in the registry"
            )
    return problems


def _registration_problem(
    client: SchemaRegistryClient,
    subject: str,
    schema: AvroSchema,
    use_latest: bool,
    normalize: bool,
) -> str | None:
    """What the converter will not find at run time: with ``use.latest.version`` a latest
    version of ``subject``, otherwise (``auto.register.schemas=false``) ``schema`` itself."""
    import json as jsonlib

    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        if use_latest:
            client.get_latest_version(subject)
        else:
            registered = Schema(jsonlib.dumps(schema.definition), "AVRO")
            client.lookup_schema(subject, registered, normalize_schemas=normalize)
    except SchemaRegistryError as exc:
        if exc.http_status_code != 404:
            return f"subject {subject}: {exc}"
        if use_latest:
            return f"subject {subject} has no registered version (use.latest.version=true)"
        return (
            f"schema {schema.name} is not registered under subject {subject} "
            "(auto.register.schemas=false)"
        )
    return None


def _plugins(args: argparse.Namespace) -> int:
    from connector.plugins.discovery import discover

    for name, entry in sorted(discover().items()):
        if entry.connector_class is None:
            print(f"{name}\tBROKEN\t{entry.target}\t{entry.error}")
            continue
        spec = entry.connector_class.spec
        print(f"{name}\t{spec.version}\t{spec.status}\t{spec.summary}")
    from connector import native

    print(f"record path: {native.describe()}")
    return 0


def _tail(args: argparse.Namespace) -> int:
    import os

    from connector.runtime.tail import tail_topic

    bootstrap = args.bootstrap_servers or os.environ.get(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"
    )
    registry = args.schema_registry_url or os.environ.get(
        "SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for line in tail_topic(
        args.topic,
        bootstrap,
        registry,
        from_beginning=args.from_beginning,
        max_records=args.max_records,
        idle_timeout_s=args.timeout,
        stop=stop,
    ):
        print(line, flush=True)
    return 0


def _offsets(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AdminClient

    from connector.runtime.offset_store import KafkaOffsetStore

    deployment = _load(args.files)
    if deployment is None:
        return EXIT_INVALID
    worker = deployment.worker
    admin = AdminClient({"bootstrap.servers": worker.bootstrap_servers})
    stores: dict[str, KafkaOffsetStore] = {}

    def store_of(topic: str) -> KafkaOffsetStore:
        if topic not in stores:
            stores[topic] = KafkaOffsetStore(worker.bootstrap_servers, topic)
            stores[topic].start(admin)
        return stores[topic]

    own_topics = {c.name: c.connector_config.offsets_storage_topic for c in deployment.connectors}
    names = [args.connector] if args.connector else [c.name for c in deployment.connectors]
    for name in names:
        # the connector's own offsets topic first, the worker's as the fallback (as tasks read)
        topics = [t for t in (own_topics.get(name), worker.offset_storage_topic) if t]
        found = {topic: store_of(topic).offsets(name) for topic in dict.fromkeys(topics)}
        committed = {k: v for offsets in reversed(found.values()) for k, v in offsets.items()}
        for key, (_, offset) in sorted(committed.items()):
            print(json.dumps({"key": key, "offset": offset}))
        if args.reset and committed:
            for topic, offsets in found.items():
                if offsets:
                    partitions = [partition for partition, _ in offsets.values()]
                    store_of(topic).write(name, [(p, None) for p in partitions])
            print(f"reset {len(committed)} offset(s) of {name}", file=sys.stderr)
    for store in stores.values():
        store.close()
    return 0
