"""``datagen``: emits a numbered sequence per source partition, resuming after restarts.

Source partition ``{"stream": "<task>-<n>"}``; source offset ``{"seq": <last delivered>}``.
``datagen.invalid.every`` makes every Nth value break the Avro schema on purpose, to exercise
error tolerance and the dead-letter topic; ``datagen.oversized.every`` makes every Nth value
``datagen.oversized.bytes`` large, to exercise a topic's ``max.message.bytes``.

Exactly-once: supported. The sequence is a pure function of the committed offset, so a task
resumes exactly after the last committed transaction. Under ``transaction.boundary:
connector`` the task asks for a commit every ``datagen.transaction.records`` records.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from connector.api import (
    AvroSchema,
    ConnectorTransactionBoundaries,
    ExactlyOnceSupport,
    PluginSpec,
    Polled,
    SourceConnector,
    SourceRecord,
    SourceTask,
    TaskConfig,
    TaskContext,
)
from connector.config.models import dotted

VALUE_SCHEMA = AvroSchema(
    "connector.datagen.Event",
    {
        "type": "record",
        "name": "Event",
        "namespace": "connector.datagen",
        "fields": [
            {"name": "stream", "type": "string"},
            {"name": "seq", "type": "long"},
            {"name": "created_ms", "type": "long"},
            {"name": "payload", "type": ["null", "string"], "default": None},
        ],
    },
)


class DatagenConfig(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=dotted, populate_by_name=True, frozen=True
    )

    datagen_topic: str = Field(description="Kafka topic to write to.")
    datagen_count: int = Field(-1, ge=-1, description="Records per source partition; -1: no end.")
    datagen_partitions: int = Field(1, ge=1, description="Source partitions (streams) in all.")
    datagen_records_per_second: float = Field(
        0, ge=0, description="Rate per task; 0 means as fast as possible."
    )
    datagen_payload_bytes: int = Field(0, ge=0, description="Size of a filler payload field.")
    datagen_invalid_every: int = Field(
        0, ge=0, description="Make every Nth value invalid for its schema (0: never)."
    )
    datagen_batch_size: int = Field(1000, ge=1, description="Records per poll at most.")
    datagen_oversized_every: int = Field(
        0, ge=0, description="Make every Nth value datagen.oversized.bytes large (0: never)."
    )
    datagen_oversized_bytes: int = Field(
        100_000, ge=1, description="Payload size of the oversized values."
    )
    datagen_transaction_records: int = Field(
        100,
        ge=1,
        description="Under transaction.boundary=connector: records per transaction.",
    )


class DatagenSourceTask(SourceTask):
    def start(self, ctx: TaskContext) -> None:
        self._config: DatagenConfig = ctx.config  # type: ignore[assignment]
        self._stopped = threading.Event()
        self._streams: list[list[Any]] = []
        for stream in ctx.task_config["streams"]:
            partition = {"stream": stream}
            committed = ctx.offset_reader.offset(partition)
            next_seq = int(committed["seq"]) + 1 if committed else 0
            self._streams.append([stream, partition, next_seq])
        self._payload = "x" * self._config.datagen_payload_bytes or None
        # random hex: compression (the broker's limit applies after it) cannot shrink it
        size = self._config.datagen_oversized_bytes
        self._oversized = random.Random(size).randbytes(size // 2 + 1).hex()[:size]
        self._transactions = ctx.transaction_context
        self._since_commit = 0
        self._next_index = 0
        self._started = time.monotonic()
        self._emitted = 0

    def poll(self, timeout_s: float) -> list[Polled]:
        if self._stopped.is_set():
            return []  # generated on demand: nothing buffered to drain after stop()
        config = self._config
        budget = config.datagen_batch_size
        if config.datagen_records_per_second:
            due = int((time.monotonic() - self._started) * config.datagen_records_per_second)
            budget = min(budget, due - self._emitted)
            if budget <= 0:
                self._stopped.wait(min(timeout_s, 1.0 / config.datagen_records_per_second))
                return []
        records: list[SourceRecord] = []
        live = [s for s in self._streams if config.datagen_count < 0 or s[2] < config.datagen_count]
        if not live:
            self._stopped.wait(timeout_s)
            return []
        now_ms = int(time.time() * 1000)
        for i in range(budget):
            stream = live[(self._next_index + i) % len(live)]
            name, partition, seq = stream
            if config.datagen_count >= 0 and seq >= config.datagen_count:
                continue
            stream[2] = seq + 1
            invalid = config.datagen_invalid_every and (seq + 1) % config.datagen_invalid_every == 0
            oversized = (
                config.datagen_oversized_every and (seq + 1) % config.datagen_oversized_every == 0
            )
            value = {
                "stream": name,
                "seq": "not-a-number" if invalid else seq,
                "created_ms": now_ms,
                "payload": self._oversized if oversized else self._payload,
            }
            records.append(
                SourceRecord(
                    topic=config.datagen_topic,
                    value=value,
                    key=f"{name}:{seq}",
                    source_partition=partition,
                    source_offset={"seq": seq},
                    timestamp_ms=now_ms,
                    value_schema=VALUE_SCHEMA,
                )
            )
        self._next_index += budget
        self._emitted += len(records)
        if self._transactions is not None:
            self._since_commit += len(records)
            if self._since_commit >= config.datagen_transaction_records:
                self._since_commit = 0
                self._transactions.commit_transaction()
        return records

    def stop(self) -> None:
        self._stopped.set()


class DatagenSourceConnector(SourceConnector):
    spec = PluginSpec(
        name="datagen",
        summary="Deterministic numbered records for demos, tests and benchmarks",
        version="0.1.0",
        config_model=DatagenConfig,
        status="stable",
    )
    task_class = DatagenSourceTask

    def start(self, ctx: Any) -> None:
        self._config: DatagenConfig = ctx.config

    def exactly_once_support(self, config: Any) -> ExactlyOnceSupport:
        """Supported: the task resumes exactly after the committed offset of each stream."""
        return ExactlyOnceSupport.SUPPORTED

    def can_define_transaction_boundaries(self, config: Any) -> ConnectorTransactionBoundaries:
        """Supported: every ``datagen.transaction.records`` records."""
        return ConnectorTransactionBoundaries.SUPPORTED

    def task_configs(self, max_tasks: int) -> list[TaskConfig]:
        count = min(max_tasks, self._config.datagen_partitions)
        streams: list[list[str]] = [[] for _ in range(count)]
        for n in range(self._config.datagen_partitions):
            streams[n % count].append(f"s{n}")
        return [{"streams": s} for s in streams]
