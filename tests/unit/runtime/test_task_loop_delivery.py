"""The task loop's delivery rules, through the runner with fakes: offsets only move forward over
an acked prefix, stop is honoured under a full queue, refusals are decided on the task thread,
one error policy, and offset writes completed on the next loop iteration."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError
from runner_fakes import (
    CONNECTOR,
    FakeOffsetStore,
    Harness,
    Produced,
    ScriptedTask,
    record,
    wait_until,
)

from connector.api import MalformedInput, Polled, RetriableError, SourceRecord
from connector.config.models import ConnectorConfig
from connector.runtime.error_policy import Disposition, ErrorPolicy, Failure, Stage
from connector.runtime.metrics import WorkerMetrics
from connector.runtime.producer import DataProducer
from connector.runtime.status import State
from connector.testing import ManualClock

DLQ = {"errors.tolerance": "all", "errors.deadletterqueue.topic.name": "dlq"}
STREAMS = ("s0", "s1", "s2")


# -- 1. committed offsets: monotonic, over an acked prefix only ---------------------------------


class CheckingStore(FakeOffsetStore):
    """Checks every offsets write, at the moment it is made, against what the test resolved."""

    def __init__(self, resolved: set[tuple[str, int]], emitted: dict[str, list[int]]) -> None:
        super().__init__()
        self.resolved = resolved
        self.emitted = emitted
        self.latest: dict[str, int] = {}
        self.violations: list[str] = []
        self.lock = threading.Lock()

    def write(self, connector_name: str, offsets: Any) -> None:
        super().write(connector_name, offsets)
        with self.lock:
            for partition, offset in self.writes[-1]:
                stream, seq = partition["stream"], offset["seq"]
                if seq < self.latest.get(stream, -1):
                    self.violations.append(
                        f"{stream} went back from {self.latest[stream]} to {seq}"
                    )
                self.latest[stream] = seq
                unresolved = [
                    n for n in self.emitted[stream] if n <= seq and (stream, n) not in self.resolved
                ]
                if unresolved:
                    self.violations.append(f"{stream}@{seq} committed before {unresolved} resolved")


@pytest.mark.parametrize("seed", range(12))
def test_random_interleavings_never_commit_past_an_unresolved_record(seed: int) -> None:
    rng = random.Random(seed)
    resolved: set[tuple[str, int]] = set()
    emitted: dict[str, list[int]] = {s: [] for s in STREAMS}
    batches: list[list[Polled]] = []
    next_seq = dict.fromkeys(STREAMS, 0)
    for _ in range(8):
        batch: list[Polled] = []
        for _ in range(rng.randint(1, 12)):
            stream = rng.choice(STREAMS)
            seq = next_seq[stream]
            next_seq[stream] += 1
            emitted[stream].append(seq)
            kind = rng.random()
            if kind < 0.2:
                batch.append(MalformedInput(b"{bad", "not JSON", {"stream": stream}, {"seq": seq}))
            elif kind < 0.35:  # dropped by the transform: resolved from the start
                resolved.add((stream, seq))
                batch.append(record(seq, stream, value={"drop": True, "seq": seq}))
            else:
                batch.append(record(seq, stream))
        batches.append(batch)
    store = CheckingStore(resolved, emitted)

    def drop_marked(r: SourceRecord) -> SourceRecord | None:
        return None if r.value.get("drop") else r

    task = ScriptedTask(batches)  # type: ignore[arg-type]
    harness = Harness(task, connector_config=DLQ, transform=drop_marked, store=store).start()
    total_sent = sum(len(b) for b in batches) - sum(
        1 for b in batches for i in b if isinstance(i, SourceRecord) and i.value.get("drop")
    )
    handled: set[int] = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        produced = harness.kafka.produced[:]
        open_ = [i for i, p in enumerate(produced) if i not in handled]
        if (
            not open_
            and len([p for p in produced if p.topic == "orders"])
            + len([p for p in produced if p.topic == "dlq" and _is_malformed(p)])
            >= total_sent
            and len(resolved) == sum(len(v) for v in emitted.values())
        ):
            break
        rng.shuffle(open_)
        for index in open_[: rng.randint(0, 4)]:
            p = produced[index]
            handled.add(index)
            if p.topic == "orders" and rng.random() < 0.15:
                p.fail(KafkaError.MSG_SIZE_TOO_LARGE)  # refused: dead-lettered in its place
            else:
                stream, seq = _position(p)
                p.ack()
                resolved.add((stream, seq))
        if rng.random() < 0.3:
            harness.commit_cycle()
        time.sleep(0.001)
    harness.commit_cycle()
    assert store.violations == []
    assert len(resolved) == sum(len(v) for v in emitted.values()), "not every item was resolved"
    assert store.committed() == {s: max(v) for s, v in emitted.items() if v}
    harness.stop()
    assert harness.status.state == State.STOPPED


def _is_malformed(p: Produced) -> bool:
    return p.header("__connect.errors.stage") == "POLL"


def _position(p: Produced) -> tuple[str, int]:
    if p.topic == "dlq":
        import json

        partition = json.loads(p.header("__connect.errors.source.partition"))
        offset = json.loads(p.header("__connect.errors.source.offset"))
        return partition["stream"], offset["seq"]
    stream, seq = (p.key or b"").decode().split(":")
    return stream, int(seq)


def test_a_dead_letter_polled_after_a_record_is_not_committed_before_that_record() -> None:
    batch: list[Polled] = [
        record(0),
        MalformedInput(b"{", "not JSON", {"stream": "s0"}, {"seq": 1}),
    ]
    harness = Harness(ScriptedTask([batch]), connector_config=DLQ).start()  # type: ignore[list-item]
    (data,) = harness.produced(1)
    (dead,) = harness.produced(1, topic="dlq")
    assert harness.kafka.produced.index(data) < harness.kafka.produced.index(dead)  # in order
    dead.ack()
    harness.commit_cycle()
    assert harness.store.writes == []  # seq 1 is acked, but seq 0 is not
    data.ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s0": 1}
    harness.stop()


# -- 2. stop under a full producer queue ---------------------------------------------------------


def test_stop_ends_the_task_within_the_flush_timeout_while_the_queue_is_full() -> None:
    task = ScriptedTask([[record(n) for n in range(3)], [record(n) for n in range(3, 10)]])
    harness = Harness(
        task,
        worker={"offset.flush.timeout.ms": 600, "offset.flush.interval.ms": 60000},
        clock=time.monotonic,
    ).start()
    first = harness.produced(3)
    first[0].ack()
    first[1].ack()
    harness.producer.full = True  # Kafka unreachable: librdkafka's queue stays full
    wait_until(lambda: task.polls >= 2 and not task.batches, what="the second batch polled")
    started = time.monotonic()
    harness.runner.request_stop()
    assert harness.runner.join(2.0), "the runner ignored stop while the queue was full"
    elapsed = time.monotonic() - started
    assert elapsed < 0.6 + 0.3, f"stop took {elapsed:.2f}s, offset.flush.timeout.ms is 0.6s"
    assert harness.store.committed() == {"s0": 1}  # the acked prefix, nothing unacked
    assert harness.status.state == State.STOPPED


def test_stop_is_honoured_with_a_real_producer_that_cannot_reach_kafka() -> None:
    producer = DataProducer(
        "127.0.0.1:1",
        {"queue.buffering.max.messages": 5, "message.timeout.ms": 60000, "log_level": 0},
    )
    try:
        task = ScriptedTask([[record(n) for n in range(50)]])
        harness = Harness(
            task, producer=producer, worker={"offset.flush.timeout.ms": 500}, clock=time.monotonic
        ).start()
        wait_until(lambda: task.polls >= 1 and not task.batches, what="the batch polled")
        started = time.monotonic()
        harness.runner.request_stop()
        assert harness.runner.join(2.0)
        assert time.monotonic() - started < 0.5 + 0.3
        assert harness.store.writes == []  # nothing was acked, so nothing is committed
    finally:
        producer.producer.purge()
        producer.close(timeout_s=0.1)


# -- 3. refusals under backpressure are dead-lettered on the task thread -------------------------


def test_a_refused_record_is_dead_lettered_later_when_the_queue_is_full() -> None:
    task = ScriptedTask([[record(0), record(1)]])
    harness = Harness(task, connector_config=DLQ).start()
    produced = harness.produced(2)
    harness.producer.full = True
    produced[0].fail(KafkaError.MSG_SIZE_TOO_LARGE)  # the callback must not produce itself
    produced[1].ack()
    polls = task.polls
    wait_until(lambda: task.polls >= polls + 3, what="more loop iterations")
    assert harness.status.state == State.RUNNING
    assert harness.kafka.to("dlq") == []
    harness.producer.full = False
    (dead,) = harness.produced(1, topic="dlq")
    assert dead.header("__connect.errors.stage") == "KAFKA_PRODUCE"
    assert dead.value == produced[0].value
    harness.commit_cycle()
    assert harness.store.writes == []  # the refused record's dead letter is not acked yet
    dead.ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s0": 1}
    harness.stop()


# -- 4. one error policy ---------------------------------------------------------------------------


def _policy(**connector_config: Any) -> ErrorPolicy:
    model = ConnectorConfig.model_validate(
        {"name": CONNECTOR, "plugin": "datagen", **connector_config}
    )
    return ErrorPolicy(model, task_id=0, metrics=WorkerMetrics(), clock=ManualClock())


FAILURE = Failure(Stage.VALUE_CONVERTER, "bad value", b"x", {"stream": "s0"}, {"seq": 3})


def test_policy_none_fails_even_with_a_dead_letter_topic() -> None:
    from connector.api import TaskFailedError

    with pytest.raises(TaskFailedError, match=r'stage VALUE_CONVERTER.*"seq":3.*bad value'):
        _policy(**{"errors.deadletterqueue.topic.name": "dlq"}).tolerate(FAILURE)


def test_policy_all_dead_letters_with_a_topic_and_skips_without_one() -> None:
    assert _policy(**DLQ).tolerate(FAILURE) is Disposition.DEAD_LETTER
    assert _policy(**{"errors.tolerance": "all"}).tolerate(FAILURE) is Disposition.SKIP


@pytest.mark.parametrize("source", ["malformed", "converter", "refused"])
def test_tolerance_none_fails_the_task_for_every_failure_source_and_never_dead_letters(
    source: str,
) -> None:
    items: list[Polled] = {
        "malformed": [MalformedInput(b"{", "not JSON", {"stream": "s0"}, {"seq": 0})],
        "converter": [record(0, value={"not": {1, 2}})],  # a set is not JSON
        "refused": [record(0)],
    }[source]
    harness = Harness(
        ScriptedTask([items]),
        connector_config={"errors.deadletterqueue.topic.name": "dlq"},
        worker={"offset.flush.timeout.ms": 200},  # the failed task waits that long for acks
    ).start()
    if source == "refused":
        harness.produced(1)[0].fail(KafkaError.MSG_SIZE_TOO_LARGE)
    wait_until(lambda: harness.status.state == State.FAILED, what="FAILED")
    assert harness.kafka.to("dlq") == []
    assert harness.runner.join(5.0)


@pytest.mark.parametrize("source", ["malformed", "converter", "refused"])
def test_tolerance_all_without_a_topic_logs_skips_and_counts_every_source(
    source: str, caplog: pytest.LogCaptureFixture
) -> None:
    items: list[Polled] = {
        "malformed": [MalformedInput(b"{", "not JSON", {"stream": "s0"}, {"seq": 0})],
        "converter": [record(0, value={"not": {1, 2}})],
        "refused": [record(0)],
    }[source]
    items.append(record(1))
    harness = Harness(ScriptedTask([items]), connector_config={"errors.tolerance": "all"}).start()
    produced = harness.produced(2 if source == "refused" else 1)
    if source == "refused":
        produced[0].fail(KafkaError.MSG_SIZE_TOO_LARGE)
    produced[-1].ack()
    harness.commit_cycle()
    wait_until(lambda: harness.store.committed() == {"s0": 1}, what="offset past the failure")
    stage = {"malformed": "POLL", "converter": "VALUE_CONVERTER", "refused": "KAFKA_PRODUCE"}
    sample = harness.metrics.registry.get_sample_value(
        "kafka_connect_task_error_records_tolerated_total",
        {"connector": CONNECTOR, "task": "0", "stage": stage[source]},
    )
    assert sample == 1.0
    assert f"Executing stage '{stage[source]}'" in caplog.text
    assert harness.status.state == State.RUNNING
    harness.stop()


def test_retry_backoff_grows_then_resets_after_a_success() -> None:
    budget = _policy(**{"errors.retry.delay.max.ms": 10_000}).retry_budget()
    delays = [budget.failed() for _ in range(4)]
    assert all(d is not None for d in delays)
    assert delays[3] > delays[0] * 3  # type: ignore[operator]
    budget.succeeded()
    assert budget.failed() == pytest.approx(delays[0], rel=0.5)  # back to the first delay


def test_poll_errors_are_retried_and_a_successful_poll_resets_their_backoff() -> None:
    class Flaky(ScriptedTask):
        def __init__(self) -> None:
            super().__init__([[record(0)]])
            self.failures = 3

        def poll(self, timeout_s: float) -> list[Polled]:
            if self.failures:
                self.failures -= 1
                raise RetriableError("source briefly down")
            return super().poll(timeout_s)  # type: ignore[return-value]

    harness = Harness(
        Flaky(), connector_config={"errors.retry.delay.max.ms": 20}, clock=time.monotonic
    ).start()
    harness.produced(1)[0].ack()
    wait_until(lambda: not harness.runner._poll_retries.retrying, what="the backoff reset")
    assert harness.status.state == State.RUNNING
    harness.stop()


def test_poll_errors_fail_the_task_once_errors_retry_timeout_is_spent() -> None:
    class AlwaysDown(ScriptedTask):
        def poll(self, timeout_s: float) -> list[Polled]:
            self.polls += 1
            raise RetriableError("source down")

    harness = Harness(
        AlwaysDown([]), connector_config={"errors.retry.timeout": 0}, clock=time.monotonic
    ).start()
    wait_until(lambda: harness.status.state == State.FAILED, what="FAILED")
    assert "errors.retry.timeout" in harness.status.snapshot()["trace"]


# -- 5. offset writes complete on the next loop iteration -----------------------------------------


def _commit_failures(harness: Harness) -> float | None:
    return harness.metrics.registry.get_sample_value(
        "kafka_connect_connector_task_offset_commit_failure_total",
        {"connector": CONNECTOR, "task": "0"},
    )


class SlowWrite:
    def __init__(self) -> None:
        self.finished = False
        self.error: str | None = None

    def done(self) -> bool:
        return self.finished

    def wait(self, timeout_s: float) -> bool:
        return self.finished


class ControlledStore(FakeOffsetStore):
    """Each write stays in flight until the test finishes (or fails) it."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[SlowWrite] = []

    def write_async(self, connector_name: str, offsets: Any) -> SlowWrite:  # type: ignore[override]
        self.write(connector_name, offsets)
        self.pending.append(SlowWrite())
        return self.pending[-1]


