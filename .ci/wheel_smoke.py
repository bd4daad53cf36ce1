"""Run the demo deployment shipped in an installed wheel, and check records decode through the
registry. Called by ``.ci/wheel_smoke.sh`` with the fresh venv's python, from outside the source
tree, so every file it uses must come from the installed package.

Steps, each bounded: the installed ``connector`` finds its example deployment, the devstack is up
(``connector devstack up``, reused when running), ``connector simulate genesys`` and ``connector
run <demo>`` run as child processes of this script (and only those are stopped), and a consumer
reads the records produced since the run began, decoding each with confluent-kafka's
``AvroDeserializer`` (schemas fetched by id from the registry).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

RECORDS = 20
"""Decoded records required on the family topics (the simulator makes about 50 events/s)."""
DEVSTACK_TIMEOUT_S = 240.0  # a cold start on a fresh machine; warm it is seconds
START_TIMEOUT_S = 30.0
RECORDS_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-tree", type=Path, required=True, help="must not be imported")
    parser.add_argument("--bin", type=Path, required=True, help="the venv's bin directory")
    args = parser.parse_args(argv)
    # A SIGTERM (e.g. from `timeout`) still runs the finally blocks that stop our children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()

    import yaml

    import connector

    package = Path(connector.__file__).resolve().parent
    source = args.source_tree.resolve()
    _check(package.is_relative_to(Path(sys.prefix).resolve()), f"{package} is not in the venv")
    _check(not package.is_relative_to(source), f"{package} is the source tree")
    _check(not Path.cwd().resolve().is_relative_to(source), "running inside the source tree")

    cli = str(args.bin / "connector")
    demo = Path(_output([cli, "examples", "genesys-demo"], os.environ).strip())
    _check(demo.resolve().is_relative_to(package), f"{demo} is not package data")
    deployment = yaml.safe_load(demo.read_text())
    (block,) = deployment["connectors"]
    rest_port = int(deployment["worker"]["rest.port"])
    _check(_port_free(rest_port), f"port {rest_port} (the demo's rest.port) is in use")

    endpoints = _devstack(cli)
    logs = Path.cwd()
    children: list[subprocess.Popen[bytes]] = []
    try:
        simulator = _spawn(
            [cli, "simulate", "genesys", "--port", "0", "--rate", "50", "--seed", "1"],
            os.environ,
            logs / "simulator.log",
            children,
        )
        base_url = _wait_for_line(
            logs / "simulator.log", re.compile(r"simulator on (http://\S+)"), simulator
        )
        env = {
            **os.environ,
            **endpoints,
            "GENESYS_LOGIN_URL": base_url,
            "GENESYS_API_URL": base_url,
            "GENESYS_CLIENT_ID": "demo-client",
            "GENESYS_CLIENT_SECRET": "demo-secret",
        }
        print(_output([cli, "validate", str(demo)], env).strip())
        since_ms = int(time.time() * 1000)
        runner = _spawn([cli, "run", str(demo)], env, logs / "connector.log", children)
        counts = _consume_decoded(
            endpoints["KAFKA_BOOTSTRAP_SERVERS"],
            endpoints["SCHEMA_REGISTRY_URL"],
            since_ms,
            skip_topic=block["gaps.topic"],
            processes=[runner, simulator],
        )
        status = json.loads(
            urllib.request.urlopen(
                f"http://127.0.0.1:{rest_port}/connectors/{block['name']}/status", timeout=10
            ).read()
        )
        states = [status["connector"]["state"], *(t["state"] for t in status["tasks"])]
        _check(set(states) == {"RUNNING"}, f"status {status}")
        runner.send_signal(signal.SIGTERM)
        code = runner.wait(timeout=STOP_TIMEOUT_S)
        _check(code == 0, f"`connector run` exited {code} on SIGTERM")
        print(
            f"wheel smoke passed in {time.monotonic() - started:.0f} s: decoded "
            + ", ".join(f"{n} from {t}" for t, n in sorted(counts.items()))
            + f"; {block['name']} {states}; clean stop"
        )
        return 0
    except BaseException:
        for log in sorted(logs.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-40:]
            print(f"--- last lines of {log.name} ---", *lines, sep="\n", file=sys.stderr)
        raise
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


class SmokeFailure(Exception):
    """What the smoke expected did not happen."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def _output(command: list[str], env: Any) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    _check(done.returncode == 0, f"{command[1:]} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        # as http.server binds: a TIME_WAIT left by an earlier run's status request is no owner
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _devstack(cli: str) -> dict[str, str]:
    """The broker and registry to use: given in the environment, else ``connector devstack up``."""
    names = ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL")
    if all(os.environ.get(name) for name in names):
        return {name: os.environ[name] for name in names}
    done = subprocess.run(
        [cli, "devstack", "up"], capture_output=True, text=True, timeout=DEVSTACK_TIMEOUT_S
    )
    _check(done.returncode == 0, f"devstack up exited {done.returncode}: {done.stderr[-2000:]}")
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    _check(all(name in found for name in names), f"devstack up printed {done.stdout!r}")
    return {name: found[name] for name in names}


def _spawn(
    command: list[str], env: Any, log: Path, children: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    children.append(child)
    return child


def _wait_for_line(log: Path, pattern: re.Pattern[str], process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = pattern.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        _check(process.poll() is None, f"{log.name}: exited {process.returncode}")
        time.sleep(0.2)  # polling a log file with a deadline
    raise SmokeFailure(f"{log.name}: no line matching {pattern.pattern} in {START_TIMEOUT_S} s")


def _consume_decoded(
    bootstrap: str,
    registry_url: str,
    since_ms: int,
    *,
    skip_topic: str,
    processes: list[subprocess.Popen[bytes]],
) -> dict[str, int]:
    """Decode records produced at or after ``since_ms`` on ``genesys.*`` until ``RECORDS`` of
    them are on topics other than ``skip_topic``; counts per topic."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"wheel-smoke-{os.getpid()}-{since_ms}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )

    def from_start_of_run(c: Any, partitions: list[TopicPartition]) -> None:
        # Earlier runs' records stay in the shared topics: start at this run's first timestamp
        # (OFFSET_END where nothing is that recent yet).
        wanted = [TopicPartition(p.topic, p.partition, since_ms) for p in partitions]
        c.assign(c.offsets_for_times(wanted, timeout=10))

    consumer.subscribe([r"^genesys\..*"], on_assign=from_start_of_run)
    counts: dict[str, int] = {}
    deadline = time.monotonic() + RECORDS_TIMEOUT_S
    try:
        while sum(n for t, n in counts.items() if t != skip_topic) < RECORDS:
            if time.monotonic() > deadline:
                raise SmokeFailure(f"only {counts} decoded in {RECORDS_TIMEOUT_S} s")
            for process in processes:
                _check(process.poll() is None, f"{process.args[1:3]} exited {process.returncode}")
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().fatal():
                    raise KafkaException(message.error())
                continue
            topic = message.topic()
            value = deserialize(message.value(), SerializationContext(topic, MessageField.VALUE))
            _check(isinstance(value, dict) and bool(value), f"{topic}: decoded {value!r}")
            counts[topic] = counts.get(topic, 0) + 1
    finally:
        consumer.close()
    return counts


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except SmokeFailure as failure:
        print(f"wheel smoke FAILED: {failure}", file=sys.stderr)
        raise SystemExit(1) from None
