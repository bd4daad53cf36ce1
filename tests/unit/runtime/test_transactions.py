"""The exactly-once task loop against a scripted transactional producer: what each transaction
holds, when it ends, and what happens to its items when it fails.

The real broker is in tests/integration/test_runtime_exactly_once.py; here every transaction
outcome (an abortable commit, a refused record, fencing, a task's own boundaries) is forced
at a chosen point, which a real broker cannot do on demand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException
from runner_fakes import CONNECTOR, ScriptedTask, record, wait_until

from connector.api import SourceRecord, TaskContext
from connector.config.models import ConnectorConfig, WorkerConfig
from connector.plugins.datagen.connector import DatagenConfig
from connector.runtime.context import RuntimeTaskContext
from connector.runtime.metrics import WorkerMetrics
from connector.runtime.status import State, TaskStatus
from connector.runtime.task_runner import SourceTaskRunner
from connector.runtime.transactions import TaskTransactionContext, TransactionSettings
from connector.serde.converter import JsonConverter, StringConverter
from connector.testing import MemoryOffsetReader

OFFSETS = "offsets"


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    on_delivery: Callable[[Any, Any], None] | None


class FakeTransactionalProducer:
    """Keeps the open transaction's records; commit acks them, abort purges them. Failures
    are scripted: ``commit_errors`` are raised by the next commits, ``refuse_next`` makes the
    next record's delivery fail, ``state_after`` makes produce refuse records once that many
    were taken (the transaction went abortable mid-batch)."""

    transactional_id = "connect-cluster-orders-0"
    transaction_timeout_s = 60.0
    max_message_bytes = 1_000_000

    def __init__(self) -> None:
        self.open: list[Sent] = []
        self.committed: list[list[Sent]] = []
        self.aborted: list[list[Sent]] = []
        self.calls: list[str] = []
        self.commit_errors: list[KafkaError] = []
        self.refuse_next: int | None = None
        self.state_after: int | None = None
        self.fatal_error: KafkaError | None = None
        self.abortable: KafkaError | None = None
        self.produced = 0
        self.lock = threading.Lock()

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Any = None,
        timestamp: int = 0,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        with self.lock:
            if self.state_after is not None and len(self.open) >= self.state_after:
                self.abortable = KafkaError(KafkaError._STATE)
                raise BufferError("the open transaction takes no more records")
            self.open.append(Sent(topic, key, value, on_delivery))
            self.produced += 1
            if self.refuse_next is not None and on_delivery is not None:
                self.refuse_next = None
                on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), None)

    def produce_offset(self, topic: str, key: bytes, value: bytes | None, timeout_s: float) -> None:
        with self.lock:
            self.open.append(Sent(topic, key, value, None))

    def init_transactions(self, timeout_s: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")
        self.produced = 0

    def commit_transaction(self, timeout_s: float) -> None:
        self.calls.append("commit")
        if self.commit_errors:
            raise KafkaException(self.commit_errors.pop(0))
        with self.lock:
            sent, self.open = self.open, []
        for item in sent:
            if item.on_delivery is not None:
                item.on_delivery(None, None)
        self.committed.append(sent)

    def abort_transaction(self, timeout_s: float) -> None:
        self.calls.append("abort")
        with self.lock:
            sent, self.open = self.open, []
            self.abortable = None
            self.state_after = None
        for item in sent:  # librdkafka purges what the transaction still holds
            if item.on_delivery is not None:
                item.on_delivery(KafkaError(KafkaError._PURGE_QUEUE), None)
        self.aborted.append(sent)

    def renew(self, init_timeout_s: float) -> None:
        """A new producer: the old one's transaction is gone (the coordinator aborted it)."""
        self.calls.append("renew")
        self.fatal_error = None
        with self.lock:
            self.aborted.append(self.open)
            self.open = []

    def close(self) -> None:
        self.calls.append("close")

    # -- what the transactions held ----------------------------------------------------------

    def records(self, transactions: list[list[Sent]]) -> list[list[int]]:
        """The datagen seqs of the data records of each transaction."""
        return [
            [orjson.loads(s.value or b"")["seq"] for s in sent if s.topic == "orders"]
            for sent in transactions
        ]

    def offsets(self, transactions: list[list[Sent]]) -> list[dict[str, int]]:
        """The offsets records of each transaction: stream -> seq."""
        result = []
        for sent in transactions:
            found = {}
            for item in sent:
                if item.topic == OFFSETS:
                    name, partition = orjson.loads(item.key or b"")
                    assert name == CONNECTOR
                    found[partition["stream"]] = orjson.loads(item.value or b"")["seq"]
            result.append(found)
        return result


