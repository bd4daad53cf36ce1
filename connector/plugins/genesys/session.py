"""Channel lifecycle of one task: create, subscribe, connect, rotate (make-before-break), recover.

Threads:

- the **supervisor thread** (one per task) does every REST call, sequentially, from a command
  queue: ``start``, ``rotate``, ``recover``, ``check``; it also schedules rotations before the
  channel's 24 h expiry and before the token that created the channel expires;
- one **receiver thread** per socket (:class:`~connector.ws.receiver.WebSocketReceiver`): it
  reads frames into the task's :class:`~connector.buffer.EventBuffer`, sends the application
  ping and replaces a socket that stays silent (no heartbeat, pong or event) for
  ``liveness.timeout.ms``, reconnecting to the same ``connectUri`` with jittered backoff;
- the **task thread** (``poll``) parses frames and decides about gaps and duplicates.

The task thread learns about connection changes through *control frames* put into the same
buffer as the data frames (source ``genesys-control:<socket source>``), so it sees them in
exactly the order the frames arrived: "connected" after every frame of the previous socket,
"disconnected" after the last frame of that socket (saying whether we closed it). The order is
that of the receive side, not of the real events: under backpressure a socket's frames, and its
disconnect, come seconds after the server sent them, while another socket may have connected
meanwhile. So frames carry a bound of their send time (the receiver's pings, see
:mod:`connector.ws.receiver`) and the task compares times, not positions.

Make-before-break rotation (socket_closing, channel age, token rotation, no_longer_subscribed,
token_revoked): take a rotation slot of the OAuth client (:mod:`plan` headroom), create a new
channel, subscribe it, connect it and wait for the handshake, and only then retire the old
socket: not by cutting it, which would throw away what it still holds (under backpressure,
seconds of events sent before the new socket connected), but by draining it: it is read until it
has delivered past the moment the new socket connected, or the server closes it, or
``DRAIN_WAIT_S``; what it had not delivered then is reported by the task as a gap
(``rotation_backlog``). During the overlap both sockets deliver; the task drops duplicates. If
no slot or no new channel can be had in time, the session falls back to what stays correct:
reconnecting the same channel (socket_closing) or break-before-make (a dead channel), and the
task reports the gap.
A channel is never created per retry: ``start``/``recover`` create one channel per attempt and
back off between attempts; rotations retry only after their backoff.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from connector.backoff import ExponentialBackoff
from connector.buffer import EventBuffer, Frame
from connector.plugins.genesys.auth import AuthError, TokenProvider
from connector.plugins.genesys.channels import (
    Channel,
    ChannelApiError,
    ChannelsClient,
    RejectedTopic,
)
from connector.plugins.genesys.events import PING_FRAME, FrameKind, classify
from connector.plugins.genesys.plan import ChannelPlan
from connector.ws.receiver import ReceiverEvent, ReceiverEventKind, WebSocketReceiver

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "genesys-control:"
"""Source prefix of control frames (connection changes) in the task's buffer."""

CONNECT_FAILURES_BEFORE_CHECK = 3
"""After this many failed (re)connects in a row, HEAD the channel: it may be gone (§4.7)."""

HANDSHAKE_WAIT_S = 20.0
"""How long a rotation waits for the new socket's handshake before giving up on it."""

DRAIN_WAIT_S = 5.0
"""How long a rotation keeps reading the old socket, at most, for what it holds that the new one
does not (under backpressure both are behind); then it is closed and the task reports what it
had not delivered as a gap."""


def is_pong(data: bytes) -> bool:
    """Whether a frame is Genesys' answer to :data:`PING_FRAME` (the receiver's pongs bound when
    the frames after them were sent; parsed only when the text mentions a pong)."""
    return b'"pong"' in data and classify(data).kind is FrameKind.PONG


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """The session's knobs, taken from the config model (seconds, not ms)."""

    rotate_interval_s: float
    rotate_on_token_expiry: bool
    ping_interval_s: float
    liveness_timeout_s: float
    backoff_initial_s: float
    backoff_max_s: float
    connect_timeout_s: float
    rotation_slot_wait_s: float = 45.0
    """socket_closing gives about a minute (§4.5); leave time to connect before the close."""


