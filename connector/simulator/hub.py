"""The hub: routes contact-centre events to channel sockets and drives the event rate.

Two drivers, one at a time:
- ``model``: the contact centre generates ``rate`` events/s (all topics); events whose topic
  has a subscribed channel with an open socket are delivered, the rest are lost as in Genesys.
- ``flood``: every connected socket with subscriptions receives pre-encoded envelopes for its
  own subscribed topics as fast as it reads them (bodies from a model-generated pool,
  entity ids substituted), optionally capped at ``rate`` events/s in total.

Event time. With ``start_time`` fixed the model clock is virtual (byte-identical bodies). Live
(``start_time=None``), as in Genesys every body's timestamps are close to the wall clock when it
is sent and never ahead of it: the model runs with ``until=time.time()`` at a load scaled to
the rate (see ``model``), and flood envelopes are re-stamped every ``STAMP_PERIOD_S``: each
pool body is shifted so that its event time is the stamping time, keeping the offsets between
the times inside it (see ``StampedBody``).

Runs on the server's event-loop thread; ``Hub`` owns the registry, tokens, ledger and sockets.
"""

from __future__ import annotations

import asyncio
import calendar
import itertools
import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson

from connector.simulator import bodies, frames, topics
from connector.simulator.auth import Authority
from connector.simulator.channels import Channel, ChannelRegistry
from connector.simulator.config import SimulatorConfig
from connector.simulator.ledger import CorrelationIds, FloodRows, Ledger
from connector.simulator.model import ContactCentre, Event
from connector.simulator.sockets import LedgerRow, WsConnection

log = logging.getLogger(__name__)

FloodTemplate = tuple[bytes, bytes, str]  # frame header + envelope head, envelope tail, topic
MODEL_CHUNK = 2000  # model events generated (and published) per clock reading
STAMP_PERIOD_S = 0.25  # live flood: how often envelopes get fresh timestamps
# Timestamps in bodies: ISO-8601 strings (conversation, user and queue families) and the
# epoch-millisecond eventTime of detail events. Both keep their length when shifted.
STAMP_RE = re.compile(rb'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z|(?<="eventTime":)\d{13}(?=[,}])')


@dataclass(frozen=True)
class StampedBody:
    """A pool body cut at its timestamps: ``parts[0] + t[0] + parts[1] + ... + parts[-1]``.

    ``offsets_ms[i]`` is timestamp ``i`` minus the time the body was generated at (<= 0), so
    ``stamps(at_ms)`` gives the times of the same event happening at ``at_ms``: every interval
    inside the body (connected -> disconnected, hold, after-call work) is kept.
    """

    parts: tuple[bytes, ...]
    offsets_ms: tuple[int, ...]
    iso: tuple[bool, ...]

    @classmethod
    def parse(cls, body: bytes, event_ms: int) -> StampedBody:
        parts: list[bytes] = []
        offsets: list[int] = []
        iso: list[bool] = []
        pos = 0
        for m in STAMP_RE.finditer(body):
            text = m.group()
            parts.append(body[pos : m.start()])
            if len(text) == 13:
                value = int(text)
            else:
                value = calendar.timegm(time.strptime(text[:19].decode(), "%Y-%m-%dT%H:%M:%S"))
                value = value * 1000 + int(text[20:23])
            offsets.append(value - event_ms)
            iso.append(len(text) != 13)
            pos = m.end()
        parts.append(body[pos:])
        return cls(tuple(parts), tuple(offsets), tuple(iso))

    def stamps(self, at_ms: int, seconds: dict[int, bytes]) -> list[bytes]:
        """The timestamps for an event at ``at_ms`` (``seconds``: a memo of ISO prefixes)."""
        out: list[bytes] = []
        for off, is_iso in zip(self.offsets_ms, self.iso, strict=True):
            t = at_ms + off
            if not is_iso:
                out.append(b"%d" % t)
                continue
            sec, milli = divmod(t, 1000)
            prefix = seconds.get(sec)
            if prefix is None:
                prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode()
                seconds[sec] = prefix
            out.append(prefix + b".%03dZ" % milli)
        return out


StampedSource = tuple[tuple[bytes, ...], int, bytes, str]  # parts, pool body index, tail, topic


