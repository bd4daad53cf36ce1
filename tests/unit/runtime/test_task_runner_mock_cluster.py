"""The runner with a real librdkafka producer against its built-in mock cluster (no broker)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka.schema_registry import SchemaRegistryClient
from runner_fakes import Harness, wait_until

from connector.plugins.datagen.connector import DatagenConfig, DatagenSourceTask
from connector.runtime.producer import DataProducer
from connector.runtime.status import State
from connector.serde.avro import AvroConverter
from connector.testing import MemoryOffsetReader


def test_datagen_through_a_real_producer_commits_every_stream_to_its_last_seq() -> None:
    producer = DataProducer("mock:9092", {"test.mock.num.brokers": 1, "log_level": 3})
    reader = MemoryOffsetReader("orders")
    reader.set({"stream": "s0"}, {"seq": 99})  # s0 resumes after seq 99, s1 from 0
    config = DatagenConfig.model_validate(
        {
            "datagen.topic": f"orders-{uuid.uuid4().hex[:8]}",
            "datagen.count": 200,
            "datagen.partitions": 2,
            "datagen.batch.size": 64,
        }
    )
    harness = Harness(
        DatagenSourceTask(),
        worker={"offset.flush.interval.ms": 50},
        value_converter=AvroConverter(SchemaRegistryClient.new_client({"url": "mock://"})),
        producer=producer,
        clock=time.monotonic,
        config=config,
        task_config={"streams": ["s0", "s1"]},
        offset_reader=reader,
    )
    try:
        harness.start()
        wait_until(
            lambda: harness.store.committed() == {"s0": 199, "s1": 199},
            timeout_s=20.0,
            what="both streams committed up to seq 199",
        )
        assert harness.runner.submitted.acked_total == 100 + 200
        assert harness.runner.submitted.in_flight == 0
        for stream in ("s0", "s1"):  # every commit moves forward
            seqs = [o["seq"] for w in harness.store.writes for p, o in w if p["stream"] == stream]
            assert seqs == sorted(seqs)
        assert harness.status.state == State.RUNNING
        harness.stop()
        assert harness.status.state == State.STOPPED
    finally:
        producer.close(timeout_s=5.0)
