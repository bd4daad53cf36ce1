"""SourceTaskRunner with fakes: acked-prefix commits, filters, error tolerance, DLQ, retries."""

from __future__ import annotations

import json
import threading
from typing import Any

from confluent_kafka import KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient
from runner_fakes import CONNECTOR, Harness, ScriptedTask, record, wait_until

from connector.api import AvroSchema, ConversionError, MalformedInput, RetriableError, SourceRecord
from connector.plugins.datagen.connector import VALUE_SCHEMA
from connector.runtime.status import State
from connector.serde.avro import AvroConverter
from connector.transforms.chain import build_chain

S0 = {"stream": "s0"}
S1 = {"stream": "s1"}


def datagen_value(seq: Any, stream: str = "s0") -> dict[str, Any]:
    return {"stream": stream, "seq": seq, "created_ms": 0, "payload": None}


def avro_record(seq: int, valid: bool = True) -> SourceRecord:
    return SourceRecord(
        topic="orders",
        value=datagen_value(seq if valid else "not-a-number"),
        key=f"s0:{seq}",
        source_partition=S0,
        source_offset={"seq": seq},
        value_schema=VALUE_SCHEMA,
    )


def avro_converter() -> AvroConverter:
    return AvroConverter(SchemaRegistryClient.new_client({"url": "mock://"}))


def test_commit_writes_only_the_acked_prefix_of_each_partition() -> None:
    task = ScriptedTask([[record(n) for n in range(5)] + [record(n, "s1") for n in range(2)]])
    harness = Harness(task).start()
    produced = harness.produced(7)
    assert [p.key for p in produced] == [f"s0:{n}".encode() for n in range(5)] + [
        b"s1:0",
        b"s1:1",
    ]
    assert json.loads(produced[0].value or b"") == {"stream": "s0", "seq": 0}

    for n in (0, 1, 3, 4):  # seq 2 of s0 is not acked yet; s1 only its second record
        produced[n].ack()
    produced[6].ack()
    harness.commit_cycle()
    assert harness.store.writes == [[(S0, {"seq": 1})]]
    assert task.commits == 1

    produced[2].ack()
    produced[5].ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s0": 4, "s1": 1}
    harness.stop()
    assert harness.status.state == State.STOPPED


def test_nothing_is_committed_before_the_flush_interval() -> None:
    task = ScriptedTask([[record(0)]])
    harness = Harness(task).start()
    harness.produced(1)[0].ack()
    polls = task.polls
    wait_until(lambda: task.polls >= polls + 5)
    assert harness.store.writes == []
    harness.commit_cycle()
    assert harness.store.writes == [[(S0, {"seq": 0})]]
    harness.stop()


def test_filtered_records_advance_the_committed_offset() -> None:
    only_even = build_chain(
        ["drop"],
        {"drop.type": "Filter", "drop.predicate": "odd"},
        ["odd"],
        {"odd.type": "HasHeaderKey", "odd.name": "odd"},
    )
    records = [
        SourceRecord(
            "orders",
            {"seq": n},
            key=str(n),
            source_partition=S0,
            source_offset={"seq": n},
            headers=[("odd", b"")] if n % 2 else None,
        )
        for n in range(6)
    ]
    task = ScriptedTask([records])
    harness = Harness(task, transform=only_even).start()
    produced = harness.produced(3)
    assert [p.key for p in produced] == [b"0", b"2", b"4"]
    for p in produced[:2]:
        p.ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s0": 3}  # 0, 1 (filtered), 2, 3 (filtered)
    produced[2].ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s0": 5}  # the trailing filtered record counts too
    harness.stop()


def test_conversion_failure_under_tolerance_none_fails_the_task_with_its_context() -> None:
    task = ScriptedTask([[avro_record(0), avro_record(1), avro_record(2, valid=False)]])
    harness = Harness(task, value_converter=avro_converter())
    harness.start()
    produced = harness.produced(2)
    wait_until(lambda: harness.status.state == State.FAILED, what="FAILED")
    # the records sent before the bad one are acked after the failure: the final commit waits
    # for them (bounded by offset.flush.timeout.ms), so a restart does not send them again
    for p in produced:
        p.ack()
    assert harness.runner.join(5.0)
    trace = harness.status.snapshot()["trace"]
    assert "Tolerance exceeded in error handler" in trace
    assert f"connector {CONNECTOR}" in trace
    assert "stage VALUE_CONVERTER" in trace
    assert "topic orders" in trace
    assert 'source offset {"seq":2}' in trace
    assert isinstance(harness.runner.error.__cause__, ConversionError)  # type: ignore[union-attr]
    assert task.stopped.is_set()
    assert harness.store.committed() == {"s0": 1}
    assert len(harness.kafka.produced) == 2


