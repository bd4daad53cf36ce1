"""One WebSocket attached to a channel: framing out, heartbeats, pings, per-socket faults.

Everything here runs on the server's event-loop thread. Events are written in batches: the
caller hands over pre-built frames with their ledger rows and this class applies pending
faults (duplicate, reorder, stall), writes one joined buffer and records the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING

import orjson

from connector.simulator import frames
from connector.simulator.ledger import FloodRows

if TYPE_CHECKING:
    from connector.simulator.channels import Channel
    from connector.simulator.hub import Hub

log = logging.getLogger(__name__)

HEARTBEAT = frames.frame(
    b'{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}'
)
PONG = frames.frame(b'{"topicName":"channel.metadata","eventBody":{"message":"pong"}}')
LedgerRow = tuple[str, str, int, int]  # channel id, topic, event id, sent ns


class WsConnection:
    """The server side of one channel socket."""

    def __init__(self, hub: Hub, transport: asyncio.Transport, channel: Channel) -> None:
        self.hub = hub
        self.transport = transport
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self.open = True
        self.paused = False  # transport above its high-water mark (flood backpressure)
        self.stalled_until = 0.0
        self.duplicate_next = 0
        self.reorder_next = 0
        self.heartbeats_sent = 0
        self.pongs_sent = 0
        self.special_frames: dict[str, int] = {}
        self.flood_pos = 0
        self.flood_templates: list[tuple[bytes, bytes, str]] | None = None
        self.flood_topics: tuple[str, ...] = ()
        self.flood_leaves: set[str] | None = None
        self.flood_sources: list[tuple[tuple[bytes, ...], int, bytes, str]] = []  # live flood
        self.flood_gen = -1  # live flood: the stamping generation of flood_fresh
        self.flood_fresh = 0  # live flood: templates rendered in it, cyclically from its start
        self._held: tuple[bytes, LedgerRow] | None = None
        self._parser = frames.FrameParser()
        self._fragments: list[bytes] = []
        self._heartbeat: asyncio.TimerHandle | None = None
        self._schedule_heartbeat()

    # -- state ---------------------------------------------------------------------------
    def is_stalled(self) -> bool:
        return time.monotonic() < self.stalled_until

    def can_send(self) -> bool:
        return self.open and not self.is_stalled()

    def _schedule_heartbeat(self) -> None:
        interval = self.hub.config.heartbeat_s
        if interval > 0 and self.open:
            self._heartbeat = self.loop.call_later(interval, self._beat)

    def _beat(self) -> None:
        if self.can_send():
            self.transport.write(HEARTBEAT)
            self.heartbeats_sent += 1
        self._schedule_heartbeat()

    # -- sending -------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        if self.open:
            self.transport.write(data)

    def send_batch(self, out: list[bytes], rows: list[LedgerRow] | FloodRows) -> None:
        """Write frames (one per ledger row) after applying pending duplicate/reorder faults."""
        if not self.can_send():
            self.hub.ledger.lost[self.channel.id] += len(rows)
            return
        if self.duplicate_next or self.reorder_next or self._held is not None:
            if isinstance(rows, FloodRows):
                rows = rows.rows()
            out, rows = self._apply_faults(out, rows)
            if not out:
                return
        # Ledger first: a reader on another thread may see the frame before write() returns.
        self.hub.ledger.extend_rows(rows)
        self.transport.write(b"".join(out))

    def _apply_faults(
        self, out: list[bytes], rows: list[LedgerRow]
    ) -> tuple[list[bytes], list[LedgerRow]]:
        pairs = list(zip(out, rows, strict=True))
        if self.reorder_next or self._held is not None:
            # Hold one event back and release it right after the next one.
            result = []
            for p in pairs:
                if self._held is not None:
                    result += [p, self._held]
                    self._held = None
                    self.reorder_next -= 1
                elif self.reorder_next > 0:
                    self._held = p
                else:
                    result.append(p)
            pairs = result
        if self.duplicate_next:
            k = min(self.duplicate_next, len(pairs))
            doubled = []
            for i, p in enumerate(pairs):
                doubled.append(p)
                if i < k:
                    doubled.append(p)
            pairs = doubled
            self.duplicate_next -= k
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and close the TCP connection."""
        if not self.open:
            return
        self.transport.write(frames.close_frame(code, reason))
        self._closed()
        self.transport.close()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a silent network failure)."""
        if not self.open:
            return
        self._closed()
        self.transport.abort()

    def _closed(self) -> None:
        if not self.open:
            return
        self.open = False
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self.hub.socket_closed(self)

    # -- receiving -----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        try:
            received = self._parser.feed(data)
        except ValueError:
            self.close(1009, "message too big")
            return
        for f in received:
            if f.opcode == frames.OP_CLOSE:
                self.close(1000, "")
                return
            if f.opcode == frames.OP_PING:
                if self.can_send():
                    self.transport.write(frames.frame(f.payload, frames.OP_PONG))
                continue
            if f.opcode == frames.OP_PONG:
                continue
            if f.opcode in (frames.OP_TEXT, frames.OP_BINARY) or f.opcode == frames.OP_CONT:
                self._fragments.append(f.payload)
                if f.fin:
                    message = b"".join(self._fragments)
                    self._fragments = []
                    self._on_message(message)

    def _on_message(self, message: bytes) -> None:
        try:
            msg = orjson.loads(message)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict):
            self._reply({"result": "400", "status": "error", "message": "Invalid message"})
            return
        kind = msg.get("message")
        if kind == "ping":
            if self.can_send():
                self.transport.write(PONG)
                self.pongs_sent += 1
            return
        if kind in ("subscribe", "unsubscribe"):
            self._reply(self.hub.ws_subscribe(self, kind, msg))
            return
        self._reply({"result": "400", "status": "error", "message": "Unknown message"})

    def _reply(self, body: dict[str, object]) -> None:
        if self.can_send():
            self.transport.write(frames.frame(orjson.dumps(body)))

    def stall(self, duration_s: float | None) -> None:
        self.stalled_until = math.inf if duration_s is None else time.monotonic() + duration_s
