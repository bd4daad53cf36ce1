"""``connector devstack up | down | status | fetch``: the local Kafka + registry from the shell.

``up`` prints only ``NAME=value`` lines on stdout (progress goes to the log on stderr), so
``export $(connector devstack up)`` sets KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from connector.devstack import (
    DEFAULT_STOP_TIMEOUT_S,
    DEFAULT_UP_TIMEOUT_S,
    Devstack,
    DevstackConfig,
    DevstackError,
    ServiceStatus,
)

LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_RUNNING = 3  # `status`: like an LSB init script's "program is not running"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "devstack",
        help="run a local Apache Kafka (KRaft) and Apicurio Registry for demos and tests",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="devstack_command", required=True, metavar="ACTION")

    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="data, logs and pid files (default: <cache>/state; cache: $CONNECTOR_CACHE_DIR "
        "or ~/.cache/connector-devstack)",
    )
    defaults = DevstackConfig()
    ports = argparse.ArgumentParser(add_help=False)
    ports.add_argument("--kafka-port", type=int, default=defaults.kafka_port)
    ports.add_argument("--controller-port", type=int, default=defaults.controller_port)
    ports.add_argument("--registry-port", type=int, default=defaults.registry_port)

    up = commands.add_parser(
        "up", parents=[state, ports], help="start (or reuse) the stack and print its endpoints"
    )
    up.add_argument("--fresh", action="store_true", help="stop and wipe all data first")
    up.add_argument("--timeout", type=float, default=DEFAULT_UP_TIMEOUT_S, help="seconds")
    up.set_defaults(handler=_up)

    down = commands.add_parser("down", parents=[state], help="stop what `up` started")
    down.add_argument("--timeout", type=float, default=DEFAULT_STOP_TIMEOUT_S, help="seconds")
    down.set_defaults(handler=_down)

    status = commands.add_parser(
        "status", parents=[state, ports], help="show what runs; exit 0 if both are up, else 3"
    )
    status.set_defaults(handler=_status)

    fetch = commands.add_parser(
        "fetch", parents=[state], help="download Kafka and Apicurio Registry through Maven"
    )
    fetch.set_defaults(handler=_fetch)


def _config(args: argparse.Namespace) -> DevstackConfig:
    defaults = DevstackConfig()
    return DevstackConfig(
        kafka_port=getattr(args, "kafka_port", defaults.kafka_port),
        controller_port=getattr(args, "controller_port", defaults.controller_port),
        registry_port=getattr(args, "registry_port", defaults.registry_port),
        state_dir=args.state_dir,
    )


def _up(args: argparse.Namespace) -> int:
    try:
        result = Devstack(_config(args)).up(fresh=args.fresh, timeout_s=args.timeout)
    except DevstackError as exc:
        LOG.error("devstack up failed: %s", exc)
        return EXIT_FAILED
    print(result.endpoints.shell_lines())
    return EXIT_OK


def _down(args: argparse.Namespace) -> int:
    try:
        stopped = Devstack(_config(args)).down(timeout_s=args.timeout)
    except DevstackError as exc:
        LOG.error("devstack down failed: %s", exc)
        return EXIT_FAILED
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    current = Devstack(_config(args)).status()
    for service in current.services:
        print(_status_line(service))
    print(f"state dir: {current.state_dir}")
    if current.is_up:
        print(current.endpoints.shell_lines())
        return EXIT_OK
    return EXIT_NOT_RUNNING


def _status_line(service: ServiceStatus) -> str:
    if not service.is_running:
        state = "stopped"
    elif service.is_ready:
        state = "running"
    else:
        state = "not answering"
    pid = f"pid {service.pid}" if service.pid is not None else "-"
    return f"{service.name:<9} {state:<14} {pid:<11} {service.endpoint}  (log {service.log_path})"


def _fetch(args: argparse.Namespace) -> int:
    stack = Devstack(_config(args))
    started = time.monotonic()
    try:
        dists = stack.fetch()
    except DevstackError as exc:
        LOG.error("devstack fetch failed: %s", exc)
        return EXIT_FAILED
    print(f"kafka:    {dists.kafka_home}")
    print(f"registry: {dists.registry_home}")
    print(f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return EXIT_OK
