"""Fakes for driving a SourceTaskRunner without Kafka: a producer whose delivery callbacks the
test fires in any order, an in-memory offset store and a scripted task."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from connector.api import SourceRecord, SourceTask, TaskContext
from connector.config.models import ConnectorConfig, WorkerConfig
from connector.plugins.datagen.connector import DatagenConfig
from connector.runtime.context import RuntimeTaskContext
from connector.runtime.metrics import WorkerMetrics
from connector.runtime.status import TaskStatus
from connector.runtime.task_runner import SourceTaskRunner
from connector.serde.converter import Converter, JsonConverter, StringConverter
from connector.testing import ManualClock, MemoryOffsetReader

CONNECTOR = "orders"


def wait_until(condition: Callable[[], Any], timeout_s: float = 5.0, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or condition}")
        time.sleep(0.002)


@dataclass
class Produced:
    """One ``produce`` call; ``ack``/``fail`` fire its delivery callback like librdkafka."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]
    on_delivery: Callable[[Any, Any], None]

    def ack(self) -> None:
        self.on_delivery(None, FakeMessage(self))

    def fail(self, code: int = KafkaError.MSG_SIZE_TOO_LARGE) -> None:
        self.on_delivery(KafkaError(code), FakeMessage(self))

    def header(self, name: str) -> str:
        values = [v for k, v in self.headers if k == name]
        assert len(values) == 1, f"header {name}: {values}"
        return values[0].decode()


@dataclass
class FakeMessage:
    produced: Produced

    def topic(self) -> str:
        return self.produced.topic

    def value(self) -> bytes | None:
        return self.produced.value

    def key(self) -> bytes | None:
        return self.produced.key

    def headers(self) -> list[tuple[str, bytes]]:
        return list(self.produced.headers)


