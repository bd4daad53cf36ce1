"""Errors against a real broker and registry: the dead-letter topic, a failing task restarted
with backoff, and a registry outage that is retried instead of losing records."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from kafka_helpers import (
    AvroDecoder,
    TcpForwarder,
    datagen,
    free_port,
    load,
    read_topic,
    running_worker,
    seqs_by_stream,
    task_status,
    topic_exists,
    wait_for_records,
    wait_until,
    write_deployment,
)

pytestmark = pytest.mark.integration

Names = Callable[[str], str]


def test_conversion_failures_go_to_the_dead_letter_topic_with_error_headers(
    kafka_bootstrap: str,
    schema_registry_url: str,
    admin: AdminClient,
    names: Names,
    tmp_path: Path,
) -> None:
    topic, offsets, dlq = names("orders"), names("offsets"), names("dlq")
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        connectors=[
            datagen(
                "orders",
                topic,
                datagen_count=50,
                datagen_invalid_every=10,
                errors_tolerance="all",
                errors_deadletterqueue_topic_name=dlq,
            )
        ],
    )
    with running_worker(load(path)) as worker:
        dead = wait_for_records(kafka_bootstrap, admin, dlq, 5, timeout_s=20)
        good = wait_for_records(kafka_bootstrap, admin, topic, 45, timeout_s=20)
        wait_until(
            lambda: (
                [m.value() for m in read_topic(kafka_bootstrap, offsets)][-1:] == [b'{"seq":49}']
            ),
            20,
            "offset 49 committed (past the dead-lettered seq 49)",
            0.2,
        )
        assert task_status(worker, "orders")["state"] == "RUNNING"

    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    assert seqs_by_stream(good, decode) == {"s0": [n for n in range(50) if (n + 1) % 10 != 0]}
    assert len(dead) == 5
    for message, seq in zip(dead, (9, 19, 29, 39, 49), strict=True):
        headers = {k: v.decode() for k, v in message.headers() or []}
        assert message.key() == f"s0:{seq}".encode()
        assert orjson.loads(message.value() or b"")["seq"] == "not-a-number"
        assert headers["__connect.errors.stage"] == "VALUE_CONVERTER"
        assert headers["__connect.errors.exception.class.name"].endswith("ConversionError")
        assert "does not match Avro schema" in headers["__connect.errors.exception.message"]
        assert headers["__connect.errors.source.partition"] == '{"stream":"s0"}'
        assert headers["__connect.errors.source.offset"] == f'{{"seq":{seq}}}'
        assert headers["__connect.errors.topic"] == topic
        assert headers["__connect.errors.connector.name"] == "orders"
        assert headers["__connect.errors.task.id"] == "0"


def test_tolerance_none_fails_the_task_naming_the_record_and_restarts_it_with_backoff(
    kafka_bootstrap: str,
    schema_registry_url: str,
    admin: AdminClient,
    names: Names,
    tmp_path: Path,
) -> None:
    topic, offsets = names("orders"), names("offsets")
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        task_restart_backoff_initial_ms=5000,  # above the cap: the cap wins
        task_restart_backoff_max_ms=300,
        connectors=[datagen("orders", topic, datagen_count=50, datagen_invalid_every=10)],
    )
    with running_worker(load(path)) as worker:
        failed = wait_until(
            lambda: (s := task_status(worker, "orders"))["state"] == "FAILED" and s,
            20,
            "the task to fail",
            0.02,
        )
        trace = failed["trace"]
        assert "Tolerance exceeded in error handler" in trace
        assert "connector orders" in trace
        assert f"topic {topic}" in trace
        assert 'source offset {"seq":9}' in trace
        assert "ConversionError" in trace
        delays = set()

        def restarted_three_times() -> bool:
            status = task_status(worker, "orders")
            delays.add(status.get("details", {}).get("restart_in_s"))
            return bool(status["restarts"] >= 3)

        wait_until(restarted_three_times, 10, "three restarts", 0.01)
        assert delays - {None} and all(0 < d <= 0.3 for d in delays - {None}), delays
        entry = worker.status()[0]
        task = entry["tasks"][0]
        assert task["state"] in ("FAILED", "RUNNING", "RESTARTING")
        # its only task failing again and again: the connector shows it, with the reason
        down = task["state"] in ("FAILED", "RESTARTING")
        assert entry["connector"]["state"] == ("FAILED" if down else "RUNNING")

    # every run stops at the same bad record: seqs 0..8 are delivered exactly once
    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    assert seqs_by_stream(read_topic(kafka_bootstrap, topic), decode) == {"s0": list(range(9))}
    last = {m.key(): m.value() for m in read_topic(kafka_bootstrap, offsets)}
    assert last == {b'["orders",{"stream":"s0"}]': b'{"seq":8}'}


def test_a_registry_outage_is_retried_and_loses_nothing(
    kafka_bootstrap: str,
    schema_registry_url: str,
    admin: AdminClient,
    names: Names,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic, offsets, dlq = names("orders"), names("offsets"), names("dlq")
    connector = names("outage")  # metrics are per process: a name no other test used
    registry = urlsplit(schema_registry_url)
    assert registry.hostname is not None and registry.port is not None
    port = free_port()
    outage_url = urlunsplit(registry._replace(netloc=f"127.0.0.1:{port}"))
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        connectors=[
            datagen(
                connector,
                topic,
                datagen_count=100,
                datagen_partitions=2,
                errors_tolerance="all",
                errors_deadletterqueue_topic_name=dlq,
                errors_retry_delay_max_ms=500,
                **{"value.converter.schema.registry.url": outage_url},
            )
        ],
    )
    caplog.set_level(logging.WARNING, logger="connector.runtime")
    forwarders: list[TcpForwarder] = []
    try:
        with running_worker(load(path)) as worker:
            wait_until(
                lambda: "schema registry unreachable" in caplog.text, 20, "a retry warning", 0.05
            )
            polled = worker.metrics.registry.get_sample_value(
                "connector_source_record_poll_total", {"connector": connector, "task": "0"}
            )
            assert polled is not None and polled > 0  # the source was read meanwhile
            assert not topic_exists(admin, topic) or read_topic(kafka_bootstrap, topic) == []
            # the registry comes back on the same address
            forwarders.append(TcpForwarder(port, (registry.hostname, registry.port)))
            messages = wait_for_records(kafka_bootstrap, admin, topic, 200, timeout_s=25)
            assert forwarders[0].connections >= 1
            assert task_status(worker, connector)["state"] == "RUNNING"
    finally:
        for forwarder in forwarders:
            forwarder.close()

    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    assert {s: sorted(v) for s, v in seqs_by_stream(messages, decode).items()} == {
        "s0": list(range(100)),
        "s1": list(range(100)),
    }
    assert not topic_exists(admin, dlq) or read_topic(kafka_bootstrap, dlq) == []  # none given up