def test_a_finished_offset_write_is_applied_on_the_next_iteration() -> None:
    store = ControlledStore()
    task = ScriptedTask([[record(0)]])
    harness = Harness(task, store=store).start()
    harness.produced(1)[0].ack()
    harness.commit_cycle()
    wait_until(lambda: store.pending, what="a write in flight")
    assert task.commits == 0
    store.pending[0].finished = True  # no clock advance: no flush interval has to pass
    wait_until(lambda: task.commits == 1, what="task.commit() after the write finished")
    harness.stop()


def test_a_failed_offset_write_is_retried_at_once_not_after_a_flush_interval() -> None:
    store = ControlledStore()
    clock = ManualClock()
    task = ScriptedTask([[record(0)]])
    harness = Harness(task, store=store, clock=clock).start()
    harness.produced(1)[0].ack()
    harness.commit_cycle()
    wait_until(lambda: store.pending, what="a write in flight")
    store.pending[0].error = "broker down"
    store.pending[0].finished = True
    wait_until(lambda: _commit_failures(harness) == 1, what="the failure noticed")
    clock.advance(0.2)  # the first retry delay, far below offset.flush.interval.ms (1 s)
    wait_until(lambda: len(store.pending) == 2, what="the retried write")
    assert store.writes[1] == [({"stream": "s0"}, {"seq": 0})]
    store.pending[1].finished = True
    wait_until(lambda: task.commits == 1, what="the retried write applied")
    harness.stop()


