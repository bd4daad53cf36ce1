"""Where records land and what happens to records Kafka cannot take, against a real broker:
keyed records on Java's partition, oversized records dead-lettered and the task going on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_helpers import (
    datagen,
    java_partition,
    load,
    read_topic,
    running_worker,
    task_status,
    wait_for_records,
    wait_until,
    write_deployment,
)

from connector.runtime.offset_store import offset_key

pytestmark = pytest.mark.integration

Names = Callable[[str], str]


def test_keyed_records_land_on_the_partition_javas_producer_would_choose(
    kafka_bootstrap: str, schema_registry_url: str, admin: AdminClient, names: Names, tmp_path: Path
) -> None:
    topic, offsets = names("keyed"), names("offsets")
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])[topic].result(
        timeout=30
    )
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        connectors=[datagen("keyed", topic, datagen_count=100, datagen_partitions=3)],
    )
    with running_worker(load(path)):
        messages = wait_for_records(kafka_bootstrap, admin, topic, 300, timeout_s=30)
    assert len(messages) == 300
    assert len({m.partition() for m in messages}) == 6  # the keys spread over all partitions
    misplaced = [
        (m.key(), m.partition())
        for m in messages
        if m.partition() != java_partition(m.key() or b"", 6)
    ]
    assert misplaced == []


def test_an_oversized_record_goes_to_the_dead_letter_topic_truncated_and_the_task_goes_on(
    kafka_bootstrap: str, schema_registry_url: str, admin: AdminClient, names: Names, tmp_path: Path
) -> None:
    topic, dlq, offsets = names("big"), names("big-dlq"), names("offsets")
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        connectors=[
            datagen(
                "big",
                topic,
                datagen_count=3,
                datagen_payload_bytes=1_200_000,  # each record is over message.max.bytes
                errors_tolerance="all",
                errors_deadletterqueue_topic_name=dlq,
                **{"value.converter": "json"},
            )
        ],
    )
    with running_worker(load(path)) as worker:
        dead = wait_for_records(kafka_bootstrap, admin, dlq, 3, timeout_s=30)
        key = offset_key("big", {"stream": "s0"})
        wait_until(
            lambda: any(m.key() == key for m in read_topic(kafka_bootstrap, offsets)),
            20,
            "the offset past the dead letters",
        )
        status = task_status(worker, "big")
        assert status["state"] == "RUNNING" and status["restarts"] == 0
    committed = [m for m in read_topic(kafka_bootstrap, offsets) if m.key() == key]
    assert orjson.loads(committed[-1].value() or b"") == {"seq": 2}
    for message in dead:
        headers = {k: (v or b"").decode() for k, v in message.headers() or []}
        assert headers["__connect.errors.stage"] == "KAFKA_PRODUCE"
        assert headers["__connect.errors.payload.truncated"] == "true"
        size = int(headers["__connect.errors.payload.size"])
        assert size > 1_200_000
        value = message.value() or b""
        assert 0 < len(value) < 1_000_000
        assert value.startswith(b'{"stream":"s0","seq":')
        assert len(headers["__connect.errors.payload.sha256"]) == len(hashlib.sha256().hexdigest())
        assert "MSG_SIZE_TOO_LARGE" in headers["__connect.errors.exception.message"]