class FakeStore:
    """The connector's offsets store as the committer uses it."""

    topic = OFFSETS

    def __init__(self) -> None:
        self.reads: list[str | None] = []
        self.applied: dict[bytes, bytes | None] = {}

    def read_to_end(self, timeout_s: float = 30.0, *, connector: str | None = None) -> None:
        self.reads.append(connector)

    def apply(self, written: dict[bytes, bytes | None]) -> None:
        self.applied.update(written)


class ContextTask(ScriptedTask):
    """Scripted batches; ``requests[i]`` is asked of the transaction context after batch i."""

    def __init__(self, batches: list[list[SourceRecord]], requests: dict[int, str]) -> None:
        super().__init__(batches)
        self.requests = requests
        self.served = 0

    def start(self, ctx: TaskContext) -> None:
        super().start(ctx)
        assert ctx.transaction_context is not None
        self.transactions = ctx.transaction_context

    def poll(self, timeout_s: float) -> list[SourceRecord]:
        batch = super().poll(timeout_s)
        if batch:
            request = self.requests.get(self.served)
            self.served += 1
            if request == "commit":
                self.transactions.commit_transaction()
            elif request == "abort":
                self.transactions.abort_transaction()
        return batch


@dataclass
class Eos:
    """A runner in exactly-once mode wired to the fakes."""

    task: ScriptedTask
    boundary: str = "poll"
    connector_config: dict[str, Any] = field(default_factory=dict)
    producer: FakeTransactionalProducer = field(default_factory=FakeTransactionalProducer)
    store: FakeStore = field(default_factory=FakeStore)

    def __post_init__(self) -> None:
        self.status = TaskStatus(CONNECTOR, 0)
        self.metrics = WorkerMetrics()
        connector_config = ConnectorConfig.model_validate(
            {"name": CONNECTOR, "plugin": "datagen", "errors.retry.delay.max.ms": 1}
            | self.connector_config
        )
        worker = WorkerConfig.model_validate({"exactly.once.source.support": "enabled"})
        self.ctx = RuntimeTaskContext(
            connector_name=CONNECTOR,
            task_id=0,
            config=DatagenConfig(datagen_topic="orders"),
            task_config={},
            offset_reader=MemoryOffsetReader(CONNECTOR),
            status=self.status,
            metrics=self.metrics,
            transaction_context=TaskTransactionContext() if self.boundary == "connector" else None,
        )
        self.runner = SourceTaskRunner(
            task=self.task,
            ctx=self.ctx,
            status=self.status,
            connector_config=connector_config,
            worker=worker,
            producer=self.producer,  # type: ignore[arg-type]
            offset_store=self.store,  # type: ignore[arg-type]
            key_converter=StringConverter(),
            value_converter=JsonConverter(),
            transform=None,
            ensure_topic=lambda topic: None,
            metrics=self.metrics,
            transactions=TransactionSettings(
                transactional_id=FakeTransactionalProducer.transactional_id,
                offsets_topic=OFFSETS,
                boundary=self.boundary,
                interval_s=60.0,
                transaction_timeout_s=60.0,
            ),
        )

    def run_until(self, condition: Callable[[], Any], what: str) -> None:
        self.runner.start()
        wait_until(condition, what=what)

    def stop(self) -> None:
        self.runner.request_stop()
        assert self.runner.join(10.0), "runner did not stop"


def batches(*ranges: range) -> list[list[SourceRecord]]:
    return [[record(seq) for seq in r] for r in ranges]


