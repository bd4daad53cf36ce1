"""``GenesysNotificationsSourceTask``: Genesys notification channels -> SourceRecords.

Delivery guarantee (read this before relying on the data)
----------------------------------------------------------
Genesys sends events only over an open WebSocket and never queues or replays them
(NOTIFICATIONS_API.md §7). So this connector is **at-least-once for every event it received,
and reports every window in which it could not receive**: it cannot be gap-free, but a gap is
never silent. A *gap window* is reported:

- at start (every restart), per topic, from the ``seen_ms`` of the topic's committed offset to
  the moment the new socket is connected (``reason=restart``); a topic with no committed offset
  gets a ``coverage_start`` record instead (nothing before it was ever promised);
- after an unplanned disconnect (socket dropped, liveness watchdog fired, socket_closing
  without a successful rotation), from the last frame received on the lost socket to the
  moment a socket of that channel is connected again (``reason=disconnect``);
- after ``{"result":"404"}`` (channel expired/evicted: ``channel_lost``), ``no_longer_subscribed``
  and ``token_revoked``, from the last frame before the signal to the new channel's connection;
- when a rotation had to close the old socket before it had delivered everything sent before
  the new one connected (``reason=rotation_backlog``, see below).

"From the last frame received" means from when the server *sent* it, at the earliest: under
backpressure (Kafka slower than Genesys) the receiver reads frames seconds after they were sent,
and what was still in flight when the socket went (in the server's and the kernel's buffers) was
sent long before the last receive time. The bound (``from_basis`` in the record) is the latest
event time received (``event_time``; Genesys stamps events before sending them and a socket
delivers in order), or when the receiver sent the ping answered by the last pong received
(``ping``; the server answers in order, so what follows a pong was sent after its ping), the
later of the two. A committed offset's ``seen_ms`` is that bound too (not the receive time), so
a restart gap covers what was in flight after the last record delivered (``committed_offset``).
A socket's end is covered by another socket only if that one connected before the bound; the
order of the control frames says nothing about it, as they come in receive order.

Each gap is a record on ``gaps.topic`` (schema ``GapRecord``: connector, genesys_topic,
from_time, to_time, reason, ...), a WARNING log line per channel, the counter ``gaps``
(``connector_plugin_gaps_total{reason=...}``) and the status detail ``last_gap``. Planned
changes (rotation before expiry or token renewal, socket_closing) are make-before-break: the new
channel is connected before the old socket goes, the old socket is drained (read until it has
delivered past the new one's connection, at most ``session.DRAIN_WAIT_S``) rather than cut, and
duplicates from the overlap are dropped.
Duplicates can still reach Kafka after a restart or outside the overlap window: consumers should
be idempotent (key + event time, or the correlation id header).

Source partition and offset (forever: renaming a key orphans committed offsets)
-------------------------------------------------------------------------------
- source partition: ``{"topic": "<concrete Genesys topic>"}``, e.g.
  ``{"topic": "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"}``.
- source offset: ``{"event_time_ms": int | null, "correlation_id": str | null,
  "seen_ms": int}``: the event time of the last event (from the body, when the family has one),
  its ``metadata.CorrelationId``, and the wall-clock ms up to which the connector knew the
  topic to be live: when the server sent the last event at the earliest (see above; not its
  receive time), or the end of the last reported gap.
  It describes the last record *delivered*; Genesys cannot resume from it, it only bounds gaps.

Upstream limits (NOTIFICATIONS_API.md §0): 1,000 topics per channel, 20 channels per OAuth
client (the 21st evicts the oldest), 24 h channel lifetime, one socket per channel, heartbeat
about every 30 s, ``socket_closing`` about a minute before a maintenance close, 300 REST
requests per minute per token. See ``plan.py`` and ``session.py`` for how each is handled.

Threads: ``poll`` runs on the task thread; REST work on the supervisor thread and socket reads
on one receiver thread per socket (``session.py``). ``stop`` may come from any thread.
"""

from __future__ import annotations

import hashlib
import operator
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson

