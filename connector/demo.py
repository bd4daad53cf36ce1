"""``connector demo``: the whole pipeline on one machine, with live decoded records.

Starts (or reuses) the devstack, runs the Genesys simulator in-process, runs the shipped example
deployment ``genesys-demo`` (:mod:`connector.examples`) in a worker, and prints every record that
lands in Kafka, Avro decoded through the registry, until Ctrl-C. Nothing here is demo-only code:
it wires the same pieces ``connector devstack up``, ``connector simulate genesys``, ``connector
run`` and ``connector tail`` use.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from connector import examples

DEMO_CONFIG = examples.path("genesys-demo")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = subparsers.add_parser(
        "demo", help="devstack + Genesys simulator + connector, printing live decoded records"
    )
    demo.add_argument("--config", default=str(DEMO_CONFIG), help="deployment to run")
    demo.add_argument("--simulator-port", type=int, default=8765)
    demo.add_argument("--rate", type=float, default=20.0, help="simulated events per second")
    demo.add_argument("--seconds", type=float, default=0, help="stop after N seconds (0: Ctrl-C)")
    demo.set_defaults(handler=_demo)


def _summary(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _print_records(bootstrap: str, registry: str, stop: threading.Event) -> None:
    import uuid

    from confluent_kafka import Consumer

    from connector.runtime.tail import AvroDecoder

    decoder = AvroDecoder(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"connector-demo-{uuid.uuid4()}",
            "auto.offset.reset": "latest",
            "topic.metadata.refresh.interval.ms": 2000,
        }
    )
    consumer.subscribe(["^genesys\\..*"])
    try:
        while not stop.is_set():
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            key = (message.key() or b"").decode("utf-8", "replace")
            value = decoder.decode(message.value())
            print(f"{message.topic():<32} {key[:36]:<36} {_summary(value)}", flush=True)
    finally:
        consumer.close()
        decoder.close()


def _demo(args: argparse.Namespace) -> int:
    from connector.api import ConfigError
    from connector.config.validate import load_deployment
    from connector.devstack import Devstack
    from connector.runtime.worker import Worker
    from connector.simulator import GenesysSimulator, SimulatorConfig

    print("starting Kafka and the schema registry (first run downloads them with mvn)...")
    endpoints = Devstack().up().endpoints
    simulator = GenesysSimulator(
        SimulatorConfig(port=args.simulator_port, rate=args.rate, seed=1)
    ).start()
    os.environ.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap_servers,
            "SCHEMA_REGISTRY_URL": endpoints.schema_registry_url,
            "GENESYS_LOGIN_URL": simulator.base_url,
            "GENESYS_API_URL": simulator.base_url,
            "GENESYS_CLIENT_ID": "demo-client",
            "GENESYS_CLIENT_SECRET": "demo-secret",
        }
    )
    try:
        deployment = load_deployment([args.config])
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        simulator.stop()
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = Worker(deployment)
    worker.start()
    printer = threading.Thread(
        target=_print_records,
        args=(endpoints.kafka_bootstrap_servers, endpoints.schema_registry_url, stop),
        daemon=True,
    )
    printer.start()
    rest = deployment.worker.rest_port
    print(
        f"\nGenesys simulator {simulator.base_url} -> connector -> Kafka "
        f"{endpoints.kafka_bootstrap_servers} (registry {endpoints.schema_registry_url})\n"
        f"status: curl http://127.0.0.1:{rest}/connectors/genesys-demo/status   "
        f"ledger: curl {simulator.base_url}/_sim/ledger/summary\n"
        "records below are read back from Kafka and Avro-decoded; Ctrl-C stops everything.\n",
        flush=True,
    )
    rest_server = None
    if rest is not None:
        from connector.runtime.rest import RestServer

        rest_server = RestServer(worker, deployment.worker.rest_host, rest)
        rest_server.start()
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        while not stop.wait(0.5):
            worker.supervise_once()
            if deadline is not None and time.monotonic() >= deadline:
                stop.set()
    finally:
        print("stopping...", flush=True)
        worker.stop()
        if rest_server is not None:
            rest_server.stop()
        printer.join(timeout=5)
        summary = simulator.ledger.summary()
        simulator.stop()
        print(f"simulator delivered {summary.get('total')} events; Kafka and registry keep running")
        print("(`connector devstack down` stops them)")
    return 0