class FakeKafkaProducer:
    """Records produce calls; never acks on its own."""

    def __init__(self) -> None:
        self.produced: list[Produced] = []
        self._lock = threading.Lock()

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Any = None,
        timestamp: int = 0,
        on_delivery: Callable[[Any, Any], None] | None = None,
        **_: Any,
    ) -> None:
        assert on_delivery is not None
        with self._lock:
            self.produced.append(Produced(topic, value, key, list(headers or []), on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def to(self, topic: str) -> list[Produced]:
        with self._lock:
            return [p for p in self.produced if p.topic == topic]


class FakeDataProducer:
    """A :class:`~connector.runtime.producer.RecordProducer` over :class:`FakeKafkaProducer`.
    ``full`` makes ``produce`` raise ``BufferError`` as librdkafka does when its queue is full."""

    fatal_error = None
    max_message_bytes = 1_000_000

    def __init__(self) -> None:
        self.producer = FakeKafkaProducer()
        self.full = False

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
        if self.full:
            raise BufferError("Local: Queue full")
        if len(value or b"") + len(key or b"") > self.max_message_bytes:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.producer.produce(
            topic, value, key, headers=headers, timestamp=timestamp, on_delivery=on_delivery
        )


class _DoneWrite:
    """A write the fake store completed at once."""

    error: str | None = None

    def done(self) -> bool:
        return True

    def wait(self, timeout_s: float) -> bool:
        return True


class FakeOffsetStore:
    """Records every offsets write: ``[(partition, offset), ...]`` per commit."""

    def __init__(self) -> None:
        self.writes: list[list[tuple[dict[str, Any], dict[str, Any] | None]]] = []

    def write(self, connector_name: str, offsets: Any) -> None:
        assert connector_name == CONNECTOR
        self.writes.append([(dict(p), dict(o) if o is not None else None) for p, o in offsets])

    def write_async(self, connector_name: str, offsets: Any) -> _DoneWrite:
        self.write(connector_name, offsets)
        return _DoneWrite()

    def committed(self) -> dict[str, int]:
        """The latest committed seq per stream over all writes."""
        result: dict[str, int] = {}
        for write in self.writes:
            for partition, offset in write:
                assert offset is not None
                result[partition["stream"]] = offset["seq"]
        return result


class ScriptedTask(SourceTask):
    """Returns the given batches, then nothing; counts polls and commits."""

    def __init__(self, batches: list[list[SourceRecord]]) -> None:
        self.batches = list(batches)
        self.polls = 0
        self.commits = 0
        self.stopped = threading.Event()

    def start(self, ctx: TaskContext) -> None:
        self.ctx = ctx

    def poll(self, timeout_s: float) -> list[SourceRecord]:
        self.polls += 1
        if self.batches:
            return self.batches.pop(0)
        self.stopped.wait(min(timeout_s, 0.005))
        return []

    def commit(self) -> None:
        self.commits += 1

    def stop(self) -> None:
        self.stopped.set()


def record(seq: int, stream: str = "s0", topic: str = "orders", value: Any = None) -> SourceRecord:
    return SourceRecord(
        topic=topic,
        value={"stream": stream, "seq": seq} if value is None else value,
        key=f"{stream}:{seq}",
        source_partition={"stream": stream},
        source_offset={"seq": seq},
    )


@dataclass
class Harness:
    """A runner wired to fakes. ``clock`` drives the commit interval."""

    task: SourceTask
    connector_config: Mapping[str, Any] = field(default_factory=dict)
    worker: Mapping[str, Any] = field(default_factory=dict)
    value_converter: Converter = field(default_factory=JsonConverter)
    transform: Any = None
    producer: Any = field(default_factory=FakeDataProducer)
    store: FakeOffsetStore = field(default_factory=FakeOffsetStore)
    clock: Callable[[], float] = field(default_factory=ManualClock)
    config: DatagenConfig = field(default_factory=lambda: DatagenConfig(datagen_topic="orders"))
    task_config: Mapping[str, Any] = field(default_factory=dict)
    offset_reader: MemoryOffsetReader = field(default_factory=lambda: MemoryOffsetReader(CONNECTOR))
    ensured: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = TaskStatus(CONNECTOR, 0)
        self.metrics = WorkerMetrics()
        connector_config = ConnectorConfig.model_validate(
            {"name": CONNECTOR, "plugin": "datagen", **self.connector_config}
        )
        worker = WorkerConfig.model_validate(
            {"offset.flush.interval.ms": 1000, "task.shutdown.graceful.timeout.ms": 5000}
            | dict(self.worker)
        )
        self.ctx = RuntimeTaskContext(
            connector_name=CONNECTOR,
            task_id=0,
            config=self.config,
            task_config=self.task_config,
            offset_reader=self.offset_reader,
            status=self.status,
            metrics=self.metrics,
            clock=self.clock,
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
            value_converter=self.value_converter,
            transform=self.transform,
            ensure_topic=self.ensured.append,
            metrics=self.metrics,
            clock=self.clock,
        )

    @property
    def kafka(self) -> FakeKafkaProducer:
        return self.producer.producer

    def start(self) -> Harness:
        self.runner.start()
        return self

    def produced(self, count: int, topic: str = "orders") -> list[Produced]:
        return wait_until(
            lambda: (found := self.kafka.to(topic)) and len(found) >= count and found,
            what=f"{count} records produced to {topic}",
        )

    def commit_cycle(self) -> None:
        """Advance past the flush interval and wait until the loop has passed its commit
        check at least once (two more polls)."""
        assert isinstance(self.task, ScriptedTask) and isinstance(self.clock, ManualClock)
        self.clock.advance(self.runner.worker.offset_flush_interval_ms / 1000.0)
        polls = self.task.polls
        wait_until(lambda: self.task.polls >= polls + 2, what="two more polls")  # type: ignore[attr-defined]

    def stop(self, timeout_s: float = 10.0) -> None:
        self.runner.request_stop()
        assert self.runner.join(timeout_s), "runner did not stop"