from connector import native
from connector.api import (
    ConnectorError,
    MalformedInput,
    Polled,
    RetriableError,
    SourceRecord,
    SourceTask,
    TaskContext,
)
from connector.buffer import EventBuffer, Frame
from connector.plugins.genesys import events, plan, topics
from connector.plugins.genesys.auth import AuthError, TokenUnavailableError, shared_provider
from connector.plugins.genesys.channels import ChannelsClient
from connector.plugins.genesys.events import FrameKind, RecordBuilder
from connector.plugins.genesys.native import NativeRecords
from connector.plugins.genesys.session import (
    CONTROL_PREFIX,
    ChannelManager,
    ChannelSession,
    SessionSettings,
)
from connector.plugins.genesys.spec import GenesysNotificationsConfig

_RECEIVED_NS = operator.itemgetter(1)
"""``Frame.received_ns``."""


class DuplicateFilter:
    """Drops frames already seen while two sockets of a channel overlap.

    Active from the start of a rotation until ``window_ms`` after its end; otherwise it costs
    nothing. The key is a 128-bit BLAKE2 digest of the raw frame: the same event delivered on
    two channels is the same text. Bounded by ``max_entries`` (oldest forgotten first), so in
    the worst case a duplicate gets through, which at-least-once allows.
    """

    def __init__(self, window_ms: int, max_entries: int) -> None:
        self.window_ms = window_ms
        self.max_entries = max_entries
        self._rotations = 0
        self._active_until_ms = 0
        self._seen: OrderedDict[bytes, int] = OrderedDict()
        self.dropped = 0

    def rotation_started(self) -> None:
        """A rotation began: start remembering frames."""
        self._rotations += 1

    def rotation_finished(self, now_ms: int) -> None:
        """A rotation ended: keep filtering for ``window_ms`` (late frames of the old socket)."""
        self._rotations = max(0, self._rotations - 1)
        self._active_until_ms = max(self._active_until_ms, now_ms + self.window_ms)

    @property
    def active(self) -> bool:
        """Whether frames are being remembered now."""
        return self._rotations > 0 or bool(self._seen)

    def passes(self, now_ms: int) -> bool:
        """Whether every frame received at ``now_ms`` passes unseen (no overlap now): then
        :meth:`is_duplicate` is False for it without hashing; what was remembered is forgotten."""
        if self._rotations == 0 and now_ms >= self._active_until_ms:
            if self._seen:
                self._seen.clear()
            return True
        return False

    def is_duplicate(self, payload: bytes | str, now_ms: int) -> bool:
        """Whether ``payload`` was seen in the current overlap; remembers it if not."""
        if self.passes(now_ms):
            return False
        data = payload.encode() if isinstance(payload, str) else payload
        key = hashlib.blake2b(data, digest_size=16).digest()
        if key in self._seen:
            self.dropped += 1
            return True
        self._seen[key] = now_ms
        if len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return False


@dataclass(slots=True)
class _Gap:
    from_ms: int | None
    reason: str
    detail: str
    channel_id: str | None
    from_basis: str | None = None


@dataclass(slots=True)
class _Socket:
    """What the task thread knows about one socket (frame source) of a session since it
    connected: enough to bound when the server sent the last frame it delivered."""

    connected_ms: int
    received_ms: int
    """Receive time of the last frame (the connection time before the first)."""
    bound_ms: int | None = None
    """The latest of the bounds below (they only grow); ``None``: neither known yet."""
    basis: str = "receive_time"
    superseded_ms: int | None = None
    """A newer socket of the session connected then (a rotation): once this one has delivered
    past it, it holds nothing the new one lacks."""

    def sent_after(self) -> tuple[int, str]:
        """``(ms, basis)``: when the server sent the last frame received, at the earliest; so
        everything it sent afterwards, which may still be in flight when the socket goes, too.
        The receive time is no such bound: under backpressure what is read was sent long
        before, and what follows it waits in the server's and the kernel's buffers.

        - ``event_time``: the latest event time received (less 1 ms: a millisecond timestamp
          may be rounded up). Genesys stamps an event before it sends it and a socket delivers
          in order, so whatever follows was sent after it.
        - ``ping``: when the receiver sent the ping answered by the last pong received (or
          started the connection, before the first pong): what follows the pong was sent after
          (the later of the two bounds is used).
        - ``receive_time``: neither is known (frames from another kind of receiver).
        """
        if self.bound_ms is None:
            return self.received_ms, "receive_time"
        return self.bound_ms, self.basis

    def pinged(self, sent_after_ns: int) -> None:
        """The receiver's ping bound of a frame (``Frame.sent_after_ns``)."""
        ms = sent_after_ns // 1_000_000
        if self.bound_ms is None or ms > self.bound_ms:
            self.bound_ms, self.basis = ms, "ping"