def test_each_poll_batch_is_one_transaction_with_the_offset_of_its_last_record() -> None:
    task = ScriptedTask(batches(range(0, 3), range(3, 5), range(5, 9)))
    eos = Eos(task)
    eos.run_until(lambda: len(eos.producer.committed) == 3, "three commits")
    eos.stop()
    producer = eos.producer
    assert producer.calls[:2] == ["init", "begin"], "fenced before anything else"
    assert eos.store.reads == [CONNECTOR], "offsets read after init_transactions"
    assert producer.records(producer.committed) == [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
    assert producer.offsets(producer.committed) == [{"s0": 2}, {"s0": 4}, {"s0": 8}]
    assert task.commits == 3, "task.commit() once per committed transaction"
    assert eos.store.applied == {b'["orders",{"stream":"s0"}]': b'{"seq":8}'}
    assert producer.aborted == [] and producer.calls[-1] == "close"


def test_an_abortable_commit_re_sends_the_same_items_in_order_then_commits_them() -> None:
    task = ScriptedTask(batches(range(0, 3), range(3, 6)))
    eos = Eos(task)
    eos.producer.commit_errors = [
        KafkaError(KafkaError.NOT_ENOUGH_REPLICAS, txn_requires_abort=True)
    ]
    eos.run_until(lambda: len(eos.producer.committed) == 2, "two commits")
    eos.stop()
    producer = eos.producer
    # the first transaction failed at its commit: aborted, re-sent as it was, committed
    assert producer.records(producer.aborted) == [[0, 1, 2]]
    assert producer.offsets(producer.aborted) == [{"s0": 2}]
    assert producer.records(producer.committed) == [[0, 1, 2], [3, 4, 5]]
    assert producer.offsets(producer.committed) == [{"s0": 2}, {"s0": 5}]
    assert task.polls >= 2 and eos.status.state is State.STOPPED
    assert task.commits == 2


def test_a_transaction_that_goes_abortable_mid_batch_is_re_sent_whole() -> None:
    """The producer refuses records after two of a five-record batch: the loop drops the rest
    it still holds, the transaction is aborted and the whole batch is polled again."""
    task = ScriptedTask(batches(range(0, 5), range(5, 7)))
    eos = Eos(task)
    eos.producer.state_after = 2
    eos.run_until(lambda: len(eos.producer.committed) == 2, "two commits")
    eos.stop()
    producer = eos.producer
    assert producer.records(producer.aborted) == [[0, 1]]
    assert producer.records(producer.committed) == [[0, 1, 2, 3, 4], [5, 6]]
    assert producer.offsets(producer.committed) == [{"s0": 4}, {"s0": 6}]


def test_a_record_kafka_refuses_fails_the_task_after_the_abort() -> None:
    task = ScriptedTask(batches(range(0, 3), range(3, 6)))
    eos = Eos(task, connector_config={"errors.tolerance": "all"})
    eos.producer.refuse_next = 1
    eos.run_until(lambda: eos.status.state is State.FAILED, "the task to fail")
    producer = eos.producer
    assert producer.committed == [] and len(producer.aborted) >= 1
    assert "Kafka refused a record of the transaction" in (eos.status.trace or "")
    assert eos.store.applied == {} and task.commits == 0
    assert not eos.runner.fenced


def test_a_fenced_task_stops_without_commit_or_abort() -> None:
    task = ScriptedTask(batches(range(0, 3)))
    eos = Eos(task)
    eos.producer.fatal_error = KafkaError(KafkaError._FENCED, fatal=True)
    eos.run_until(lambda: eos.status.state is State.FAILED, "the task to fail")
    producer = eos.producer
    assert eos.runner.fenced
    assert "fenced: another instance with transactional.id connect-cluster-orders-0" in (
        eos.status.trace or ""
    )
    assert "commit" not in producer.calls and "abort" not in producer.calls
    assert eos.store.applied == {}


def test_connector_boundaries_commit_and_abort_where_the_task_asks() -> None:
    """After batch 1 the task asks for a commit (batches 0 and 1 in one transaction); after
    batch 2 for an abort: its records are dropped, its offset committed alone; batch 3 is
    committed at stop."""
    task = ContextTask(
        batches(range(0, 2), range(2, 4), range(4, 6), range(6, 8)), {1: "commit", 2: "abort"}
    )
    eos = Eos(task, boundary="connector")
    eos.run_until(lambda: task.served == 4, "four batches")
    eos.stop()
    producer = eos.producer
    assert producer.records(producer.aborted) == [[4, 5]]
    assert producer.records(producer.committed) == [[0, 1, 2, 3], [], [6, 7]]
    assert producer.offsets(producer.committed) == [{"s0": 3}, {"s0": 5}, {"s0": 7}]


def test_a_transaction_timed_out_by_its_coordinator_is_re_sent_by_a_renewed_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fenced, but the transaction is older than transaction.timeout.ms: the coordinator
    aborted it. A new producer takes the id over and the items are sent again."""
    task = ScriptedTask(batches(range(0, 3), range(3, 5)))
    eos = Eos(task, boundary="interval")
    eos.producer.transaction_timeout_s = 0.0  # any open transaction is "too old"
    eos.run_until(lambda: task.polls >= 3, "both batches polled")
    eos.producer.fatal_error = KafkaError(KafkaError._FENCED, fatal=True)
    wait_until(lambda: "renew" in eos.producer.calls, what="a renewed producer")
    eos.stop()
    producer = eos.producer
    assert not eos.runner.fenced and eos.status.state is State.STOPPED
    assert producer.records(producer.aborted) == [[0, 1, 2, 3, 4]]
    assert producer.records(producer.committed) == [[0, 1, 2, 3, 4]]
    assert producer.offsets(producer.committed) == [{"s0": 4}]
