"""Exactly-once delivery (KIP-618) against the real broker: records and offsets in one
transaction per boundary, read_committed consumers see each record once across SIGKILLs, a
zombie is fenced, a failed transaction leaves nothing visible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import SchemaRegistryClient
from kafka_helpers import (
    AvroDecoder,
    datagen,
    load,
    read_topic,
    running_worker,
    seqs_by_stream,
    task_status,
    wait_until,
    write_deployment,
)

from connector.runtime.worker import Worker

pytestmark = pytest.mark.integration

Names = Callable[[str], str]


def _transactions(worker: Worker, outcome: str) -> float:
    value = worker.metrics.registry.get_sample_value(
        "connector_source_transaction_total",
        {"connector": "orders", "task": "0", "outcome": outcome},
    )
    return value or 0.0


_NOT_READY = (
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
)


def _committed_offsets(bootstrap: str, topic: str) -> dict[bytes, Any]:
    """The latest committed offset of every key (nothing while the topic does not exist or
    its partitions have no leader yet: the callers poll)."""
    try:
        messages = read_topic(bootstrap, topic)
    except KafkaException as exc:
        if exc.args[0].code() not in _NOT_READY:
            raise
        return {}
    return {m.key(): orjson.loads(m.value() or b"") for m in messages}


def _assert_once(seqs: dict[str, list[int]], streams: list[str], at_least: int = 1) -> None:
    for stream in streams:
        got = seqs.get(stream, [])
        duplicates = sorted(seq for seq, n in Counter(got).items() if n > 1)
        assert duplicates == [], f"{stream}: {len(duplicates)} duplicates, first {duplicates[:10]}"
        missing = sorted(set(range(max(got) + 1)) - set(got)) if got else []
        assert missing == [], f"{stream}: {len(missing)} missing, first {missing[:10]}"
        assert len(got) >= at_least, f"{stream}: only {len(got)} records"


@pytest.mark.parametrize("boundary", ["poll", "interval"])
def test_records_and_their_offsets_commit_together_at_each_boundary(
    boundary: str,
    kafka_bootstrap: str,
    schema_registry_url: str,
    admin: AdminClient,
    names: Names,
    tmp_path: Path,
) -> None:
    """Poll: one transaction per poll() batch, with the connector's own offsets topic
    (``offsets.storage.topic``); interval: one per 500 ms, in the worker's offsets topic."""
    topic, worker_offsets = names("orders"), names("offsets")
    count, batch = 1500, 50
    settings: dict[str, Any] = {"transaction_boundary": boundary}
    offsets = worker_offsets
    if boundary == "interval":
        settings["transaction_boundary_interval_ms"] = 500
    else:
        offsets = settings["offsets_storage_topic"] = names("orders-offsets")
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=worker_offsets,
        exactly_once_source_support="enabled",
        connectors=[
            datagen(
                "orders",
                topic,
                datagen_count=count,
                datagen_partitions=2,
                datagen_records_per_second=1500,
                datagen_batch_size=batch,
                exactly_once_support="required",
                **settings,
            )
        ],
    )
    started = time.monotonic()
    with running_worker(load(path)) as worker:
        wait_until(
            lambda: (
                _committed_offsets(kafka_bootstrap, offsets)
                == {f'["orders",{{"stream":"s{n}"}}]'.encode(): {"seq": count - 1} for n in (0, 1)}
            ),
            40,
            "the last offsets committed",
            0.3,
        )
        elapsed = time.monotonic() - started
        committed = _transactions(worker, "committed")
        status = task_status(worker, "orders")
    assert status["state"] == "RUNNING"
    assert status["details"]["transactional.id"] == "connect-cluster-orders-0"
    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    seqs = seqs_by_stream(read_topic(kafka_bootstrap, topic), decode)
    _assert_once(seqs, ["s0", "s1"], at_least=count)
    polls = 2 * count // batch
    if boundary == "poll":
        # one transaction per poll() batch (a batch may come back short: at least 60 of them)
        assert committed >= polls
        assert _committed_offsets(kafka_bootstrap, worker_offsets) == {}
    else:
        # about one per 500 ms: far fewer than the 60 polls
        assert 1 <= committed <= elapsed / 0.5 + 2 < polls


