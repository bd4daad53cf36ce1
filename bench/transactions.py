"""Commit latency of one Kafka transaction against its size, with the connector's producer.

Each round: ``begin_transaction``, produce N records of 1.5 KB (incompressible: random hex,
so lz4 cannot shrink them) to a fresh 3-partition topic plus one offsets record, then
``commit_transaction``. Timed separately: the produce calls, the flush the commit starts with
(everything acked), and the EndTxn round (the commit after the flush) — the task thread blocks
on flush + EndTxn at each boundary. Same producer settings as the task's
(:data:`~connector.runtime.producer.DEFAULT_PRODUCER_CONFIG`, idempotent, ``acks=all``).
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Producer

from bench.kafka import Kafka
from connector.runtime.producer import DEFAULT_PRODUCER_CONFIG, REQUIRED_PRODUCER_CONFIG


@dataclass
class CommitLatency:
    records: int
    rounds: int
    produce_ms: list[float] = field(default_factory=list)
    flush_ms: list[float] = field(default_factory=list)
    end_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)

    def row(self) -> dict[str, float]:
        def p(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        commit = [f + e for f, e in zip(self.flush_ms, self.end_ms, strict=True)]
        return {
            "records": self.records,
            "rounds": self.rounds,
            "produce_p50": p(self.produce_ms, 0.5),
            "commit_p50": p(commit, 0.5),
            "commit_p99": p(commit, 0.99),
            "flush_p50": p(self.flush_ms, 0.5),
            "end_p50": p(self.end_ms, 0.5),
            "end_p99": p(self.end_ms, 0.99),
            "records_per_s": self.records / (statistics.fmean(self.total_ms) / 1000),
        }


def measure(
    bootstrap: str, sizes: tuple[int, ...], *, seconds_per_size: float = 6.0
) -> list[dict[str, float]]:
    """Transactions of each size back to back for about ``seconds_per_size`` (at least 5)."""
    kafka = Kafka(bootstrap)
    topic = f"bench-txn-{uuid.uuid4().hex[:8]}"
    kafka.create_topics([topic], partitions=3)
    rng = random.Random(0)
    values = [rng.randbytes(750).hex().encode() for _ in range(1000)]
    producer = Producer(
        {
            **DEFAULT_PRODUCER_CONFIG,
            **REQUIRED_PRODUCER_CONFIG,
            "bootstrap.servers": bootstrap,
            "transactional.id": f"bench-{topic}",
        }
    )
    rows = []
    try:
        producer.init_transactions(30)
        for size in sizes:
            result = CommitLatency(size, 0)
            deadline = time.monotonic() + seconds_per_size
            while result.rounds < 5 or time.monotonic() < deadline:
                t0 = time.perf_counter()
                producer.begin_transaction()
                for i in range(size):
                    while True:
                        try:
                            producer.produce(topic, values[i % 1000], b"k%d" % i)
                            break
                        except BufferError:
                            producer.poll(0.005)
                producer.produce(topic, b'{"seq":1}', b'["bench",{"p":1}]')
                t1 = time.perf_counter()
                producer.flush(60)
                t2 = time.perf_counter()
                producer.commit_transaction(60)
                t3 = time.perf_counter()
                result.rounds += 1
                result.produce_ms.append((t1 - t0) * 1000)
                result.flush_ms.append((t2 - t1) * 1000)
                result.end_ms.append((t3 - t2) * 1000)
                result.total_ms.append((t3 - t0) * 1000)
            rows.append(result.row())
    finally:
        kafka.delete_prefixed(topic)
        kafka.close()
    return rows


def table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| Records per transaction | Rounds | produce() calls p50 ms | commit p50 / p99 ms "
        "(flush + EndTxn) | of which flush p50 ms | EndTxn p50 / p99 ms | Records/s, back to "
        "back |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['records']:,} | {r['rounds']} | {r['produce_p50']:.1f} | "
            f"{r['commit_p50']:.1f} / {r['commit_p99']:.1f} | {r['flush_p50']:.1f} | "
            f"{r['end_p50']:.1f} / {r['end_p99']:.1f} | {r['records_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"
