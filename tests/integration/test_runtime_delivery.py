"""The worker against a real broker and registry: Avro records land and decode by schema id;
the offsets topic is byte-compatible with Kafka Connect; connectors run side by side."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.schema_registry import SchemaRegistryClient
from kafka_helpers import (
    AvroDecoder,
    datagen,
    java_partition,
    load,
    murmur2,
    read_topic,
    running_worker,
    seqs_by_stream,
    task_status,
    wait_for_records,
    wait_until,
    write_deployment,
)

from connector.plugins.datagen.connector import VALUE_SCHEMA

pytestmark = pytest.mark.integration

Names = Callable[[str], str]


def test_records_land_in_kafka_and_decode_with_the_schema_fetched_by_id(
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
        connectors=[datagen("orders", topic, datagen_count=40, datagen_partitions=2)],
    )
    with running_worker(load(path)) as worker:
        messages = wait_for_records(kafka_bootstrap, admin, topic, 80, timeout_s=20)
        assert task_status(worker, "orders")["state"] == "RUNNING"

    registry = SchemaRegistryClient({"url": schema_registry_url})
    decode = AvroDecoder(registry)
    assert len(messages) == 80
    records = []
    for message in messages:
        value = message.value()
        assert value is not None and value[0] == 0  # magic byte
        schema_id, record = decode(value)
        assert message.key() == f"{record['stream']}:{record['seq']}".encode()
        assert message.timestamp()[1] == record["created_ms"]
        records.append((schema_id, record["stream"], record["seq"]))
    (schema_id,) = {r[0] for r in records}
    assert sorted((s, n) for _, s, n in records) == sorted(
        (f"s{p}", n) for p in range(2) for n in range(40)
    )
    fetched = orjson.loads(registry.get_schema(schema_id).schema_str or "")
    assert fetched["name"] == "Event" and fetched["namespace"] == "connector.datagen"
    assert [f["name"] for f in fetched["fields"]] == [
        f["name"] for f in VALUE_SCHEMA.definition["fields"]
    ]
    assert registry.get_latest_version(f"{topic}-value").schema_id == schema_id


def test_murmur2_matches_kafka_utils_test_vectors() -> None:
    # from Kafka's UtilsTest#testMurmur2
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


def test_offsets_topic_holds_connect_format_keys_on_javas_partition_and_is_compacted(
    kafka_bootstrap: str,
    schema_registry_url: str,
    admin: AdminClient,
    names: Names,
    tmp_path: Path,
) -> None:
    topic, offsets, connector = names("orders"), names("offsets"), names("conn")
    streams = 6
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        offset_storage_partitions=25,
        connectors=[
            datagen(connector, topic, datagen_count=30, datagen_partitions=streams, tasks_max=2)
        ],
    )
    expected_keys = {
        f'["{connector}",{{"stream":"s{n}"}}]'.encode(): f"s{n}" for n in range(streams)
    }
    with running_worker(load(path)):

        def all_committed() -> bool:
            last = {m.key(): m.value() for m in read_topic(kafka_bootstrap, offsets)}
            return all(last.get(key) == b'{"seq":29}' for key in expected_keys)

        wait_until(all_committed, 25, "every stream committed at seq 29", 0.2)

    resource = ConfigResource(ConfigResource.Type.TOPIC, offsets)
    described = admin.describe_configs([resource])[resource].result(timeout=10)
    assert described["cleanup.policy"].value == "compact"

    messages = read_topic(kafka_bootstrap, offsets)
    partitions = len(admin.list_topics(offsets, timeout=10).topics[offsets].partitions)
    assert partitions == 25
    assert {m.key() for m in messages} == set(expected_keys)
    seen_partitions = set()
    for message in messages:
        key, value = message.key(), message.value()
        assert key is not None and value is not None
        assert message.partition() == java_partition(key, partitions), key
        seen_partitions.add(message.partition())
        seq = orjson.loads(value)["seq"]
        assert value == f'{{"seq":{seq}}}'.encode()  # compact JSON, exactly Jackson's bytes
    assert len(seen_partitions) > 1  # the check above compared more than one placement
    # per key, the committed offsets only move forward
    for key in expected_keys:
        seqs = [orjson.loads(m.value() or b"")["seq"] for m in messages if m.key() == key]
        assert seqs == sorted(seqs) and seqs[-1] == 29


def test_two_connectors_run_side_by_side_with_their_own_offsets(
    kafka_bootstrap: str,
    schema_registry_url: str,
    admin: AdminClient,
    names: Names,
    tmp_path: Path,
) -> None:
    offsets = names("offsets")
    first, second = names("first"), names("second")
    path = write_deployment(
        tmp_path,
        bootstrap=kafka_bootstrap,
        registry=schema_registry_url,
        offsets_topic=offsets,
        connectors=[
            datagen("alpha", first, datagen_count=25, datagen_partitions=2),
            datagen("beta", second, datagen_count=35, datagen_partitions=1),
        ],
    )
    with running_worker(load(path)) as worker:
        first_messages = wait_for_records(kafka_bootstrap, admin, first, 50, timeout_s=20)
        second_messages = wait_for_records(kafka_bootstrap, admin, second, 35, timeout_s=20)
        assert [entry["name"] for entry in worker.status()] == ["alpha", "beta"]

        def committed() -> dict[bytes | None, bytes | None]:
            last = {m.key(): m.value() for m in read_topic(kafka_bootstrap, offsets)}
            return (
                last
                if len(last) == 3 and set(last.values()) <= {b'{"seq":24}', b'{"seq":34}'}
                else {}
            )

        final = wait_until(committed, 20, "both connectors committed to their ends", 0.2)

    decode = AvroDecoder(SchemaRegistryClient({"url": schema_registry_url}))
    assert {s: sorted(v) for s, v in seqs_by_stream(first_messages, decode).items()} == {
        "s0": list(range(25)),
        "s1": list(range(25)),
    }
    assert seqs_by_stream(second_messages, decode) == {"s0": list(range(35))}
    assert final == {
        b'["alpha",{"stream":"s0"}]': b'{"seq":24}',
        b'["alpha",{"stream":"s1"}]': b'{"seq":24}',
        b'["beta",{"stream":"s0"}]': b'{"seq":34}',
    }
    assert Counter(m.topic() for m in first_messages + second_messages) == {first: 50, second: 35}
