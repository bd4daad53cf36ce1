"""The devstack gives a working broker and registry: records round-trip, schemas register."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connector import devstack

pytestmark = pytest.mark.integration


def test_record_round_trips_through_the_broker(kafka_bootstrap: str, tmp_topic: str) -> None:
    delivered: list[Message] = []
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    producer.produce(
        tmp_topic,
        key=b"k1",
        value=b"hello devstack",
        headers=[("origin", b"test")],
        on_delivery=lambda err, msg: delivered.append(msg) if err is None else None,
    )
    assert producer.flush(10) == 0
    assert len(delivered) == 1
    offset = delivered[0].offset()
    assert offset is not None

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"devstack-test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    # assign(), not subscribe(): no group rebalance to wait for.
    consumer.assign([TopicPartition(tmp_topic, 0, offset)])
    try:
        deadline = time.monotonic() + 20
        msg = None
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
        assert msg is not None, "no record consumed within 20 s"
        assert msg.error() is None
        assert (msg.key(), msg.value()) == (b"k1", b"hello devstack")
        assert msg.headers() == [("origin", b"test")]
    finally:
        consumer.close()


def test_avro_schema_registers_and_fetches_back_by_id(schema_registry_url: str) -> None:
    client = SchemaRegistryClient({"url": schema_registry_url})
    suffix = uuid.uuid4().hex[:8]
    record = {
        "type": "record",
        "name": f"DevstackProbe_{suffix}",
        "namespace": "connector.test",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
    subject = f"devstack-test-{suffix}-value"

    schema_id = client.register_schema(subject, Schema(json.dumps(record), "AVRO"))
    fetched = client.get_schema(schema_id)

    assert fetched.schema_type in (None, "AVRO")  # the Confluent API omits the type for Avro
    assert fetched.schema_str is not None
    assert json.loads(fetched.schema_str) == record
    assert client.get_latest_version(subject).schema_id == schema_id


def test_registry_global_compatibility_is_backward(schema_registry_url: str) -> None:
    """Confluent's default, so a schema change is judged locally as in production."""
    if os.environ.get("SCHEMA_REGISTRY_URL"):
        pytest.skip("the registry comes from the environment, not from the devstack")
    client = SchemaRegistryClient({"url": schema_registry_url})
    assert client.get_compatibility() == "BACKWARD"


def test_registry_refuses_a_backward_incompatible_version(schema_registry_url: str) -> None:
    """A new required field (no default) cannot read the old records: 409. Adding it with a
    default can, and is accepted as version 2."""
    if os.environ.get("SCHEMA_REGISTRY_URL"):
        pytest.skip("the registry comes from the environment, not from the devstack")
    client = SchemaRegistryClient({"url": schema_registry_url})
    suffix = uuid.uuid4().hex[:8]
    subject = f"devstack-compat-{suffix}-value"
    fields: list[dict[str, object]] = [{"name": "id", "type": "string"}]

    def schema(*extra: dict[str, object]) -> Schema:
        record = {"type": "record", "name": "Compat", "namespace": "connector.test"}
        return Schema(json.dumps({**record, "fields": [*fields, *extra]}), "AVRO")

    first = client.register_schema(subject, schema())
    try:
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(subject, schema({"name": "added", "type": "string"}))
        assert refused.value.http_status_code == 409
        assert client.get_versions(subject) == [1]

        optional = {"name": "added", "type": ["null", "string"], "default": None}
        second = client.register_schema(subject, schema(optional))
        assert second != first
        assert client.get_versions(subject) == [1, 2]
    finally:
        client.delete_subject(subject)
        client.delete_subject(subject, permanent=True)


def test_status_reports_running(kafka_bootstrap: str, schema_registry_url: str) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("SCHEMA_REGISTRY_URL"):
        pytest.skip("services come from the environment, not from the devstack")

    current = devstack.status()
    assert current.is_up
    assert current.endpoints.kafka_bootstrap_servers == kafka_bootstrap
    assert current.endpoints.schema_registry_url == schema_registry_url

    cli = subprocess.run(
        [sys.executable, "-m", "connector", "devstack", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert f"KAFKA_BOOTSTRAP_SERVERS={kafka_bootstrap}" in cli.stdout
    assert f"SCHEMA_REGISTRY_URL={schema_registry_url}" in cli.stdout