def _committed_total(bootstrap: str, offsets: str) -> int:
    """Records committed so far, from the committed offsets (seq is 0-based per stream)."""
    return sum(value["seq"] + 1 for value in _committed_offsets(bootstrap, offsets).values())


class _Run:
    """``connector run <deployment>`` in a subprocess, its output appended to one log."""

    def __init__(self, path: Path, log: Path) -> None:
        self._log = log.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", str(path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def end(self, sig: int) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._log.close()


def test_sigkill_during_a_stream_loses_and_duplicates_nothing(
    kafka_bootstrap: str,
    schema_registry_url: str,
    names: Names,
    tmp_path: Path,
) -> None:
    """SIGKILL ``connector run`` five times during a 2,000 records/s stream: a read_committed
    consumer sees every seq of every stream exactly once, because a restart resumes from the
    offsets of the last committed transaction and the killed transaction is aborted."""
    topic, offsets = names("orders"), names("offsets")
    streams = ["s0", "s1", "s2"]
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        exactly_once_source_support="enabled",
        connectors=[
            datagen(
                "orders",
                topic,
                datagen_partitions=len(streams),
                datagen_records_per_second=2000,
                datagen_batch_size=100,
                # a transaction is open nearly all the time, so that every kill lands in one
                transaction_boundary="interval",
                transaction_boundary_interval_ms=500,
            )
        ],
    )
    log = tmp_path / "connector.log"
    kills = 5
    for kill in range(kills + 1):
        before = _committed_total(kafka_bootstrap, offsets) if kill else 0
        run = _Run(path, log)
        try:
            wait_until(
                lambda before=before: _committed_total(kafka_bootstrap, offsets) >= before + 500,
                40,
                f"run {kill} to commit 500 more records",
                0.1,
            )
            time.sleep(0.05 * kill)  # land the kill at different points of a transaction
        finally:
            code = run.end(signal.SIGKILL if kill < kills else signal.SIGTERM)
        assert code == (-signal.SIGKILL if kill < kills else 0), log.read_text()[-3000:]

    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    committed = read_topic(kafka_bootstrap, topic)
    seqs = seqs_by_stream(committed, decode)
    _assert_once(seqs, streams, at_least=500)
    # the kills did hit open transactions: the log holds aborted records that no
    # read_committed consumer sees (otherwise this test would prove nothing)
    raw = read_topic(kafka_bootstrap, topic, committed=False)
    assert len(raw) > len(committed), "no kill left an aborted transaction behind"
    final = _committed_offsets(kafka_bootstrap, offsets)
    assert final == {
        f'["orders",{{"stream":"{stream}"}}]'.encode(): {"seq": max(seqs[stream])}
        for stream in streams
    }, "the committed offsets are those of the last committed records"


def test_a_zombie_is_fenced_stops_and_nothing_it_writes_after_is_visible(
    kafka_bootstrap: str,
    schema_registry_url: str,
    names: Names,
    tmp_path: Path,
) -> None:
    """Two workers of the same group.id run the same task: the second one's start fences the
    first, which stops on its next write, is not restarted, and leaves no record behind that
    a read_committed consumer would see twice."""
    topic, offsets = names("orders"), names("offsets")
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        exactly_once_source_support="enabled",
        task_restart_backoff_initial_ms=100,
        connectors=[
            datagen(
                "orders",
                topic,
                datagen_partitions=2,
                datagen_records_per_second=1000,
                datagen_batch_size=50,
            )
        ],
    )
    deployment = load(path)
    with running_worker(deployment) as old:
        wait_until(lambda: _committed_total(kafka_bootstrap, offsets) >= 300, 30, "old commits")
        with running_worker(deployment) as new:
            status = wait_until(
                lambda: (s := task_status(old, "orders"))["state"] == "FAILED" and s,
                30,
                "the old task to be fenced",
            )
            assert (
                "fenced: another instance with transactional.id connect-cluster-orders-0"
                in (status["trace"])
            )
            assert old.runners()[0].fenced
            at_fence = _committed_total(kafka_bootstrap, offsets)
            wait_until(
                lambda: _committed_total(kafka_bootstrap, offsets) >= at_fence + 300,
                30,
                "the new owner to commit more",
            )
            assert task_status(new, "orders")["state"] == "RUNNING"
            # the old worker supervises every 50 ms with a 100 ms restart backoff: over ten
            # backoffs it never restarts the fenced task (which would fence the new owner)
            time.sleep(1.0)
            assert task_status(old, "orders")["state"] == "FAILED"
            assert task_status(old, "orders")["restarts"] == 0
            assert task_status(new, "orders")["state"] == "RUNNING"

    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    seqs = seqs_by_stream(read_topic(kafka_bootstrap, topic), decode)
    _assert_once(seqs, ["s0", "s1"], at_least=300)