def test_a_hung_offset_write_is_abandoned_after_the_flush_timeout_and_written_again() -> None:
    store = ControlledStore()
    clock = ManualClock()
    task = ScriptedTask([[record(0)]])
    harness = Harness(task, store=store, clock=clock, worker={"offset.flush.timeout.ms": 300})
    harness.start()
    harness.produced(1)[0].ack()
    harness.commit_cycle()
    wait_until(lambda: store.pending, what="a write in flight")
    clock.advance(0.3)  # the write never finishes
    wait_until(lambda: _commit_failures(harness) == 1, what="the write abandoned")
    assert len(store.pending) == 1
    clock.advance(0.2)
    wait_until(lambda: len(store.pending) == 2, what="a second write after the timeout")
    store.pending[1].finished = True
    wait_until(lambda: task.commits == 1, what="the second write applied")
    harness.stop()


# -- 9 (runtime side). a record too large for Kafka is dead-lettered, truncated -----------------


def test_an_oversized_record_is_dead_lettered_truncated_with_its_size_and_digest() -> None:
    import hashlib

    big = "x" * 1_200_000
    task = ScriptedTask([[record(0, value=big), record(1)]])
    harness = Harness(task, connector_config=DLQ).start()
    (dead,) = harness.produced(1, topic="dlq")
    (ok,) = harness.produced(1)
    original = f'"{big}"'.encode()  # the JSON converter's bytes are what Kafka refused
    assert dead.header("__connect.errors.stage") == "KAFKA_PRODUCE"
    assert dead.header("__connect.errors.payload.truncated") == "true"
    assert dead.header("__connect.errors.payload.size") == str(len(original))
    assert dead.header("__connect.errors.payload.sha256") == hashlib.sha256(original).hexdigest()
    assert dead.value is not None and len(dead.value) < harness.producer.max_message_bytes
    assert original.startswith(dead.value)
    dead.ack()
    ok.ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s0": 1}
    assert harness.status.state == State.RUNNING
    harness.stop()