@dataclass(eq=False)
class ChannelSession:
    """One planned channel of the task and the Genesys channel currently serving it.

    Written by the supervisor thread; the task thread reads ``permitted`` and ``retiring``
    (replaced wholesale / guarded by ``lock``).
    """

    index: int
    topics: tuple[str, ...]
    channel: Channel | None = None
    receiver: WebSocketReceiver | None = None
    source: str = ""
    generation: int = 0
    created_at: float = 0.0
    token_renew_at: float | None = None
    permitted: tuple[str, ...] = ()
    rejected: tuple[RejectedTopic, ...] = ()
    busy: bool = False
    connect_failures: int = 0
    retiring: set[str] = field(default_factory=set)
    connected: dict[str, threading.Event] = field(default_factory=dict)
    connected_ns: dict[str, int] = field(default_factory=dict)
    """Source -> when its socket last connected (the stamp of its ``connected`` control frame)."""
    draining: dict[str, tuple[WebSocketReceiver, str]] = field(default_factory=dict)
    """Source -> (receiver, rotation reason) of old sockets still read after a rotation; each
    holds its rotation slot until it is closed (its channel is still in use)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def is_retiring(self, source: str) -> bool:
        """Whether ``source``'s socket is being closed on purpose (no gap when it goes)."""
        with self.lock:
            return source in self.retiring


@dataclass(frozen=True, slots=True)
class _Command:
    kind: str  # start | rotate | recover | check
    index: int
    reason: str = ""
    not_before: float = 0.0
    source: str = ""
    """The socket the command is about; stale when the session moved on (ignored)."""