def envelope_parts(topic: str, body: bytes) -> tuple[bytes, bytes]:
    """The envelope around the CorrelationId: ``head + cid + tail`` is one notification."""
    head = b'{"topicName":"' + topic.encode() + b'","version":"2","eventBody":' + body
    head += b',"metadata":{"CorrelationId":"'
    return head, b'"}}'


class Hub:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.cids = CorrelationIds(config.seed)
        self.ledger = Ledger(self.cids, enabled=config.ledger_enabled)
        self.authority = Authority(config)
        self.registry = ChannelRegistry(config, self._channel_removed)
        self.live = config.start_time is None  # event times follow the wall clock
        start = config.start_time if config.start_time is not None else time.time()
        self.model = ContactCentre(
            config.seed, config.queues, config.agents, start, wanted=self._wanted
        )
        self.sockets: set[WsConnection] = set()
        self.mode = config.mode
        self.rate = config.rate
        self.http_bursts: list[int] = []  # statuses to return for the next API requests
        self.flood_event_id = 1 << 40  # flood ids never collide with model ids
        self._natural_rate: float | None = None  # live model: events/s at load 1
        self._load_rate: float | None = None  # the rate the model's load was set for
        self._flood_pool: dict[str, list[tuple[str, bytes, int]]] | None = None
        self._flood_templates: dict[str, list[FloodTemplate]] = {}
        # Live flood: sources per topic, pool bodies cut at their timestamps, and the current
        # stamping generation (its time and the stamps rendered for it, per pool body).
        self._flood_sources: dict[str, list[StampedSource]] = {}
        self._stamped: list[StampedBody] = []
        self._stamped_index: dict[bytes, int] = {}
        self.stamp_gen = 0
        self.stamp_ms = 0
        self._stamp_cache: dict[int, list[bytes]] = {}
        self._stamp_seconds: dict[int, bytes] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.sent_counter = 0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._drive()),
            asyncio.create_task(self._sweep()),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in list(self.sockets):
            s.close(1001, "simulator stopping")

    def wake(self) -> None:
        self._wake.set()

    def set_rate(self, rate: float | None = None, mode: str | None = None) -> None:
        if rate is not None:
            self.rate = float(rate)
        if mode is not None:
            if mode not in ("model", "flood"):
                raise ValueError(f"mode must be 'model' or 'flood', not {mode!r}")
            self.mode = mode  # type: ignore[assignment]
        self.wake()

    # -- routing -------------------------------------------------------------------------
    def _wanted(self, topic: str) -> bool:
        return topic in self.registry.topic_index

    def publish(self, events: list[Event]) -> None:
        """Deliver model events to every subscribed channel's socket (or count them lost)."""
        per_socket: dict[WsConnection, tuple[list[bytes], list[LedgerRow]]] = {}
        index = self.registry.topic_index
        lost = self.ledger.lost
        of = self.cids.of
        now_ns = time.time_ns()
        for ev in events:
            chans = index.get(ev.topic)
            if not chans:
                continue
            head, tail = envelope_parts(ev.topic, ev.body)
            payload = head + of(ev.event_id).encode() + tail
            frame = frames.header(len(payload)) + payload
            for ch in chans:
                sock = ch.socket
                if sock is None or not sock.can_send():
                    lost[ch.id] += 1
                    continue
                out, rows = per_socket.setdefault(sock, ([], []))
                out.append(frame)
                rows.append((ch.id, ev.topic, ev.event_id, now_ns))
        for sock, (out, rows) in per_socket.items():
            sock.send_batch(out, rows)
            self.sent_counter += len(rows)

    def inject(self, channel: Channel, topic: str, body: dict[str, Any]) -> int:
        """Send one extra event (new id, ledgered) to one channel's socket; returns its id."""
        eid = self.model.next_event_id
        self.model.next_event_id += 1
        head, tail = envelope_parts(topic, orjson.dumps(body))
        payload = head + self.cids.of(eid).encode() + tail
        if channel.socket is None:
            self.ledger.lost[channel.id] += 1
        else:
            channel.socket.send_batch(
                [frames.header(len(payload)) + payload], [(channel.id, topic, eid, time.time_ns())]
            )
        return eid

    # -- drivers -------------------------------------------------------------------------
    async def _drive(self) -> None:
        tick = 0.01
        budget = 0.0
        last = time.monotonic()
        while True:
            if self.mode == "flood":
                await self._flood_round()
                last = time.monotonic()
                budget = 0.0
                continue
            if self.rate <= 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 0.1)
                except TimeoutError:
                    pass
                last = time.monotonic()
                continue
            await asyncio.sleep(max(tick, min(1.0 / self.rate, 0.1)) if self.rate < 100 else tick)
            now = time.monotonic()
            # At most half a second of catch-up after a stall (a burst, not a backlog).
            budget = min(budget + (now - last) * self.rate, max(1.0, self.rate * 0.5))
            last = now
            n = int(budget)
            if n <= 0:
                continue
            model = self.model
            if self.live and self._load_rate != self.rate:
                self._set_load()
            while n > 0:  # in chunks, so that live stamps stay fresh at high rates
                first = model.next_event_id
                if self.live:
                    events = model.advance(min(n, MODEL_CHUNK), until=time.time())
                else:
                    events = model.advance(min(n, MODEL_CHUNK))
                made = model.next_event_id - first  # an action may emit a few more than asked
                budget -= made
                n -= made
                if events:
                    self.publish(events)

    def _set_load(self) -> None:
        """Live model: scale its activity so that ``rate`` events/s keep up with the clock."""
        if self._natural_rate is None:
            cfg = self.config
            self._natural_rate = ContactCentre.natural_rate(cfg.seed, cfg.queues, cfg.agents)
        self.model.set_load(self.rate / self._natural_rate)
        self._load_rate = self.rate

    async def _sweep(self) -> None:
        cfg = self.config
        period = max(0.005, min(1.0, cfg.channel_ttl / 50, cfg.token_ttl_s * cfg.time_scale / 50))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            self.registry.sweep(now)
            if cfg.close_channels_on_token_expiry:
                dead = {t.value for t in self.authority.expired_tokens(now)}
                if dead:
                    for ch in [c for c in self.registry.by_id.values() if c.token in dead]:
                        self.registry.remove(ch, "token expired")

    # -- flood ---------------------------------------------------------------------------
    def _pool(self) -> dict[str, list[tuple[str, bytes, int]]]:
        """Bodies per topic family from a private model run:
        template -> [(entity id, body, generated at (epoch ms))]."""
        if self._flood_pool is None:
            cfg = self.config
            pool_model = ContactCentre(
                cfg.seed, cfg.queues, cfg.agents, self.model.now, wanted=lambda _t: True
            )
            pool: dict[str, list[tuple[str, bytes, int]]] = defaultdict(list)
            for at, ev in pool_model.advance_timed(6000):
                found = topics.family_of(ev.topic)
                if found is not None and len(pool[found[0].template]) < 16:
                    pool[found[0].template].append((found[1], ev.body, bodies.ms(at)))
            self._flood_pool = dict(pool)
        return self._flood_pool

    def _templates_for(self, topic: str) -> list[FloodTemplate]:
        cached = self._flood_templates.get(topic)
        if cached is not None:
            return cached
        found = topics.family_of(topic)
        out: list[FloodTemplate] = []
        if found is not None:
            fam, entity = found
            cid_len = len(self.cids.of(0))
            for old_id, body, _at in self._pool().get(fam.template, []):
                body = body.replace(old_id.encode(), entity.encode())
                head, tail = envelope_parts(topic, body)
                out.append((frames.header(len(head) + cid_len + len(tail)) + head, tail, topic))
        self._flood_templates[topic] = out
        return out

    def _sources_for(self, topic: str) -> list[StampedSource]:
        """Live flood: like ``_templates_for``, with the head cut at the body's timestamps."""
        cached = self._flood_sources.get(topic)
        if cached is not None:
            return cached
        found = topics.family_of(topic)
        out: list[StampedSource] = []
        if found is not None:
            fam, entity = found
            cid_len = len(self.cids.of(0))
            for old_id, body, at in self._pool().get(fam.template, []):
                key = self._stamped_index.get(body)
                if key is None:
                    key = self._stamped_index[body] = len(self._stamped)
                    self._stamped.append(StampedBody.parse(body, at))
                sb = self._stamped[key]
                old, new = old_id.encode(), entity.encode()
                parts = [p.replace(old, new) for p in sb.parts]
                head, tail = envelope_parts(topic, b"\0")
                before, after = head.split(b"\0")
                parts[0] = before + parts[0]
                parts[-1] += after  # the same element as parts[0] when there is no stamp
                size = sum(map(len, parts)) + sum(24 if iso else 13 for iso in sb.iso)
                parts[0] = frames.header(size + cid_len + len(tail)) + parts[0]
                out.append((tuple(parts), key, tail, topic))
        self._flood_sources[topic] = out
        return out

    def _stamps(self, key: int) -> list[bytes]:
        stamps = self._stamp_cache.get(key)
        if stamps is None:
            stamps = self._stamped[key].stamps(self.stamp_ms, self._stamp_seconds)
            self._stamp_cache[key] = stamps
        return stamps

    def _render(self, src: StampedSource) -> FloodTemplate:
        parts, key, tail, topic = src
        if len(parts) == 1:
            return parts[0], tail, topic
        seq: list[bytes] = [b""] * (2 * len(parts) - 1)
        seq[::2] = parts
        seq[1::2] = self._stamps(key)
        return b"".join(seq), tail, topic

    def _restamp_clock(self) -> None:
        """Live flood: a new stamping generation every ``STAMP_PERIOD_S``."""
        now_ms = time.time_ns() // 1_000_000
        if now_ms - self.stamp_ms >= STAMP_PERIOD_S * 1000:
            self.stamp_gen += 1
            self.stamp_ms = now_ms
            self._stamp_cache.clear()
            if len(self._stamp_seconds) > 64:
                self._stamp_seconds.clear()

    @staticmethod
    def _interleave(per_topic: list[list[Any]]) -> list[Any]:
        # Interleave topics so a batch spreads over all of them.
        per_topic = [t for t in per_topic if t]
        return [t for group in itertools.zip_longest(*per_topic) for t in group if t is not None]

    def _channel_templates(self, ch: Channel) -> list[FloodTemplate]:
        return self._interleave([self._templates_for(t) for t in sorted(ch.leaves)])

    def _channel_sources(self, ch: Channel) -> list[StampedSource]:
        return self._interleave([self._sources_for(t) for t in sorted(ch.leaves)])

    async def _flood_round(self) -> None:
        active = [s for s in self.sockets if s.open and not s.paused and s.channel.leaves]
        if not active:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), 0.05)
            except TimeoutError:
                pass
            return
        if self.live:
            self._restamp_clock()
        batch = self.config.flood_batch
        if self.rate > 0:
            batch = max(1, min(batch, int(self.rate * 0.01 / len(active)) or 1))
        started = time.monotonic()
        sent = 0
        for sock in active:
            if sock.is_stalled():
                continue
            sent += self._flood_socket(sock, batch)
        if self.rate > 0:
            await asyncio.sleep(max(0.0, sent / self.rate - (time.monotonic() - started)))
        else:
            await asyncio.sleep(0)

    def _flood_socket(self, sock: WsConnection, batch: int) -> int:
        ch = sock.channel
        if sock.flood_templates is None or sock.flood_leaves is not ch.leaves:
            if self.live:
                sock.flood_sources = self._channel_sources(ch)
                sock.flood_templates = [(b"", b"", s[3]) for s in sock.flood_sources]
                sock.flood_gen = -1
            else:
                sock.flood_templates = self._channel_templates(ch)
            sock.flood_topics = tuple(t[2] for t in sock.flood_templates)
            sock.flood_leaves = ch.leaves
            sock.flood_pos = 0
        templates = sock.flood_templates
        n_t = len(templates)
        if not n_t:
            return 0
        pos0 = pos = sock.flood_pos
        if self.live:
            # Render the templates this batch uses that are older than the current stamping
            # generation; consumption is cyclic, so each is rendered once per generation.
            if sock.flood_gen != self.stamp_gen:
                sock.flood_gen, sock.flood_fresh = self.stamp_gen, 0
            if sock.flood_fresh < n_t:
                k = min(batch, n_t - sock.flood_fresh)
                sources, render = sock.flood_sources, self._render
                for i in range(pos, pos + k):
                    j = i % n_t
                    templates[j] = render(sources[j])
                sock.flood_fresh += k
        prefix = self.cids.prefix_bytes
        first = eid = self.flood_event_id
        out: list[bytes] = []
        append_out = out.append
        for _ in range(batch):
            head, tail, _topic = templates[pos]
            pos += 1
            if pos == n_t:
                pos = 0
            append_out(head + prefix + b"%012x" % (eid & 0xFFFFFFFFFFFF) + tail)
            eid += 1
        self.flood_event_id = eid
        sock.flood_pos = pos
        rows = FloodRows(ch.id, sock.flood_topics, pos0, first, batch, time.time_ns())
        sock.send_batch(out, rows)
        self.sent_counter += batch
        return batch

    # -- sockets and channels ------------------------------------------------------------
    def attach(self, sock: WsConnection) -> None:
        ch = sock.channel
        old = ch.socket
        if old is not None and old.open:
            old.close(1000, "Connection replaced by a newer WebSocket")  # one socket per channel
        ch.socket = sock
        ch.last_used = time.monotonic()
        self.sockets.add(sock)
        self.wake()

    def socket_closed(self, sock: WsConnection) -> None:
        self.sockets.discard(sock)
        if sock.channel.socket is sock:
            sock.channel.socket = None
            sock.channel.last_used = time.monotonic()

    def _channel_removed(self, ch: Channel, reason: str) -> None:
        log.debug("channel %s removed: %s", ch.id, reason)
        sock = ch.socket
        if sock is not None and sock.open:
            sock.send_raw(not_found_frame(ch.id))
            sock.close(1000, f"channel {reason}")

    def system_event(
        self,
        ch: Channel,
        topic: str,
        topic_type: str | None,
        message: str,
        reason: str | None = None,
    ) -> None:
        """A ``v2.system.*`` envelope, sent without subscription (not ledgered)."""
        if ch.socket is None:
            return
        body = bodies.system_message(topic_type, ch.id, ch.client_id, message, reason)
        body["correlationId"] = self.cids.of(0)
        head, tail = envelope_parts(topic, orjson.dumps(body))
        ch.socket.send_raw(frames.frame(head + self.cids.of(0).encode() + tail))

    def socket_closing(self, ch: Channel, lead_s: float | None = None) -> bool:
        sock = ch.socket
        if sock is None or not sock.open:
            return False
        self.system_event(
            ch,
            "v2.system.socket_closing",
            None,
            "This WebSocket will close soon for maintenance; please reconnect.",
        )
        lead = self.config.closing_lead if lead_s is None else lead_s
        asyncio.get_running_loop().call_later(lead, sock.close, 1001, "Going away")
        return True

    def ws_subscribe(self, sock: WsConnection, kind: str, msg: dict[str, Any]) -> dict[str, Any]:
        """Community-observed WebSocket subscribe/unsubscribe commands (spec 3.2)."""
        requested = msg.get("topics")
        cid = msg.get("correlationId")
        if not isinstance(requested, list) or not requested:
            return {
                "correlationId": cid,
                "topics": [],
                "result": "400",
                "status": "error",
                "message": "Required data missing from subscribe request.",
            }
        ch = sock.channel
        token = self.authority.tokens.get(ch.token)
        granted = token.client.permissions if token else ()
        if kind == "subscribe":
            try:
                self.registry.subscribe(ch, granted, [str(t) for t in requested], False, True)
            except Exception as exc:  # SubscriptionError: the limit
                return {"result": "400", "status": "failure", "message": str(exc)}
            self.wake()
            return {"result": "200", "status": "subscribed"}
        keep = [t for t in ch.subscriptions if t not in set(requested)]
        self.registry.subscribe(ch, granted, keep, True, True)
        return {"result": "200", "status": "unsubscribed"}


def not_found_frame(channel_id: str) -> bytes:
    body = {"result": "404", "message": f"Channel {channel_id} not found"}
    return frames.frame(orjson.dumps(body))