def test_a_header_name_that_is_not_utf8_is_dead_lettered_never_handed_to_librdkafka() -> None:
    bad = SourceRecord(
        "orders",
        {"seq": 0},
        key="s0:0",
        source_partition={"stream": "s0"},
        source_offset={"seq": 0},
        headers=[("\ud800", b"x"), ("fine", "\udfff value")],
    )
    harness = Harness(ScriptedTask([[bad, record(1)]]), connector_config=DLQ).start()
    (dead,) = harness.produced(1, topic="dlq")
    assert dead.header("__connect.errors.stage") == "KAFKA_PRODUCE"
    assert "header name is not UTF-8" in dead.header("__connect.errors.exception.message")
    names = [name for name, _ in dead.headers]
    assert all(name.encode("utf-8") for name in names)  # the dead letter itself is safe
    (ok,) = harness.produced(1)
    dead.ack()
    ok.ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s0": 1}
    harness.stop()


def test_a_source_partition_that_is_not_json_is_dead_lettered_without_moving_offsets() -> None:
    odd = SourceRecord("orders", {"seq": 0}, source_partition={"p": {1, 2}}, source_offset={})
    harness = Harness(ScriptedTask([[odd, record(0)]]), connector_config=DLQ).start()
    (dead,) = harness.produced(1, topic="dlq")
    assert "cannot be stored as JSON" in dead.header("__connect.errors.exception.message")
    (ok,) = harness.produced(1)
    dead.ack()
    ok.ack()
    harness.commit_cycle()
    assert harness.store.committed() == {"s0": 0}
    assert harness.status.state == State.RUNNING
    harness.stop()