class ChannelManager:
    """Owns the :class:`ChannelSession`\\ s of one task and its supervisor thread.

    Args:
        plans: this task's channels.
        buffer: the task's buffer (data frames and control frames).
        client: the REST client of the OAuth client.
        tokens: its token provider.
        settings: see :class:`SessionSettings`.
        rotation_slots: the OAuth client's rotation headroom (``None``: no make-before-break).
        clock: monotonic seconds.
        name: for thread names and logs (``<connector>-<task>``).
        on_subscribed: called (supervisor thread) with the session after each subscription.
        on_fatal: called with an error that retrying cannot fix (refused credentials).
        on_change: called (supervisor thread) after a session moved to a new channel.
    """

    def __init__(
        self,
        plans: list[ChannelPlan],
        buffer: EventBuffer,
        client: ChannelsClient,
        tokens: TokenProvider,
        settings: SessionSettings,
        *,
        rotation_slots: threading.BoundedSemaphore | None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "genesys",
        log: logging.LoggerAdapter[logging.Logger] | None = None,
        on_subscribed: Callable[[ChannelSession], None] | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = [ChannelSession(p.index, p.topics) for p in plans]
        self._by_index = {s.index: s for s in self.sessions}
        self._by_source: dict[str, ChannelSession] = {}
        self._buffer = buffer
        self._client = client
        self._tokens = tokens
        self._settings = settings
        self._slots = rotation_slots
        self._clock = clock
        self._name = name
        self._log = log or logging.LoggerAdapter(logger, {})
        self._on_subscribed = on_subscribed
        self._on_fatal = on_fatal
        self._on_change = on_change
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._delayed: list[_Command] = []
        self._stop = client.stop
        self._thread: threading.Thread | None = None
        self._backoffs: dict[int, ExponentialBackoff] = {}
        self.channels_created = 0

    # --- public, any thread --------------------------------------------------------------------
    def start(self) -> None:
        """Start the supervisor; it brings every channel up in the background."""
        for session in self.sessions:
            self.request("start", session.index, "start")
        self._thread = threading.Thread(
            target=self._run, name=f"genesys-supervisor[{self._name}]", daemon=True
        )
        self._thread.start()

    def request(self, kind: str, index: int, reason: str = "", source: str = "") -> None:
        """Queue a command for the supervisor (``rotate``/``recover``/``check``).

        With ``source``, the command is dropped if the session no longer uses that socket
        (two symptoms of one loss must not replace the channel twice).
        """
        self._commands.put(_Command(kind, index, reason, source=source))

    def session_of(self, source: str) -> ChannelSession | None:
        """The session a frame source belongs to."""
        return self._by_source.get(source)

    def caught_up(self, index: int, source: str) -> None:
        """The old socket ``source`` of a rotation has delivered past the moment its
        replacement connected: nothing it still holds is missing from the new one, close it."""
        session = self._by_index.get(index)
        if session is None:
            return
        with session.lock:
            entry = session.draining.get(source)
        if entry is not None:
            entry[0].stop(0)  # its thread ends the drain (see _drain_ended)

    def stop(self) -> None:
        """Stop the supervisor and every receiver. Idempotent."""
        self._stop.set()
        self._commands.put(_Command("stop", -1))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        for session in self.sessions:
            with session.lock:
                receivers = [session.receiver] if session.receiver else []
                receivers += [receiver for receiver, _ in session.draining.values()]
                slots_held = len(session.draining)
                session.draining.clear()
            for _ in range(slots_held):
                if self._slots is not None:
                    self._slots.release()
            for receiver in receivers:
                with session.lock:
                    session.retiring.add(receiver.source)
                receiver.stop(2.0)
        self._client.close()

    def status(self) -> list[dict[str, Any]]:
        """JSON-friendly per-channel status."""
        return [
            {
                "index": s.index,
                "channel_id": s.channel.id if s.channel else None,
                "topics": len(s.topics),
                "permitted": len(s.permitted),
                "rejected": len(s.rejected),
                "connected": bool(s.receiver and s.receiver.is_connected),
                "generation": s.generation,
            }
            for s in self.sessions
        ]

    # --- supervisor thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._clock()
            ready = [c for c in self._delayed if c.not_before <= now]
            self._delayed = [c for c in self._delayed if c.not_before > now]
            for command in ready:
                self._commands.put(command)
            try:
                command = self._commands.get(timeout=0.2)
            except queue.Empty:
                self._schedule_rotations()
                continue
            if command.kind == "stop":
                break
            try:
                self._execute(command)
            except AuthError as exc:
                self._log.error("Genesys refused the OAuth client: %s", exc)
                if self._on_fatal:
                    self._on_fatal(exc)
                break
            except Exception as exc:
                self._retry_later(command, exc)
            self._schedule_rotations()

    def _retry_later(self, command: _Command, exc: BaseException) -> None:
        if self._stop.is_set():
            return
        backoff = self._backoffs.setdefault(
            command.index,
            ExponentialBackoff(self._settings.backoff_initial_s, self._settings.backoff_max_s),
        )
        delay = backoff.next_delay(at_least=getattr(exc, "retry_after_s", None))
        self._log.warning(
            "channel %d: %s (%s) failed: %s; retrying in %.1f s",
            command.index,
            command.kind,
            command.reason,
            exc,
            delay,
        )
        session = self._by_index.get(command.index)
        if session is not None:
            session.busy = command.kind in ("start", "recover")
        self._delayed.append(
            _Command(
                command.kind, command.index, command.reason, self._clock() + delay, command.source
            )
        )

    def _execute(self, command: _Command) -> None:
        session = self._by_index[command.index]
        if command.source and command.source != session.source:
            self._log.debug("channel %d: stale %s command dropped", session.index, command.kind)
            return
        if command.kind == "start":
            if session.channel is None:
                self._bring_up(session, command.reason)
        elif command.kind == "recover":
            self._recover(session, command.reason)
        elif command.kind == "rotate":
            self._rotate(session, command.reason)
        elif (
            command.kind == "check"
            and session.channel is not None
            and not self._client.channel_exists(session.channel.id)
        ):
            self._log.warning(
                "channel %d: Genesys channel %s is gone; replacing it",
                session.index,
                session.channel.id,
            )
            self._recover(session, "channel_gone")
        self._backoffs.pop(command.index, None)

    def _schedule_rotations(self) -> None:
        now = self._clock()
        for session in self.sessions:
            if session.channel is None or session.busy:
                continue
            reason = None
            if now - session.created_at >= self._settings.rotate_interval_s:
                reason = "channel_age"
            elif (
                self._settings.rotate_on_token_expiry
                and session.token_renew_at is not None
                and now >= session.token_renew_at
            ):
                reason = "token_rotation"
            if reason:
                session.busy = True
                self.request("rotate", session.index, reason)

    def _new_channel(self, session: ChannelSession) -> tuple[Channel, str, float | None]:
        """Create and subscribe a channel for ``session``: ``(channel, source, renew_at)``."""
        token = self._tokens.current()
        channel = self._client.create_channel()
        self.channels_created += 1
        try:
            result = self._client.subscribe(channel.id, session.topics)
        except ChannelApiError:
            # The channel exists but is unusable; it has no socket, so Genesys evicts it first.
            raise
        session.permitted = result.permitted
        session.rejected = result.rejected
        for rejected in result.rejected:
            self._log.warning(
                "Genesys rejected topic %s on channel %d: %s (missing permissions: %s)",
                rejected.topic,
                session.index,
                rejected.reason,
                ", ".join(rejected.missing_permissions) or "none listed",
            )
        if self._on_subscribed:
            self._on_subscribed(session)
        generation = session.generation + 1
        source = f"{self._name}/ch{session.index}/g{generation}/{channel.id}"
        # The token provider keeps its own monotonic clock; convert to this manager's clock.
        return channel, source, self._clock() + self._tokens.renew_in(token)

    def _start_receiver(
        self, session: ChannelSession, channel: Channel, source: str
    ) -> WebSocketReceiver:
        connected = threading.Event()
        with session.lock:
            session.connected[source] = connected
        self._by_source[source] = session
        receiver = WebSocketReceiver(
            channel.connect_uri,
            self._buffer,
            source=source,
            ping_interval_s=self._settings.ping_interval_s,
            ping_message=PING_FRAME,
            is_pong=is_pong,
            liveness_timeout_s=self._settings.liveness_timeout_s,
            backoff=ExponentialBackoff(
                self._settings.backoff_initial_s, self._settings.backoff_max_s, jitter=0.2
            ),
            on_state=lambda event: self._on_state(session, event),
            connect_timeout_s=self._settings.connect_timeout_s,
            name=f"genesys-ws[{source}]",
            healthy_after_s=min(30.0, self._settings.liveness_timeout_s),
        )
        receiver.start()
        return receiver

    def _adopt(
        self,
        session: ChannelSession,
        channel: Channel,
        source: str,
        renew_at: float | None,
        receiver: WebSocketReceiver,
    ) -> None:
        with session.lock:
            session.channel = channel
            session.source = source
            session.receiver = receiver
            session.generation += 1
            session.created_at = self._clock()
            session.token_renew_at = renew_at
            session.connect_failures = 0
            session.busy = False
        if self._on_change:
            self._on_change()

    def _bring_up(self, session: ChannelSession, reason: str) -> None:
        channel, source, renew_at = self._new_channel(session)
        receiver = self._start_receiver(session, channel, source)
        self._adopt(session, channel, source, renew_at, receiver)
        self._log.info(
            "channel %d: Genesys channel %s subscribed to %d topics (%d rejected) [%s]",
            session.index,
            channel.id,
            len(session.permitted),
            len(session.rejected),
            reason,
        )

    def _retire(self, session: ChannelSession, receiver: WebSocketReceiver | None) -> None:
        if receiver is None:
            return
        with session.lock:
            session.retiring.add(receiver.source)
        receiver.stop(5.0)

    def _recover(self, session: ChannelSession, reason: str) -> None:
        """Break-before-make for a channel that is already lost (the task reports the gap)."""
        session.busy = True
        self._retire(session, session.receiver)
        with session.lock:
            session.receiver = None
            session.channel = None
        self._bring_up(session, reason)

    def _control(self, kind: str, source: str, **detail: Any) -> int:
        """Put a control frame into the buffer (in stream order); returns its time stamp."""
        payload = orjson.dumps({"kind": kind, "source": source, **detail})
        at_ns = time.time_ns()
        self._buffer.put(Frame(payload, at_ns, CONTROL_PREFIX + source), timeout_s=None)
        return at_ns

    def _drain(
        self, session: ChannelSession, receiver: WebSocketReceiver | None, reason: str
    ) -> bool:
        """Keep reading the old socket of a rotation until it holds nothing the new one lacks
        (it delivered the pong to a ping sent after the new socket connected, or the task saw
        an event stamped after that), the server closes it, or ``DRAIN_WAIT_S`` passes; it
        keeps the rotation slot (its channel is in use) until :meth:`_drain_ended`. Returns
        whether a drain started. Nothing here waits on the supervisor: it may be waiting for
        that very slot to rotate another channel."""
        if receiver is None:
            return False
        with session.lock:
            after_ns = session.connected_ns.get(session.source, time.time_ns())
            session.draining[receiver.source] = (receiver, reason)
            session.retiring.add(receiver.source)
        receiver.drain(after_ns, DRAIN_WAIT_S)
        return True

    def _drain_ended(self, session: ChannelSession, source: str) -> None:
        """A draining old socket is closed (receiver thread): free its rotation slot and end
        the rotation for the task (after the socket's ``disconnected``)."""
        with session.lock:
            entry = session.draining.pop(source, None)
            session.connected_ns.pop(source, None)
        if entry is None:
            return
        if self._slots is not None:
            self._slots.release()  # the old channel is no longer in use
        self._control("rotation_finished", source, reason=entry[1])

    def _rotate(self, session: ChannelSession, reason: str) -> None:
        """Make-before-break; falls back as described in the module docstring."""
        if session.channel is None:
            self._bring_up(session, reason)
            return
        session.busy = True
        if reason == "token_revoked":
            self._tokens.invalidate()
        old_receiver, old_source = session.receiver, session.source
        slots = self._slots
        wait_s = self._settings.rotation_slot_wait_s
        if slots is None or not slots.acquire(timeout=wait_s):
            self._fallback(session, reason, "no free rotation slot for this OAuth client")
            return
        self._control("rotation_started", old_source, reason=reason)
        new_receiver: WebSocketReceiver | None = None
        draining = False
        try:
            try:
                channel, source, renew_at = self._new_channel(session)
                new_receiver = self._start_receiver(session, channel, source)
                with session.lock:
                    connected = session.connected[source]
                if not connected.wait(HANDSHAKE_WAIT_S) or self._stop.is_set():
                    raise TimeoutError("the new channel's socket did not connect in time")
            except (ChannelApiError, TimeoutError, OSError) as exc:
                if new_receiver is not None:
                    self._retire(session, new_receiver)
                self._fallback(session, reason, str(exc))
                return
            except Exception as exc:
                if new_receiver is not None:
                    self._retire(session, new_receiver)
                self._fallback(session, reason, f"{type(exc).__name__}: {exc}")
                return
            self._adopt(session, channel, source, renew_at, new_receiver)
            draining = self._drain(session, old_receiver, reason)
            self._log.info(
                "channel %d: rotated (%s) from %s to %s, make-before-break",
                session.index,
                reason,
                old_source.rsplit("/", 1)[-1],
                channel.id,
            )
        finally:
            if not draining:  # else the slot is released when the old socket is closed
                slots.release()
                self._control("rotation_finished", old_source, reason=reason)

    def _fallback(self, session: ChannelSession, reason: str, why: str) -> None:
        self._log.warning(
            "channel %d: make-before-break for %s impossible: %s", session.index, reason, why
        )
        if reason in ("socket_closing",):
            # The old channel still exists: when Genesys closes the socket the receiver
            # reconnects to it (subscriptions live on the channel); the task reports the gap.
            session.busy = False
        elif reason in ("channel_age", "token_rotation"):
            session.busy = False
            session.created_at = self._clock() - self._settings.rotate_interval_s + 60.0
            if session.token_renew_at is not None:
                session.token_renew_at = self._clock() + 60.0
        else:  # the channel is lost anyway: break-before-make
            self._recover(session, reason)

    # --- receiver threads ----------------------------------------------------------------------
    def _on_state(self, session: ChannelSession, event: ReceiverEvent) -> None:
        kind = event.kind
        if kind is ReceiverEventKind.CONNECTED:
            session.connect_failures = 0
            at_ns = self._control("connected", event.source)
            with session.lock:
                session.connected_ns[event.source] = at_ns
                connected = session.connected.get(event.source)
            if connected is not None:
                connected.set()
        elif kind is ReceiverEventKind.DISCONNECTED:
            self._control(
                "disconnected",
                event.source,
                reason=event.reason,
                planned=event.planned,
                sent_after_ns=event.sent_after_ns,
            )
        elif kind is ReceiverEventKind.STOPPED:
            self._drain_ended(session, event.source)
        elif kind is ReceiverEventKind.CONNECT_FAILED:
            if session.is_retiring(event.source) or event.source != session.source:
                return
            session.connect_failures += 1
            if session.connect_failures == CONNECT_FAILURES_BEFORE_CHECK:
                self.request("check", session.index, "reconnects failing", event.source)