def test_a_record_kafka_refuses_aborts_its_whole_transaction_and_no_offset_moves(
    kafka_bootstrap: str,
    schema_registry_url: str,
    admin: AdminClient,
    names: Names,
    tmp_path: Path,
) -> None:
    """Record 2499 is over the topic's max.message.bytes (but under the producer's limit, so
    only the broker refuses it). Under errors.tolerance=none its transaction is aborted and
    the task fails: the records of that transaction the broker had already appended stay
    invisible to read_committed consumers, and the committed offset is that of the last
    committed record, never ahead."""
    topic, offsets = names("orders"), names("offsets")
    config = {"max.message.bytes": "20000"}
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(30)
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        exactly_once_source_support="enabled",
        task_restart_max_retries=0,
        connectors=[
            datagen(
                "orders",
                topic,
                datagen_count=4000,
                datagen_records_per_second=1000,
                datagen_batch_size=20,
                datagen_oversized_every=2500,
                datagen_oversized_bytes=50_000,
                errors_tolerance="none",
                transaction_boundary="interval",
                transaction_boundary_interval_ms=1000,
            )
        ],
    )
    with running_worker(load(path)) as worker:
        status = wait_until(
            lambda: (s := task_status(worker, "orders"))["state"] == "FAILED" and s,
            30,
            "the task to fail",
        )
        aborted = _transactions(worker, "aborted")
    assert "Kafka refused a record of the transaction" in status["trace"]
    assert "Message size too large" in status["trace"]
    assert aborted == 1

    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    visible = seqs_by_stream(read_topic(kafka_bootstrap, topic), decode).get("s0", [])
    assert visible, "a transaction was committed before the refused record"
    assert visible == list(range(len(visible))) and max(visible) < 2499
    in_log = seqs_by_stream(read_topic(kafka_bootstrap, topic, committed=False), decode)["s0"]
    aborted_part = [seq for seq in in_log if seq > max(visible)]
    assert aborted_part, "the refused transaction had records in the log (now aborted)"
    assert _committed_offsets(kafka_bootstrap, offsets) == {
        b'["orders",{"stream":"s0"}]': {"seq": max(visible)}
    }


def test_a_transaction_the_coordinator_times_out_is_sent_again_by_a_new_producer(
    kafka_bootstrap: str,
    schema_registry_url: str,
    names: Names,
    tmp_path: Path,
) -> None:
    """A broker-side abort: the coordinator aborts a transaction open longer than
    transaction.timeout.ms (2 s here, with a 15 s interval boundary) and bumps the producer's
    epoch, which librdkafka reports as fenced. The task is not a zombie (its transaction is
    that old): it takes its transactional id over with a new producer, re-sends the aborted
    items from memory and commits them; every record is visible once."""
    topic, offsets = names("orders"), names("offsets")
    count = 2000
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        exactly_once_source_support="enabled",
        producer_transaction_timeout_ms=2000,
        connectors=[
            datagen(
                "orders",
                topic,
                datagen_count=count,
                datagen_records_per_second=1000,
                datagen_batch_size=50,
                transaction_boundary="interval",
                transaction_boundary_interval_ms=15_000,
            )
        ],
    )
    with running_worker(load(path)) as worker:
        wait_until(
            lambda: (
                _committed_offsets(kafka_bootstrap, offsets)
                == {b'["orders",{"stream":"s0"}]': {"seq": count - 1}}
            ),
            60,
            "every record committed",
            0.5,
        )
        status = task_status(worker, "orders")
        aborted, committed = _transactions(worker, "aborted"), _transactions(worker, "committed")
    assert status["state"] == "RUNNING" and status.get("restarts", 0) == 0
    assert aborted >= 1 and committed >= 1
    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    _assert_once(seqs_by_stream(read_topic(kafka_bootstrap, topic), decode), ["s0"], count)
    raw = read_topic(kafka_bootstrap, topic, committed=False)
    assert len(raw) > count, "the timed-out transaction's records are in the log, aborted"
