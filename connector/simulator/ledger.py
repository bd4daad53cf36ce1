"""The ledger: one entry per event written to a socket, so tests can prove loss and duplicates.

Appended only by the server's event-loop thread (``extend`` per batch); read from any thread.
Slicing a list is atomic under the GIL, so readers see a consistent prefix.
"""

from __future__ import annotations

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


@dataclass
class Ledger:
    """Delivered events in send order. Rows are compact tuples; ``entries`` expands them."""

    cids: CorrelationIds
    enabled: bool = True

    def __post_init__(self) -> None:
        self._entries: list[Row] = []
        self.lost: Counter[str] = Counter()  # channel id -> events not delivered (no socket/stall)

    def extend_rows(self, rows: list[Row]) -> None:
        if self.enabled:
            self._entries.extend(rows)

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self, start: int = 0, limit: int | None = None) -> list[LedgerEntry]:
        end = None if limit is None else start + limit
        of = self.cids.of
        return [LedgerEntry(c, t, of(e), e, ns) for c, t, e, ns in self._entries[start:end]]

    def clear(self) -> None:
        self._entries = []
        self.lost.clear()

    def summary(self) -> dict[str, Any]:
        entries = self._entries[:]
        per_channel: Counter[str] = Counter()
        per_topic: Counter[str] = Counter()
        seen: Counter[tuple[str, int]] = Counter()
        for channel_id, topic, event_id, _ns in entries:
            per_channel[channel_id] += 1
            per_topic[topic] += 1
            seen[(channel_id, event_id)] += 1
        duplicates = sum(n - 1 for n in seen.values() if n > 1)
        return {
            "total": len(entries),
            "uniqueDeliveries": len(seen),
            "duplicates": duplicates,
            "perChannel": dict(per_channel),
            "perTopic": dict(per_topic),
            "lostPerChannel": dict(self.lost),
            "firstSentNs": entries[0][3] if entries else None,
            "lastSentNs": entries[-1][3] if entries else None,
        }
