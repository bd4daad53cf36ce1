"""Stop and start again: a restarted connector resumes after its committed offsets, and
SIGTERM commits offsets before the process exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from kafka_helpers import (
    AvroDecoder,
    datagen,
    load,
    read_topic,
    running_worker,
    seqs_by_stream,
    wait_for_records,
    wait_until,
    write_deployment,
)

pytestmark = pytest.mark.integration

Names = Callable[[str], str]


def test_a_restarted_worker_resumes_from_the_committed_offsets(
    kafka_bootstrap: str,
    schema_registry_url: str,
    admin: AdminClient,
    names: Names,
    tmp_path: Path,
) -> None:
    topic, offsets = names("orders"), names("offsets")
    count = 1500
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        offset_flush_interval_ms=60000,  # only the graceful stop commits
        connectors=[
            datagen(
                "orders",
                topic,
                datagen_count=count,
                datagen_partitions=2,
                datagen_records_per_second=500,  # slow enough that the stop lands midway
                datagen_batch_size=50,
            )
        ],
    )
    deployment = load(path)
    with running_worker(deployment):
        wait_for_records(kafka_bootstrap, admin, topic, 600, timeout_s=20)
    first_run = read_topic(kafka_bootstrap, topic)
    assert 600 <= len(first_run) < 2 * count, "the first run must stop midway"
    committed = {
        m.key(): orjson.loads(m.value() or b"") for m in read_topic(kafka_bootstrap, offsets)
    }

    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    first = seqs_by_stream(first_run, decode)
    # the stop committed exactly what had reached Kafka
    assert committed == {
        f'["orders",{{"stream":"{stream}"}}]'.encode(): {"seq": max(seqs)}
        for stream, seqs in first.items()
    }

    with running_worker(deployment):
        wait_for_records(kafka_bootstrap, admin, topic, 2 * count, timeout_s=20)
    every = seqs_by_stream(read_topic(kafka_bootstrap, topic), decode)

    for stream in ("s0", "s1"):
        duplicates = [seq for seq, n in Counter(every[stream]).items() if n > 1]
        assert duplicates == [], f"{stream} re-emitted {duplicates[:10]}"
        assert sorted(every[stream]) == list(range(count)), f"{stream} has gaps"
        # the second run started right after the first run's last record
        assert every[stream][len(first[stream])] == max(first[stream]) + 1


def test_sigterm_commits_the_offsets_of_everything_delivered_before_exit(
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
        offset_flush_interval_ms=600000,  # only the shutdown commit can write offsets
        connectors=[
            datagen(
                "orders",
                topic,
                datagen_partitions=3,
                datagen_records_per_second=2000,
                datagen_batch_size=100,
            )
        ],
    )
    log = (tmp_path / "connector.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "run", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_records(kafka_bootstrap, admin, topic, 500, timeout_s=25)
        assert read_topic(kafka_bootstrap, offsets) == [], "nothing may be committed before"
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    output = (tmp_path / "connector.log").read_text()
    assert returncode == 0, output
    assert "received SIGTERM, stopping" in output

    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    delivered = seqs_by_stream(read_topic(kafka_bootstrap, topic), decode)
    assert set(delivered) == {"s0", "s1", "s2"}
    for seqs in delivered.values():
        assert sorted(seqs) == list(range(len(seqs)))  # no gaps, no duplicates
    commits = read_topic(kafka_bootstrap, offsets)
    assert Counter(m.key() for m in commits) == {
        f'["orders",{{"stream":"{s}"}}]'.encode(): 1 for s in delivered
    }, "exactly one commit per stream: the one at shutdown"
    assert {m.key(): orjson.loads(m.value() or b"") for m in commits} == {
        f'["orders",{{"stream":"{stream}"}}]'.encode(): {"seq": max(seqs)}
        for stream, seqs in delivered.items()
    }


def test_offsets_cli_lists_what_the_worker_committed(
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
        connectors=[datagen("orders", topic, datagen_count=10, datagen_partitions=2)],
    )
    with running_worker(load(path)):
        wait_until(
            lambda: (
                {m.value() for m in read_topic(kafka_bootstrap, offsets)} == {b'{"seq":9}'}
                and len({m.key() for m in read_topic(kafka_bootstrap, offsets)}) == 2
            ),
            20,
            "both streams committed",
            0.2,
        )
    listed = subprocess.run(
        [sys.executable, "-m", "connector", "offsets", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert [orjson.loads(line) for line in listed.stdout.splitlines()] == [
        {"key": '["orders",{"stream":"s0"}]', "offset": {"seq": 9}},
        {"key": '["orders",{"stream":"s1"}]', "offset": {"seq": 9}},
    ]