@dataclass(slots=True)
class _SessionState:
    """What the task thread knows about one channel session."""

    live: set[str] = field(default_factory=set)
    pending: _Gap | None = None
    started: bool = False
    sockets: dict[str, _Socket] = field(default_factory=dict)


def compute_start_gap(
    offset: Mapping[str, Any] | None, connected_ms: int
) -> tuple[int | None, str]:
    """``(from_ms, reason)`` of a topic's gap at start from its committed offset."""
    if offset and isinstance(offset.get("seen_ms"), int):
        return int(offset["seen_ms"]), "restart"
    return None, "coverage_start"


class GenesysNotificationsSourceTask(SourceTask):
    """Streams the channels assigned to this task (``task_config["channels"]``)."""

    def __init__(self) -> None:
        self._ctx: TaskContext | None = None
        self._config: GenesysNotificationsConfig | None = None
        self._buffer: EventBuffer | None = None
        self._manager: ChannelManager | None = None
        self._builder: RecordBuilder | None = None
        self._native: NativeRecords | None = None
        self._offsets: dict[str, Mapping[str, Any]] = {}
        self._states: dict[int, _SessionState] = {}
        self._pending: list[Polled] = []
        self._fatal: BaseException | None = None
        self._dedupe = DuplicateFilter(30_000, 200_000)
        self._rejected: dict[str, dict[str, Any]] = {}
        self._subscribed: frozenset[str] = frozenset()
        self._status_lock = threading.Lock()
        self._gaps_reported = 0
        self._gauges_due = 0.0  # ctx.clock time of the next streaming-gauge update
        self._stopped = threading.Event()

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, ctx: TaskContext) -> None:
        """Read the assignment and committed offsets, check the credentials, start the channels.

        Raises:
            ConnectorError: the OAuth client was refused (the task fails; fix the config).
            RetriableError: the login host is unreachable (the runtime restarts the task).
        """
        self._ctx = ctx
        ctx.count("gap_windows", 0)  # present from the start, so that alerts on them evaluate
        ctx.count("gap_seconds", 0)
        config = cast(GenesysNotificationsConfig, ctx.config)
        self._config = config
        plans = assigned_channels(config, ctx.task_config)
        hosts = config.hosts()
        tokens = shared_provider(
            hosts.login,
            config.genesys_client_id,
            config.genesys_client_secret,
            margin_s=config.token_refresh_margin_ms / 1000,
            timeout_s=config.http_timeout_ms / 1000,
        )
        try:
            tokens.token()
        except AuthError as exc:
            raise ConnectorError(f"cannot start {ctx.connector_name}: {exc}") from None
        except TokenUnavailableError as exc:
            raise RetriableError(str(exc)) from None

        rule, overrides = config.routing()
        self._builder = RecordBuilder(topics.Router(rule, overrides, ctx.connector_name))
        self._dedupe = DuplicateFilter(config.dedupe_window_ms, config.dedupe_max_entries)
        for channel in plans:
            for topic in channel.topics:
                committed = ctx.offset_reader.offset({"topic": topic})
                if committed:
                    self._offsets[topic] = committed
        self._states = {p.index: _SessionState() for p in plans}
        self._subscribed = frozenset(t for p in plans for t in p.topics)
        extension = native.extension()
        native.log_once(ctx.logger)
        if extension is not None:
            self._native = NativeRecords(extension, self._builder, self._subscribed)
        self._buffer = EventBuffer(config.buffer_capacity)
        client = ChannelsClient(
            hosts.api,
            tokens,
            timeout_s=config.http_timeout_ms / 1000,
            backoff_initial_s=config.reconnect_backoff_initial_ms / 1000,
            backoff_max_s=config.reconnect_backoff_max_ms / 1000,
        )
        client_key = (hosts.login, config.genesys_client_id)
        settings = SessionSettings(
            rotate_interval_s=config.channel_rotate_interval_ms / 1000,
            rotate_on_token_expiry=config.channel_rotate_on_token_expiry,
            ping_interval_s=config.ping_interval_ms / 1000,
            liveness_timeout_s=config.liveness_timeout_ms / 1000,
            backoff_initial_s=config.reconnect_backoff_initial_ms / 1000,
            backoff_max_s=config.reconnect_backoff_max_ms / 1000,
            connect_timeout_s=config.http_timeout_ms / 1000,
        )
        self._manager = ChannelManager(
            plans,
            self._buffer,
            client,
            tokens,
            settings,
            rotation_slots=plan.CHANNEL_BUDGET.rotation_slots(
                client_key, config.channels_rotation_headroom
            ),
            clock=ctx.clock,
            name=f"{ctx.connector_name}-{ctx.task_id}",
            log=ctx.logger,
            on_subscribed=self._on_subscribed,
            on_fatal=self._on_fatal,
            on_change=self._publish_channels,
        )
        ctx.logger.info(
            "starting %d channel(s) with %d topics; %d topics have a committed offset",
            len(plans),
            sum(len(p.topics) for p in plans),
            len(self._offsets),
        )
        self._manager.start()

    def stop(self) -> None:
        """Stop the supervisor and sockets, and wake ``poll``. Idempotent, any thread."""
        self._stopped.set()
        if self._manager is not None:
            self._manager.stop()
        if self._buffer is not None:
            self._buffer.close()

    # --- poll ----------------------------------------------------------------------------------
    def poll(self, timeout_s: float) -> list[Polled]:
        """Records of the frames received so far (at most ``poll.max.records`` frames' worth),
        gap records first, malformed frames in their place; waits up to ``timeout_s`` for the
        first frame."""
        if self._fatal is not None:
            raise ConnectorError(f"Genesys refused the OAuth client: {self._fatal}")
        ctx = self._ctx
        assert ctx is not None and self._buffer is not None and self._config is not None
        records, self._pending = self._pending, []
        frames = self._buffer.drain(self._config.poll_max_records, 0 if records else timeout_s)
        if self._native is not None:
            self._native_frames(frames, records)
            self._publish_gauges()
            return records
        for frame in frames:
            if frame.source.startswith(CONTROL_PREFIX):
                self._control(frame, records)
            else:
                self._data_frame(frame, records)
        self._publish_gauges()
        return records

    def _data_frame(self, frame: Frame, out: list[Polled]) -> None:
        try:
            self._frame(frame, out)
        except Exception as exc:  # a plugin bug must cost this frame only, not the stream
            assert self._ctx is not None
            self._ctx.logger.exception("cannot handle a frame from %s", frame.source)
            reason = f"cannot handle the frame: {type(exc).__name__}: {exc}"
            out.append(self._malformed(frame, events.bounded_text(reason), exc))

    def _native_frames(self, frames: list[Frame], out: list[Polled]) -> None:
        """:meth:`poll`'s loop on the native path: each run of data frames between control
        frames is built in one native call; a frame it leaves (``None``: not plainly an event,
        or received while a rotation's duplicates are being dropped) takes :meth:`_frame`,
        with the per-socket bookkeeping brought up to date first, so nothing is reordered."""
        assert self._native is not None
        start, count = 0, len(frames)
        while start < count:
            frame = frames[start]
            if frame.source.startswith(CONTROL_PREFIX):
                self._control(frame, out)
                start += 1
                continue
            end = start + 1
            while end < count and not frames[end].source.startswith(CONTROL_PREFIX):
                end += 1
            run = frames[start:end] if start or end < count else frames
            start = end
            try:
                built = self._native.build(run)
            except Exception:  # the native path must never cost a frame: Python decides
                assert self._ctx is not None
                self._ctx.logger.exception("native record path failed; using the Python path")
                built = [None] * len(run)
            passes = self._dedupe.passes
            # The duplicate filter's window is a time: if the run's earliest frame passes, all do.
            quiet = passes(min(map(_RECEIVED_NS, run)) // 1_000_000)
            offsets, subscribed = self._offsets, self._subscribed
            for frame, record in zip(run, built, strict=True):
                if (
                    record is None
                    or not (quiet or passes(frame.received_ns // 1_000_000))
                    or record.source_partition["topic"] not in subscribed  # type: ignore[index]
                ):
                    self._data_frame(frame, out)  # Python decides, with its reason
                    continue
                offset = cast(dict[str, Any], record.source_offset)
                session, state, sock = self._received(frame)
                if sock is not None:
                    self._delivered(session, state, sock, frame.source, offset)
                offsets[record.source_partition["topic"]] = offset  # type: ignore[index]
                out.append(record)

    def _publish_gauges(self) -> None:
        """The streaming gauges every WebSocket source shares (docs/OPERATIONS.md), at most
        once a second: buffer depth and capacity, connected sockets, last frame per channel."""
        ctx, manager, buffer = self._ctx, self._manager, self._buffer
        if ctx is None or manager is None or buffer is None:
            return
        now = ctx.clock()
        if now < self._gauges_due:
            return
        self._gauges_due = now + 1.0
        stats = buffer.stats()
        ctx.gauge("buffer_depth", stats["depth"])
        ctx.gauge("buffer_capacity", stats["capacity"])
        channels = manager.status()
        ctx.gauge("sockets_connected", sum(1 for c in channels if c["connected"]))
        for index, state in self._states.items():
            if state.sockets:
                last = max(sock.received_ms for sock in state.sockets.values()) / 1000
                ctx.gauge("last_frame_timestamp_seconds", last, channel=str(index))
        wall_offset = time.time() - now  # the manager's times are on ctx.clock
        for session in manager.sessions:
            channel = str(session.index)
            expires = _epoch_seconds(session.channel.expires if session.channel else None)
            if expires is not None:
                ctx.gauge("channel_expiry_timestamp_seconds", expires, channel=channel)
            if session.token_renew_at is not None:
                renew = session.token_renew_at + wall_offset
                ctx.gauge("token_renew_timestamp_seconds", renew, channel=channel)

    def _frame(self, frame: Frame, out: list[Polled]) -> None:
        """One data frame -> a record, malformed input, a connection change, or nothing.

        What a hostile frame can do is settled in :func:`events.classify` (decoding) and
        :meth:`RecordBuilder.build` (a value that cannot be written); an event whose topicName
        is not one this task subscribed to (exactly: Genesys sends topic names as subscribed,
        NOTIFICATIONS_API.md §4.2) is malformed too, for each topicName becomes a source
        partition in the offsets topic forever, and a key of the topic-match cache.
        """
        ctx, manager, builder = self._ctx, self._manager, self._builder
        assert ctx is not None and manager is not None and builder is not None
        received_ms = frame.received_ns // 1_000_000
        session, state, sock = self._received(frame)
        classified = events.classify(frame.payload)
        kind = classified.kind
        if kind is FrameKind.EVENT:
            assert classified.envelope is not None
            topic: str = classified.envelope["topicName"]
            if topic not in self._subscribed:
                reason = f"topicName {events.bounded_text(topic, 300)!r} is not subscribed here"
                out.append(self._malformed(frame, reason, None))
                return
            if self._dedupe.is_duplicate(frame.payload, received_ms):
                ctx.count("duplicates_dropped")
                return
            try:
                record = builder.build(classified.envelope, received_ms)
            except (TypeError, ValueError) as exc:
                out.append(self._malformed(frame, f"cannot build a record: {exc}", exc))
                return
            offset = cast(dict[str, Any], record.source_offset)
            if sock is not None:
                self._delivered(session, state, sock, frame.source, offset)
            self._offsets[topic] = offset
            out.append(record)
        elif kind in (FrameKind.HEARTBEAT, FrameKind.PONG):
            if session is not None:
                ctx.gauge(
                    "last_heartbeat_timestamp_seconds",
                    received_ms / 1000,
                    channel=str(session.index),
                )
            return  # liveness is the receiver's watchdog; the frame already counted
        elif kind is FrameKind.MALFORMED:
            out.append(self._malformed(frame, classified.message or "malformed frame", None))
        elif session is None or state is None:
            ctx.logger.warning("%s frame from an unknown socket %s", kind.value, frame.source)
        elif kind is FrameKind.SOCKET_CLOSING:
            ctx.logger.info(
                "channel %d: Genesys announced a socket close (%s); rotating",
                session.index,
                classified.message,
            )
            ctx.count("socket_closing")
            manager.request("rotate", session.index, "socket_closing", frame.source)
        elif kind is FrameKind.CHANNEL_GONE:
            bound = sock.sent_after() if sock else (received_ms, "receive_time")
            self._lost(session, state, frame, bound, "channel_lost", classified.message)
            manager.request("recover", session.index, "channel_lost", frame.source)
        elif kind in (FrameKind.NO_LONGER_SUBSCRIBED, FrameKind.TOKEN_REVOKED):
            reason = kind.value
            bound = sock.sent_after() if sock else (received_ms, "receive_time")
            self._lost(session, state, frame, bound, reason, classified.message)
            manager.request("rotate", session.index, reason, frame.source)
        else:
            ctx.logger.info(
                "channel %d: %s frame: %s", session.index, kind.value, classified.message
            )

    def _received(
        self, frame: Frame
    ) -> tuple[ChannelSession | None, _SessionState | None, _Socket | None]:
        """Note a data frame on its socket (receive time, the ping bound it carries): the
        bookkeeping of every frame, on the Python path and the native one alike."""
        assert self._manager is not None
        session = self._manager.session_of(frame.source)
        state = self._states.get(session.index) if session else None
        sock = state.sockets.get(frame.source) if state else None
        if sock is not None:
            sock.received_ms = frame.received_ns // 1_000_000
            if frame.sent_after_ns is not None:
                sock.pinged(frame.sent_after_ns)
        return session, state, sock

    def _delivered(
        self,
        session: ChannelSession | None,
        state: _SessionState | None,
        sock: _Socket,
        source: str,
        offset: dict[str, Any],
    ) -> None:
        """Account an event record: the socket's event-time bound, and the offset's
        ``seen_ms``, which bounds a restart gap: not this record's receive time (under
        backpressure what followed it was sent long before), but when the server sent it at
        the earliest, and while two sockets overlap, the earlier of both."""
        event_ms = offset.get("event_time_ms")
        if event_ms is not None:
            # a millisecond timestamp may be rounded up; and never later than received
            bound = event_ms - 1
            if bound > sock.received_ms:
                bound = sock.received_ms
            if sock.bound_ms is None or bound >= sock.bound_ms:
                sock.bound_ms, sock.basis = bound, "event_time"
        bound_ms = sock.bound_ms if sock.bound_ms is not None else sock.received_ms
        seen_ms = bound_ms
        if state is not None and len(state.sockets) > 1:
            seen_ms = min(other.sent_after()[0] for other in state.sockets.values())
        offset["seen_ms"] = seen_ms
        superseded = sock.superseded_ms
        if superseded is not None and session is not None and bound_ms >= superseded:
            sock.superseded_ms = None  # the old socket of a rotation has delivered past the new
            assert self._manager is not None
            self._manager.caught_up(session.index, source)

    def _lost(
        self,
        session: ChannelSession,
        state: _SessionState,
        frame: Frame,
        bound: tuple[int, str],
        reason: str,
        message: str | None,
    ) -> None:
        """The socket still looks open but delivers nothing any more: a gap starts."""
        assert self._ctx is not None
        self._ctx.logger.warning(
            "channel %d: %s (%s); replacing the channel", session.index, reason, message
        )
        state.live.discard(frame.source)
        if state.pending is None:
            channel_id = frame.source.rsplit("/", 1)[-1]
            from_ms, basis = bound
            state.pending = _Gap(from_ms, reason, message or reason, channel_id, basis)

    def _malformed(self, frame: Frame, reason: str, exc: BaseException | None) -> MalformedInput:
        """The frame as a dead letter. Its payload is bytes (a ``str`` frame with a lone
        surrogate is kept as its surrogate-escaped bytes), so the runtime can always write it."""
        assert self._ctx is not None
        self._ctx.count("malformed_frames")
        payload = frame.payload
        if type(payload) is str:
            payload = payload.encode("utf-8", "surrogatepass")
        return MalformedInput(payload, reason, exception=exc)

    # --- control frames: connection changes in stream order ------------------------------------
    def _control(self, frame: Frame, out: list[Polled]) -> None:
        ctx, manager = self._ctx, self._manager
        assert ctx is not None and manager is not None
        message = orjson.loads(frame.payload)
        source: str = message["source"]
        kind: str = message["kind"]
        at_ms = -(-frame.received_ns // 1_000_000)  # ends windows: rounded up, never early
        if kind == "rotation_started":
            self._dedupe.rotation_started()
            return
        if kind == "rotation_finished":
            self._dedupe.rotation_finished(at_ms)
            return
        session = manager.session_of(source)
        if session is None:
            return
        state = self._states[session.index]
        if kind == "connected":
            for other in state.live:
                older = state.sockets.get(other)
                if older is not None and older.superseded_ms is None:
                    older.superseded_ms = at_ms
            state.live.add(source)
            state.sockets[source] = _Socket(connected_ms=at_ms, received_ms=at_ms)
            if not state.started:
                state.started = True
                self._start_gaps(session, at_ms, out)
            elif state.pending is not None:
                self._emit_gap(session, state.pending, at_ms, out)
            state.pending = None
            ctx.set_status_detail("channels", manager.status())
        elif kind == "disconnected":
            self._disconnected(session, state, source, message, out)

    def _disconnected(
        self,
        session: ChannelSession,
        state: _SessionState,
        source: str,
        message: Mapping[str, Any],
        out: list[Polled],
    ) -> None:
        """A socket's stream ended. What the server sent after the last frame received is lost
        unless another socket of the session covered it, i.e. connected before that frame was
        sent (the old socket of a rotation that delivered past the new one's start). The
        control frame's place says nothing about that: under backpressure it comes seconds
        after the server's close, when a rotation may have connected a new socket already."""
        ctx, manager = self._ctx, self._manager
        assert ctx is not None and manager is not None
        was_live = source in state.live
        state.live.discard(source)
        sock = state.sockets.pop(source, None)
        if not was_live or sock is None:
            return  # already reported (404, no_longer_subscribed, token_revoked)
        final = message.get("sent_after_ns")
        if isinstance(final, int):
            sock.pinged(final)  # a pong after the last frame
        from_ms, basis = sock.sent_after()
        planned = bool(message.get("planned"))
        channel_id = source.rsplit("/", 1)[-1]
        reason_text = str(message.get("reason") or "socket lost")
        covering = [state.sockets[s].connected_ms for s in state.live if s in state.sockets]
        if covering:
            covered_ms = min(covering)
            if from_ms >= covered_ms:
                return  # the other socket has everything sent from there on
            if planned:
                gap = _Gap(
                    from_ms,
                    "rotation_backlog",
                    "the replaced socket was closed before it had delivered everything sent "
                    "before its replacement connected",
                    channel_id,
                    basis,
                )
            else:
                gap = _Gap(from_ms, "disconnect", reason_text, channel_id, basis)
            self._emit_gap(session, gap, covered_ms, out)
            return
        if planned:
            return  # stopping, or break-before-make after a loss reported already
        if state.pending is None:
            state.pending = _Gap(from_ms, "disconnect", reason_text, channel_id, basis)
        ctx.logger.warning(
            "channel %d: socket lost (%s); reconnecting", session.index, message.get("reason")
        )
        ctx.set_status_detail("channels", manager.status())

    def _start_gaps(self, session: ChannelSession, connected_ms: int, out: list[Polled]) -> None:
        ctx, config = self._ctx, self._config
        assert ctx is not None and config is not None
        restarts = 0
        earliest: int | None = None
        for topic in session.permitted:
            from_ms, reason = compute_start_gap(self._offsets.get(topic), connected_ms)
            if reason == "restart":
                restarts += 1
                earliest = from_ms if earliest is None or (from_ms or 0) < earliest else earliest
            basis = "committed_offset" if reason == "restart" else None
            out.append(
                self._gap_record(
                    topic, from_ms, connected_ms, reason, "connector start", None, basis
                )
            )
        starts = len(session.permitted) - restarts
        if restarts:
            ctx.count("gaps", restarts, reason="restart")
            self._report_gap(session, "restart", earliest, connected_ms, restarts)
        if starts:
            ctx.count("coverage_starts", starts)
            ctx.logger.info(
                "channel %d: %d topics covered from now on (no committed offset before)",
                session.index,
                starts,
            )

    def _emit_gap(self, session: ChannelSession, gap: _Gap, to_ms: int, out: list[Polled]) -> None:
        assert self._ctx is not None
        for topic in session.permitted:
            out.append(
                self._gap_record(
                    topic,
                    gap.from_ms,
                    to_ms,
                    gap.reason,
                    gap.detail,
                    gap.channel_id,
                    gap.from_basis,
                )
            )
        self._ctx.count("gaps", len(session.permitted), reason=gap.reason)
        self._report_gap(session, gap.reason, gap.from_ms, to_ms, len(session.permitted))

    def _report_gap(
        self, session: ChannelSession, reason: str, from_ms: int | None, to_ms: int, count: int
    ) -> None:
        assert self._ctx is not None
        self._gaps_reported += count
        # windows and seconds, whatever the number of topics a window covers
        self._ctx.count("gap_windows")
        if from_ms is not None:
            self._ctx.count("gap_seconds", max(0, to_ms - from_ms) / 1000)
        self._ctx.logger.warning(
            "GAP channel %d: %d topics may have lost events from %s to %s (%s); gap records "
            "written to %s",
            session.index,
            count,
            from_ms,
            to_ms,
            reason,
            self._config.gaps_topic if self._config else "?",
        )
        self._ctx.set_status_detail(
            "last_gap",
            {
                "channel": session.index,
                "topics": count,
                "from_ms": from_ms,
                "to_ms": to_ms,
                "reason": reason,
            },
        )
        self._ctx.set_status_detail("gaps_reported", self._gaps_reported)

    def _gap_record(
        self,
        topic: str,
        from_ms: int | None,
        to_ms: int,
        reason: str,
        detail: str | None,
        channel_id: str | None,
        from_basis: str | None = None,
    ) -> SourceRecord:
        ctx, config = self._ctx, self._config
        assert ctx is not None and config is not None
        record = events.gap_record(
            gaps_topic=config.gaps_topic,
            connector=ctx.connector_name,
            task_id=ctx.task_id,
            genesys_topic=topic,
            from_ms=from_ms,
            to_ms=to_ms,
            reason=reason,
            detail=detail,
            last_offset=self._offsets.get(topic),
            channel_id=channel_id,
            from_basis=from_basis,
        )
        self._offsets[topic] = cast(Mapping[str, Any], record.source_offset)
        return record

    # --- supervisor callbacks ------------------------------------------------------------------
    def _on_subscribed(self, session: ChannelSession) -> None:
        assert self._ctx is not None
        with self._status_lock:
            for topic in session.topics:
                self._rejected.pop(topic, None)
            for rejected in session.rejected:
                self._rejected[rejected.topic] = rejected.as_status()
            snapshot = list(self._rejected.values())
        self._ctx.set_status_detail("rejected_topics", snapshot)
        if session.rejected:
            self._ctx.count("rejected_topics", len(session.rejected))

    def _publish_channels(self) -> None:
        if self._ctx is not None and self._manager is not None:
            self._ctx.set_status_detail("channels", self._manager.status())

    def _on_fatal(self, exc: BaseException) -> None:
        self._fatal = exc
        if self._buffer is not None:
            self._buffer.close()


def assigned_channels(
    config: GenesysNotificationsConfig, task_config: Mapping[str, Any]
) -> list[plan.ChannelPlan]:
    """This task's channels: from ``task_config["channels"]``, or (no assignment, e.g. a task
    run on its own) every channel of the plan."""
    channels = task_config.get("channels") if task_config else None
    if channels:
        return [plan.ChannelPlan(int(c["index"]), tuple(c["topics"])) for c in channels]
    whole = plan.make_plan(
        config.topics(),
        max_topics=config.channel_max_topics,
        usable_channels=config.usable_channels(),
        max_tasks=1,
    )
    return list(whole.channels)


def _epoch_seconds(iso: str | None) -> float | None:
    """Genesys' ISO-8601 time (``2026-01-01T00:00:00Z``) as epoch seconds; None if absent or
    unreadable."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