def test_conversion_failure_under_tolerance_all_goes_to_the_dead_letter_topic() -> None:
    task = ScriptedTask([[avro_record(0), avro_record(1, valid=False), avro_record(2)]])
    harness = Harness(
        task,
        connector_config={
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "orders-dlq",
        },
        value_converter=avro_converter(),
    ).start()
    (dead,) = harness.produced(1, topic="orders-dlq")
    good = harness.produced(2)
    assert "orders-dlq" in harness.ensured
    assert [p.key for p in good] == [b"s0:0", b"s0:2"]
    assert dead.key == b"s0:1"
    assert json.loads(dead.value or b"") == datagen_value("not-a-number")
    assert dead.header("__connect.errors.stage") == "VALUE_CONVERTER"
    assert dead.header("__connect.errors.connector.name") == CONNECTOR
    assert dead.header("__connect.errors.topic") == "orders"
    assert dead.header("__connect.errors.source.partition") == '{"stream":"s0"}'
    assert dead.header("__connect.errors.source.offset") == '{"seq":1}'
    assert dead.header("__connect.errors.exception.class.name").endswith("ConversionError")
    assert "does not match Avro schema" in dead.header("__connect.errors.exception.message")

    good[0].ack()
    good[1].ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s0": 0}  # seq 1's DLQ write is not acked yet
    dead.ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s0": 2}
    harness.stop()
    assert harness.status.state == State.STOPPED


class FlakyConverter:
    """Raises RetriableError for the first ``failures`` calls (a registry outage)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def convert(self, topic: str, value: Any, schema: AvroSchema | None) -> bytes | None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RetriableError("schema registry unavailable")
        return json.dumps(value).encode()


def test_retriable_converter_failures_are_retried_without_loss_or_reordering() -> None:
    converter = FlakyConverter(failures=3)
    task = ScriptedTask([[record(n) for n in range(4)]])
    harness = Harness(
        task,
        connector_config={
            "errors.retry.delay.max.ms": 5,
            "errors.deadletterqueue.topic.name": "dlq",
        },
        value_converter=converter,
    ).start()
    produced = harness.produced(4)
    assert [p.key for p in produced] == [f"s0:{n}".encode() for n in range(4)]
    assert harness.kafka.to("dlq") == []
    assert converter.calls == 7
    assert harness.status.state == State.RUNNING
    for p in produced:
        p.ack()
    harness.stop()
    assert harness.store.committed() == {"s0": 3}


def test_retriable_failures_give_up_after_errors_retry_timeout() -> None:
    converter = FlakyConverter(failures=10**9)
    task = ScriptedTask([[record(0)]])
    harness = Harness(
        task,
        connector_config={"errors.retry.timeout": 0, "errors.retry.delay.max.ms": 5},
        value_converter=converter,
    ).start()
    wait_until(lambda: harness.status.state == State.FAILED, what="FAILED")
    assert "schema registry unavailable" in harness.status.snapshot()["trace"]


def test_graceful_stop_waits_for_acks_then_commits() -> None:
    task = ScriptedTask([[record(n) for n in range(3)]])
    harness = Harness(task).start()
    produced = harness.produced(3)
    stopper = threading.Thread(target=harness.stop)
    stopper.start()
    wait_until(lambda: task.stopped.is_set(), what="task.stop()")
    assert harness.store.writes == []  # still waiting for the acks
    for p in reversed(produced):
        p.ack()
    stopper.join(10.0)
    assert harness.store.writes == [[(S0, {"seq": 2})]]
    assert harness.status.state == State.STOPPED


def test_delivery_failure_under_tolerance_none_fails_without_committing_past_it() -> None:
    task = ScriptedTask([[record(n) for n in range(3)]])
    harness = Harness(task, worker={"offset.flush.timeout.ms": 100}).start()
    produced = harness.produced(3)
    produced[0].ack()
    produced[1].fail(KafkaError.MSG_SIZE_TOO_LARGE)
    produced[2].ack()
    wait_until(lambda: harness.status.state == State.FAILED, what="FAILED")
    assert "MSG_SIZE_TOO_LARGE" in harness.status.snapshot()["trace"]
    assert harness.runner.join(5.0)
    assert harness.store.committed() == {"s0": 0}


def test_dead_letters_from_the_task_are_written_with_their_source_position() -> None:
    task = ScriptedTask(
        [[MalformedInput(b"{not json", "frame is not JSON", S1, {"seq": 7})]]  # type: ignore[list-item]
    )
    harness = Harness(
        task,
        connector_config={"errors.tolerance": "all", "errors.deadletterqueue.topic.name": "dlq"},
    ).start()
    (dead,) = harness.produced(1, topic="dlq")
    assert dead.value == b"{not json"
    assert dead.header("__connect.errors.stage") == "POLL"
    assert dead.header("__connect.errors.exception.message") == "frame is not JSON"
    assert dead.header("__connect.errors.source.offset") == '{"seq":7}'
    dead.ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s1": 7}
    harness.stop()
