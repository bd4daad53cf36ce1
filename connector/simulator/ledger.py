"""The ledger: one entry per event written to a socket, so tests can prove loss and duplicates.

Appended only by the server's event-loop thread (``extend`` per batch); read from any thread.
Slicing a list is atomic under the GIL, so readers see a consistent prefix.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, NamedTuple


class LedgerEntry(NamedTuple):
    channel_id: str
    topic: str
    correlation_id: str
    event_id: int
    sent_ns: int  # time.time_ns() when the frame was handed to the socket

    def to_json(self, index: int) -> dict[str, Any]:
        return {
            "index": index,
            "channelId": self.channel_id,
            "topicName": self.topic,
            "correlationId": self.correlation_id,
            "eventId": self.event_id,
            "sentNs": self.sent_ns,
            "sentAt": self.sent_ns / 1e9,
        }


class CorrelationIds:
    """A stable, UUID-shaped CorrelationId per event id: seed-derived prefix + 12 hex digits."""

    def __init__(self, seed: int) -> None:
        h = f"{random.Random(seed * 7919 + 17).getrandbits(80):020x}"
        self.prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-"
        self.prefix_bytes = self.prefix.encode("ascii")

    def of(self, event_id: int) -> str:
        return f"{self.prefix}{event_id & 0xFFFFFFFFFFFF:012x}"

    def event_id(self, correlation_id: str) -> int | None:
        if not correlation_id.startswith(self.prefix):
            return None
        try:
            return int(correlation_id[len(self.prefix) :], 16)
        except ValueError:
            return None


Row = tuple[str, str, int, int]  # channel id, topic, event id, sent ns (CorrelationId derived)


@dataclass(frozen=True)
class FloodRows:
    """``count`` flood rows in one object: topic ``i`` is ``topics[(pos + i) % len(topics)]``,
    event id ``first_id + i``; one per socket write instead of one tuple per event."""

    channel_id: str
    topics: tuple[str, ...]
    pos: int
    first_id: int
    count: int
    sent_ns: int

    def __len__(self) -> int:
        return self.count

    def rows(self, start: int = 0, end: int | None = None) -> list[Row]:
        end = self.count if end is None else min(end, self.count)
        n = len(self.topics)
        return [
            (self.channel_id, self.topics[(self.pos + i) % n], self.first_id + i, self.sent_ns)
            for i in range(start, end)
        ]


Chunk = list[Row] | FloodRows


@dataclass
class Ledger:
    """Delivered events in send order, stored as chunks (row lists or ``FloodRows``).

    Appended only by the loop thread; ``entries``/``summary`` may run on any thread (they copy
    the chunk list first, which is atomic under the GIL).
    """

    cids: CorrelationIds
    enabled: bool = True

    def __post_init__(self) -> None:
        self._chunks: list[Chunk] = []
        self._starts: list[int] = []
        self._total = 0
        self.lost: Counter[str] = Counter()  # channel id -> events not delivered (no socket/stall)

    def extend_rows(self, rows: Chunk) -> None:
        if self.enabled and len(rows):
            self._starts.append(self._total)
            self._chunks.append(rows)
            self._total += len(rows)

    def __len__(self) -> int:
        return self._total

    def _rows(self, start: int, end: int) -> list[Row]:
        chunks, starts = self._chunks[:], self._starts[: len(self._chunks)]
        out: list[Row] = []
        i = max(0, bisect.bisect_right(starts, start) - 1)
        while i < len(chunks) and starts[i] < end:
            chunk, base = chunks[i], starts[i]
            lo, hi = max(0, start - base), min(len(chunk), end - base)
            if isinstance(chunk, FloodRows):
                out += chunk.rows(lo, hi)
            else:
                out += chunk[lo:hi]
            i += 1
        return out

    def entries(self, start: int = 0, limit: int | None = None) -> list[LedgerEntry]:
        end = self._total if limit is None else min(self._total, start + limit)
        of = self.cids.of
        return [LedgerEntry(c, t, of(e), e, ns) for c, t, e, ns in self._rows(start, end)]

    def clear(self) -> None:
        self._chunks, self._starts, self._total = [], [], 0
        self.lost.clear()

    def summary(self) -> dict[str, Any]:
        chunks = self._chunks[:]
        per_channel: Counter[str] = Counter()
        per_topic: Counter[str] = Counter()
        seen: Counter[tuple[str, int]] = Counter()
        unique_flood = 0
        first_ns = last_ns = None
        for chunk in chunks:
            if isinstance(chunk, FloodRows):
                # Flood ids are fresh per row, so a flood chunk never holds a duplicate.
                per_channel[chunk.channel_id] += chunk.count
                n = len(chunk.topics)
                full, rest = divmod(chunk.count, n)
                for k, topic in enumerate(chunk.topics):
                    per_topic[topic] += full + (1 if (k - chunk.pos) % n < rest else 0)
                unique_flood += chunk.count
                first_ns = chunk.sent_ns if first_ns is None else first_ns
                last_ns = chunk.sent_ns
                continue
            for channel_id, topic, event_id, ns in chunk:
                per_channel[channel_id] += 1
                per_topic[topic] += 1
                seen[(channel_id, event_id)] += 1
                first_ns = ns if first_ns is None else first_ns
                last_ns = ns
        duplicates = sum(n - 1 for n in seen.values() if n > 1)
        return {
            "total": sum(len(c) for c in chunks),
            "uniqueDeliveries": len(seen) + unique_flood,
            "duplicates": duplicates,
            "perChannel": dict(per_channel),
            "perTopic": dict(per_topic),
            "lostPerChannel": dict(self.lost),
            "firstSentNs": first_ns,
            "lastSentNs": last_ns,
        }
