"""A resilient WebSocket receiver: one connection, one daemon thread, feeding an EventBuffer.

Per frame the thread only receives, stamps it (the wall-clock time of the socket read that
completed it, and a lower bound of when the server sent it) and puts a
:class:`~connector.buffer.Frame` into the buffer. No decoding or parsing happens here: the
payload of text *and* binary frames is passed on as raw ``bytes`` (UTF-8 is not validated,
``skip_utf8_validation=True``), so a malformed frame can never crash the receiver; the task
decides what to do with it (usually the dead-letter topic).

Around that hot loop the thread:

* reconnects after any error or close, waiting :class:`~connector.backoff.ExponentialBackoff`
  delays with jitter; the URL and headers may be callables, evaluated on every attempt, so a
  caller can hand out fresh tokens (a callable that raises means "not now": logged, backed off);
* calls ``on_open`` on *every* (re)connect, e.g. to send subscribe messages;
* sends an application-level text ping (or a WebSocket ping frame) every ``ping_interval_s``;
* runs a liveness watchdog: a socket that delivers no frame at all within
  ``liveness_timeout_s`` is considered dead and replaced;
* applies backpressure: when the buffer is full, ``put`` blocks, the thread stops reading and
  TCP flow control reaches the server. The watchdog is paused while blocked (the silence is
  ours, not the server's), and pings keep going out.

Ping and watchdog need no extra thread: the socket has a short read timeout (the *tick*) and the
checks run when a read times out, or at most once per tick while frames flow.

Throughput: websocket-client reads each frame with up to three tiny ``recv`` calls (header,
length, payload) and parses it through a dozen Python calls and an ``ABNF`` object. So
websocket-client only does the handshake and every send; after the handshake the receiver owns
the reads of the connection's socket (``WebSocket.sock``: websocket-client reads the handshake
response byte by byte, so nothing of the WebSocket stream is consumed before): :class:`FrameReader`
reads up to 256 KB at once and parses frames straight from that buffer (about 1 µs per frame
instead of 7-14 µs of interpreter time, which the task thread needs).

Knowing what may be in flight. A receiver that the buffer holds back falls behind its server:
the frames it reads were sent long before (they waited in the server's and the kernel's buffers),
so their receive time says nothing about when what is still in flight was sent. But the server
answers pings in order, in the same stream: a frame that follows the pong to a ping sent at ``P``
was sent after ``P``. So every frame carries ``sent_after_ns``: the time the ping answered by the
latest pong was sent (before the first pong, the start of the connection attempt). It lags the
true send time by about a ping interval at most, with or without backpressure, and it never lies
after it (the server answers every ping, in order, and sends no pong unasked). The same bound ends
a :meth:`WebSocketReceiver.drain`.

URLs are logged and reported with the query string redacted (it often carries a token).
"""

from __future__ import annotations

import collections
import enum
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import websocket
from websocket import (
    ABNF,
    WebSocketConnectionClosedException,
    WebSocketException,
    WebSocketProtocolException,
    WebSocketTimeoutException,
)

from connector.backoff import ExponentialBackoff
from connector.buffer import EventBuffer, Frame
from connector.ws.urls import redact_url

logger = logging.getLogger(__name__)

# websocket-client can log every frame at trace level; make sure that is off on the hot path.
websocket.enableTrace(False)

_READ_BYTES = 256 * 1024
_MAX_PONG_BYTES = 256
"""Longer data frames are never taken for an application pong (keeps the check cheap)."""
_MAX_UNANSWERED_PINGS = 10_000
_MAX_TICK_S = 0.5
_MIN_TICK_S = 0.01
_OPCODE_TEXT = ABNF.OPCODE_TEXT
_OPCODE_BINARY = ABNF.OPCODE_BINARY
_OPCODE_CLOSE = ABNF.OPCODE_CLOSE
_DATA_OPCODES = frozenset((_OPCODE_TEXT, _OPCODE_BINARY))


class ReceiverEventKind(enum.StrEnum):
    """What happened to a receiver's connection."""

    CONNECTED = "connected"
    """The handshake succeeded (``on_open`` runs right after)."""
    CONNECT_FAILED = "connect_failed"
    """The URL/headers provider raised, or the TCP connect or handshake failed."""
    LIVENESS_TIMEOUT = "liveness_timeout"
    """No frame within ``liveness_timeout_s``; the socket is being replaced."""
    SERVER_CLOSED = "server_closed"
    """The server sent a close frame; ``close_code`` and ``reason`` say why."""
    DISCONNECTED = "disconnected"
    """The connection ended (after any of the above, or an I/O error); ``reason``, ``error``."""
    STOPPED = "stopped"
    """The thread is exiting: :meth:`WebSocketReceiver.stop`, no reconnect, or buffer closed."""


@dataclass(frozen=True, slots=True)
class ReceiverEvent:
    """A state change, passed to ``on_state`` on the receiver thread.

    Attributes:
        kind: what happened.
        source: the receiver's source tag.
        url: the URL of the attempt, query redacted (empty if the provider raised).
        reason: a human-readable reason.
        error: the exception behind it, if any.
        close_code: the server's close status code (``SERVER_CLOSED``).
        retry_in_s: the backoff delay before the next attempt, when one is scheduled.
        planned: (``DISCONNECTED``) the connection ended because :meth:`WebSocketReceiver.stop`
            was called or a :meth:`~WebSocketReceiver.drain` completed, not by the server, the
            network or the watchdog.
        sent_after_ns: (``DISCONNECTED``) what the server sent on the connection after its last
            frame received was sent after this (see the module docstring); what was in flight
            when it ended, too.
    """

    kind: ReceiverEventKind
    source: str
    url: str = ""
    reason: str = ""
    error: BaseException | None = None
    close_code: int | None = None
    retry_in_s: float | None = None
    planned: bool = False
    sent_after_ns: int | None = None


class Sender(Protocol):
    """What ``on_open`` gets to talk to the server."""

    def send(self, message: str | bytes) -> None:
        """Send ``message``: ``str`` as a text frame, ``bytes`` as a binary frame."""
        ...


class _ConnectionSender:
    """A :class:`Sender` over one websocket-client connection (its send is locked)."""

    __slots__ = ("_ws",)

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self._ws.send(message, _OPCODE_TEXT)
        else:
            self._ws.send(message, _OPCODE_BINARY)


_OPCODE_CONT = ABNF.OPCODE_CONT
_OPCODE_PING = ABNF.OPCODE_PING
_OPCODE_PONG = ABNF.OPCODE_PONG
_unpack_short = struct.Struct("!H").unpack_from
_unpack_long = struct.Struct("!Q").unpack_from


class FrameReader:
    """Parses the server's WebSocket frames (RFC 6455) straight from large socket reads.

    Behaves like websocket-client's ``recv_data(control_frame=True)``: returns ``(opcode,
    payload)`` for text and binary messages (fragments joined), ping (answered with a pong
    first), pong and close (answered with a close first); raises
    ``WebSocketTimeoutException`` when a read times out (a partly received frame is kept for
    the next call), ``WebSocketConnectionClosedException`` at end of stream and
    ``WebSocketProtocolException`` on a frame RFC 6455 forbids. Masked server frames are
    unmasked. UTF-8 is not validated (as with ``skip_utf8_validation=True``). ``read_ns`` is
    the wall-clock time the read that completed the last returned frame came back.

    Args:
        read: ``read(max_bytes) -> bytes``, e.g. the connection's ``socket.recv``; raises
            ``TimeoutError`` (or ``WebSocketTimeoutException``) when nothing came in time.
        pong: sends a pong with the given payload.
        send_close: sends the close frame that answers the server's.
    """

    __slots__ = (
        "_buffer",
        "_fragment_opcode",
        "_fragments",
        "_pong",
        "_pos",
        "_read",
        "_send_close",
        "read_ns",
    )

    def __init__(
        self,
        read: Callable[[int], bytes],
        pong: Callable[[bytes], Any],
        send_close: Callable[[], Any],
    ) -> None:
        self._read = read
        self._pong = pong
        self._send_close = send_close
        self._buffer = b""
        self._pos = 0
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = 0
        self.read_ns = time.time_ns()

    @classmethod
    def of(cls, ws: websocket.WebSocket) -> FrameReader:
        """The reader of an open websocket-client connection: reads its socket directly, sends
        pongs and the closing handshake through websocket-client."""
        sock = ws.sock
        if sock is None:
            raise WebSocketConnectionClosedException("the connection is not open")
        return cls(sock.recv, ws.pong, ws.send_close)

    def _fill(self) -> None:
        try:
            data = self._read(_READ_BYTES)
        except TimeoutError:
            raise WebSocketTimeoutException("timed out") from None
        self.read_ns = time.time_ns()
        if not data:
            raise WebSocketConnectionClosedException("Connection to remote host was lost.")
        rest = self._buffer[self._pos :]
        self._buffer = rest + data if rest else data
        self._pos = 0

    def recv_data(self, control_frame: bool = True) -> tuple[int, bytes]:
        while True:
            buffer, pos = self._buffer, self._pos
            available = len(buffer) - pos
            if available < 2:
                self._fill()
                continue
            first, second = buffer[pos], buffer[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if available < 4:
                    self._fill()
                    continue
                (length,) = _unpack_short(buffer, pos + 2)
                header = 4
            elif length == 127:
                if available < 10:
                    self._fill()
                    continue
                (length,) = _unpack_long(buffer, pos + 2)
                header = 10
            masked = second & 0x80
            if masked:
                header += 4
            end = pos + header + length
            if end > len(buffer):
                self._fill()
                continue
            self._pos = end
            payload = buffer[pos + header : end]
            if masked:
                payload = ABNF.mask(buffer[pos + header - 4 : pos + header], payload)
            if first & 0x70:
                raise WebSocketProtocolException("rsv is not implemented, yet")
            opcode = first & 0x0F
            final = first & 0x80
            if opcode in _DATA_OPCODES:
                if self._fragments is not None:
                    raise WebSocketProtocolException("Illegal frame")
                if final:
                    return opcode, payload
                self._fragments = [payload]
                self._fragment_opcode = opcode
                continue
            if opcode == _OPCODE_CONT:
                fragments = self._fragments
                if fragments is None:
                    raise WebSocketProtocolException("Illegal frame")
                fragments.append(payload)
                if final:
                    self._fragments = None
                    return self._fragment_opcode, b"".join(fragments)
                continue
            if not final or length > 125:
                raise WebSocketProtocolException("Invalid control frame")
            if opcode == _OPCODE_PING:
                self._pong(payload)
            elif opcode == _OPCODE_CLOSE:
                self._send_close()
                return opcode, payload
            elif opcode != _OPCODE_PONG:
                raise WebSocketProtocolException(f"Invalid opcode {opcode!r}")
            if control_frame:
                return opcode, payload


@dataclass(slots=True)
class _Disconnect:
    """Why a read loop ended."""

    reason: str
    error: BaseException | None = None
    close_code: int | None = None
    stopping: bool = False


@dataclass(slots=True)
class _SessionEnd:
    """How one connection attempt ended; reported by ``_run`` with the retry delay."""

    kind: ReceiverEventKind | None
    url: str
    reason: str
    error: BaseException | None = None
    close_code: int | None = None
    healthy: bool = False
    stopping: bool = False
    sent_after_ns: int | None = None


class WebSocketReceiver:
    """Keeps one WebSocket connection open and feeds its frames into an :class:`EventBuffer`.

    All work happens on one daemon thread started by :meth:`start`; :meth:`stop` may be called
    from any thread. Callbacks (``url``, ``headers``, ``on_open``, ``on_state``) run on the
    receiver thread; exceptions they raise are logged and never kill it.

    Args:
        url: the ``ws://``/``wss://`` URL, or a callable returning a fresh one per attempt
            (raise to skip an attempt: it is logged and backed off).
        buffer: where frames go; ``put`` blocks while it is full.
        source: the tag put on each :class:`Frame`; defaults to the redacted URL when ``url``
            is a string.
        headers: returns the handshake headers, per attempt (fresh tokens).
        on_open: called after every successful handshake, e.g. to send subscribe messages. If it
            raises, the connection is dropped and retried.
        ping_interval_s: send a ping this often while connected; ``None`` disables.
        ping_message: the text of an application-level ping (``'{"message":"ping"}'``); with
            ``None`` a WebSocket ping control frame is sent instead.
        is_pong: recognizes the server's answer to ``ping_message`` among the data frames (it is
            put into the buffer like any frame); pongs bound when frames were sent (see the
            module docstring). Without it, application pongs are not told from other frames.
        liveness_timeout_s: replace the socket when no frame at all (data, ping, pong) arrived
            for this long; ``None`` disables the watchdog.
        backoff: delays between attempts; default 0.5 s doubling to 30 s with 20% jitter.
        reconnect: reconnect after a disconnect; with ``False`` the thread ends instead.
        on_state: notified of connection state changes (:class:`ReceiverEvent`).
        connect_timeout_s: timeout of the TCP connect and handshake.
        name: the thread name.
        sslopt: passed to websocket-client (``cert_reqs``, ``ca_certs``...).
        sockopt: socket options passed to websocket-client, e.g. ``SO_RCVBUF``.
        healthy_after_s: a connection that lasted this long (or delivered a frame) resets the
            backoff; shorter-lived ones keep escalating it, so a server that accepts and drops
            at once is not hammered.
    """

    def __init__(
        self,
        url: str | Callable[[], str],
        buffer: EventBuffer,
        *,
        source: str = "",
        headers: Callable[[], Mapping[str, str]] | None = None,
        on_open: Callable[[Sender], None] | None = None,
        ping_interval_s: float | None = None,
        ping_message: str | None = None,
        is_pong: Callable[[bytes], bool] | None = None,
        liveness_timeout_s: float | None = None,
        backoff: ExponentialBackoff | None = None,
        reconnect: bool = True,
        on_state: Callable[[ReceiverEvent], None] | None = None,
        connect_timeout_s: float = 10.0,
        name: str | None = None,
        sslopt: Mapping[str, Any] | None = None,
        sockopt: Sequence[tuple[int, int, int]] | None = None,
        healthy_after_s: float = 30.0,
    ) -> None:
        if ping_interval_s is not None and ping_interval_s <= 0:
            raise ValueError(f"ping_interval_s must be > 0, got {ping_interval_s}")
        if liveness_timeout_s is not None and liveness_timeout_s <= 0:
            raise ValueError(f"liveness_timeout_s must be > 0, got {liveness_timeout_s}")
        self._url = url
        self._buffer = buffer
        self.source = source or (redact_url(url) if isinstance(url, str) else "")
        self._headers = headers
        self._on_open = on_open
        self._ping_interval_s = ping_interval_s
        self._ping_message = ping_message
        self._is_pong = is_pong
        self._liveness_timeout_s = liveness_timeout_s
        self._backoff = backoff or ExponentialBackoff(0.5, 30.0)
        self._reconnect = reconnect
        self._on_state = on_state
        self._connect_timeout_s = connect_timeout_s
        self._sslopt = dict(sslopt) if sslopt else None
        self._sockopt = tuple(sockopt) if sockopt else ()
        self._healthy_after_s = healthy_after_s
        # The read timeout doubles as the timer of the ping sender and the watchdog.
        checks = [_MAX_TICK_S]
        if ping_interval_s:
            checks.append(ping_interval_s / 4)
        if liveness_timeout_s:
            checks.append(liveness_timeout_s / 4)
        self._tick_s = max(_MIN_TICK_S, min(checks))
        self.name = name or f"ws-receiver[{self.source or id(self)}]"

        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ws: websocket.WebSocket | None = None
        self._connected = False
        self._ever_connected = False
        self._next_ping = 0.0
        self._liveness_anchor = 0.0
        self._drain_after_ns: int | None = None
        self._drain_deadline = float("inf")
        # Per connection: when each unanswered ping was sent, and what the last pong proved.
        self._pings: collections.deque[int] = collections.deque()
        self._sent_after_ns = 0

        self.frames = 0
        """Data frames (text and binary) received since creation."""
        self.bytes = 0
        """Payload bytes of those frames."""
        self.reconnects = 0
        """Successful connections after the first one."""
        self.last_frame_monotonic: float | None = None
        """``time.monotonic()`` of the last frame of any kind from the server."""
        self.connected_since: float | None = None
        """Epoch seconds when the current connection opened; ``None`` while disconnected."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the receiver thread; it connects in the background. Raises if started twice."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"cannot start receiver {self.name}: it was already started")
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop receiving: close the socket (a blocked read returns at once) and join the thread.

        Idempotent and callable from any thread, including from a callback on the receiver
        thread (then it does not join). Sends a close frame when connected. ``timeout_s=0``
        only signals, so that a caller can stop many receivers and then join them all.
        """
        self._stopping.set()
        with self._lock:
            ws = self._ws
            thread = self._thread
        if ws is not None:
            self._abort(ws)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive() and timeout_s > 0:
                logger.warning("receiver %s did not stop within %.1fs", self.name, timeout_s)

    def drain(self, after_ns: int, timeout_s: float) -> None:
        """Finish reading the connection instead of closing it, e.g. before retiring a socket
        that another one replaces from ``after_ns`` on: stop reconnecting, ping at once, and end
        once the pong to a ping sent after ``after_ns`` has been read and everything before it
        put into the buffer (nothing sent before ``after_ns`` is left unread), or when the
        server closes, or after ``timeout_s`` (reason ``drain timed out``), or at :meth:`stop`.
        Needs pings (and ``is_pong`` for application pings); without an open connection there
        is nothing to read and the receiver just stops. Any thread; returns at once.
        """
        self._reconnect = False
        self._drain_deadline = time.monotonic() + timeout_s
        self._drain_after_ns = after_ns
        self._next_ping = 0.0
        if not self._connected:
            self.stop(0)

    @property
    def is_connected(self) -> bool:
        """Whether a connection is open now."""
        return self._connected

    @property
    def is_running(self) -> bool:
        """Whether the receiver thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stats(self) -> dict[str, Any]:
        """A snapshot for status details."""
        return {
            "connected": self._connected,
            "frames": self.frames,
            "bytes": self.bytes,
            "reconnects": self.reconnects,
            "connected_since": self.connected_since,
        }

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                end = self._session()
                retry = not (self._stopping.is_set() or end.stopping or not self._reconnect)
                retry = retry and not self._buffer.closed
                delay: float | None = None
                if retry:
                    if end.healthy:
                        self._backoff.reset()
                    delay = self._backoff.next_delay()
                if end.kind is not None:
                    self._notify(
                        end.kind,
                        url=end.url,
                        reason=end.reason,
                        error=end.error,
                        close_code=end.close_code,
                        retry_in_s=delay,
                        planned=end.stopping,
                        sent_after_ns=end.sent_after_ns,
                    )
                if delay is None:
                    break
                logger.info("receiver %s: reconnecting in %.2fs", self.name, delay)
                if self._stopping.wait(delay) or not self._reconnect:
                    break
        except Exception as exc:  # a bug: report it rather than dying silently
            logger.exception("receiver %s crashed", self.name)
            self._notify(ReceiverEventKind.STOPPED, reason="receiver crashed", error=exc)
            return
        self._notify(ReceiverEventKind.STOPPED, reason="stopped")

    def _session(self) -> _SessionEnd:
        """One connection attempt and, if it opens, its read loop."""
        try:
            url = self._url() if callable(self._url) else self._url
            headers = dict(self._headers()) if self._headers is not None else None
        except Exception as exc:
            logger.warning("receiver %s: not connecting now: provider raised %r", self.name, exc)
            return _SessionEnd(ReceiverEventKind.CONNECT_FAILED, "", "provider raised", exc)
        redacted = redact_url(url)
        ws = websocket.WebSocket(
            sslopt=self._sslopt,
            sockopt=self._sockopt,
            skip_utf8_validation=True,
            enable_multithread=True,
        )
        with self._lock:
            if self._stopping.is_set():
                return _SessionEnd(None, redacted, "stopped", stopping=True)
            self._ws = ws
        # Nothing of this connection can have been sent before we asked for it.
        self._sent_after_ns = time.time_ns()
        self._pings.clear()
        try:
            try:
                ws.connect(url, timeout=self._connect_timeout_s, header=headers)
            except Exception as exc:
                if self._stopping.is_set():
                    return _SessionEnd(None, redacted, "stopped", stopping=True)
                logger.warning("receiver %s: connect to %s failed: %s", self.name, redacted, exc)
                return _SessionEnd(
                    ReceiverEventKind.CONNECT_FAILED, redacted, "connect failed", exc
                )
            if self._stopping.is_set():
                return _SessionEnd(None, redacted, "stopped", stopping=True)
            return self._connected_session(ws, redacted)
        finally:
            with self._lock:
                self._ws = None
            self._connected = False
            self.connected_since = None
            _close(ws)

    def _connected_session(self, ws: websocket.WebSocket, redacted: str) -> _SessionEnd:
        reader = FrameReader.of(ws)
        opened_at = time.monotonic()
        frames_before = self.frames
        self._connected = True
        self.connected_since = time.time()
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self._liveness_anchor = opened_at
        self._next_ping = opened_at + (self._ping_interval_s or 0.0)
        logger.info("receiver %s: connected to %s", self.name, redacted)
        self._notify(ReceiverEventKind.CONNECTED, url=redacted)

        try:
            # on_open still runs under the connect timeout: subscribing may take a while.
            if self._on_open is not None:
                self._on_open(_ConnectionSender(ws))
            ws.settimeout(self._tick_s)
        except Exception as exc:
            outcome = _Disconnect("on_open failed", exc, stopping=self._stopping.is_set())
        else:
            outcome = self._read_loop(ws, reader)

        self._connected = False
        healthy = (
            self.frames > frames_before or time.monotonic() - opened_at >= self._healthy_after_s
        )
        if outcome.stopping:
            logger.info(
                "receiver %s: disconnected from %s (%s)", self.name, redacted, outcome.reason
            )
        else:
            logger.warning(
                "receiver %s: disconnected from %s: %s%s",
                self.name,
                redacted,
                outcome.reason,
                f" ({outcome.error!r})" if outcome.error else "",
            )
        return _SessionEnd(
            ReceiverEventKind.DISCONNECTED,
            redacted,
            outcome.reason,
            outcome.error,
            outcome.close_code,
            healthy=healthy,
            stopping=outcome.stopping,
            sent_after_ns=self._sent_after_ns,
        )

    def _read_loop(self, ws: websocket.WebSocket, reader: FrameReader) -> _Disconnect:
        """The hot loop: read a frame, stamp it, put it. Returns why the connection ended."""
        put = self._buffer.put
        source = self.source
        tick_s = self._tick_s
        monotonic = time.monotonic
        stopping = self._stopping
        recv_data = reader.recv_data
        is_pong = self._is_pong
        next_check = monotonic() + tick_s
        while True:
            try:
                opcode, data = recv_data(True)
            except WebSocketTimeoutException:
                if stopping.is_set():
                    return _Disconnect("stopped", stopping=True)
                now = monotonic()
                next_check = now + tick_s
                outcome = self._periodic_checks(ws, now, blocked=False)
                if outcome is not None:
                    return outcome
                continue
            except (WebSocketException, OSError, struct.error) as exc:
                if stopping.is_set():
                    return _Disconnect("stopped", stopping=True)
                return _Disconnect("connection lost", exc)

            now = monotonic()
            self.last_frame_monotonic = now
            if opcode in _DATA_OPCODES:
                self.frames += 1
                self.bytes += len(data)
                pong = is_pong is not None and len(data) <= _MAX_PONG_BYTES and is_pong(data)
                if pong:
                    self._ponged()
                frame = Frame(data, reader.read_ns, source, self._sent_after_ns)
                if not put(frame, tick_s):
                    outcome = self._put_blocked(ws, frame)
                    if outcome is not None:
                        return outcome
                    now = monotonic()
                if pong and self._drained():
                    return _Disconnect("drained", stopping=True)
            elif opcode == _OPCODE_PONG:
                if self._ping_message is None:
                    self._ponged()
                    if self._drained():
                        return _Disconnect("drained", stopping=True)
            elif opcode == _OPCODE_CLOSE:
                if stopping.is_set():  # the server's answer to the close frame stop() sent
                    return _Disconnect("stopped", stopping=True)
                return self._server_closed(data)
            if now >= next_check:
                next_check = now + tick_s
                outcome = self._periodic_checks(ws, now, blocked=False)
                if outcome is not None:
                    return outcome

    def _ponged(self) -> None:
        """A pong came: what follows it was sent after the ping it answers (the oldest
        unanswered one; if the server skipped a ping, an older one: still a lower bound)."""
        if self._pings:
            sent = self._pings.popleft()
            if sent > self._sent_after_ns:
                self._sent_after_ns = sent

    def _drained(self) -> bool:
        """Whether a drain is complete: everything sent before its time has been put."""
        after = self._drain_after_ns
        return after is not None and self._sent_after_ns >= after

    def _put_blocked(self, ws: websocket.WebSocket, frame: Frame) -> _Disconnect | None:
        """The buffer is full: keep trying, keep pinging, don't let the watchdog fire."""
        buffer = self._buffer
        while True:
            if self._stopping.is_set():
                return _Disconnect("stopped", stopping=True)
            if buffer.closed:
                self._stopping.set()
                return _Disconnect("buffer closed", stopping=True)
            outcome = self._periodic_checks(ws, time.monotonic(), blocked=True)
            if outcome is not None:
                return outcome
            if buffer.put(frame, self._tick_s):
                # The silence while we were not reading was ours, not the server's.
                self._liveness_anchor = time.monotonic()
                return None

    def _periodic_checks(
        self, ws: websocket.WebSocket, now: float, *, blocked: bool
    ) -> _Disconnect | None:
        """Send a due ping; fire the watchdog on a silent socket (not while we are blocked); end
        a drain that took too long."""
        if now >= self._drain_deadline:
            return _Disconnect("drain timed out", stopping=True)
        interval = self._ping_interval_s
        if interval is not None and now >= self._next_ping:
            self._next_ping = now + interval
            sent_ns = time.time_ns()
            try:
                if self._ping_message is not None:
                    ws.send(self._ping_message, _OPCODE_TEXT)
                else:
                    ws.ping()
            except (WebSocketException, OSError) as exc:
                return _Disconnect("ping failed", exc, stopping=self._stopping.is_set())
            if len(self._pings) < _MAX_UNANSWERED_PINGS:
                # (beyond that, later pongs are matched to older pings: still a lower bound)
                self._pings.append(sent_ns)
        timeout = self._liveness_timeout_s
        if timeout is not None and not blocked:
            last = self.last_frame_monotonic or 0.0
            anchor = last if last > self._liveness_anchor else self._liveness_anchor
            silent_s = now - anchor
            if silent_s > timeout:
                reason = f"no frame for {silent_s:.1f}s (liveness timeout {timeout:.1f}s)"
                self._notify(ReceiverEventKind.LIVENESS_TIMEOUT, reason=reason)
                return _Disconnect(reason)
        return None

    def _server_closed(self, payload: bytes) -> _Disconnect:
        code: int | None = None
        reason = ""
        if len(payload) >= 2:
            (code,) = struct.unpack("!H", payload[:2])
            reason = payload[2:].decode("utf-8", "replace")
        text = f"closed by server (code {code}{': ' + reason if reason else ''})"
        self._notify(ReceiverEventKind.SERVER_CLOSED, reason=reason, close_code=code)
        return _Disconnect(text, close_code=code)

    def _abort(self, ws: websocket.WebSocket) -> None:
        """Wake a blocked read from another thread: polite close frame, then shut the socket."""
        sock = ws.sock
        if sock is None:
            return
        if self._connected:
            try:
                ws.send_close()
            except Exception:  # best effort: the socket may be half-dead already
                pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _notify(
        self,
        kind: ReceiverEventKind,
        *,
        url: str = "",
        reason: str = "",
        error: BaseException | None = None,
        close_code: int | None = None,
        retry_in_s: float | None = None,
        planned: bool = False,
        sent_after_ns: int | None = None,
    ) -> None:
        if self._on_state is None:
            return
        event = ReceiverEvent(
            kind, self.source, url, reason, error, close_code, retry_in_s, planned, sent_after_ns
        )
        try:
            self._on_state(event)
        except Exception:
            logger.exception("receiver %s: on_state callback failed for %s", self.name, kind)

    def __repr__(self) -> str:
        state = "connected" if self._connected else "disconnected"
        return f"<WebSocketReceiver {self.name} {state} frames={self.frames}>"


def _close(ws: websocket.WebSocket) -> None:
    """End a connection with the close handshake when it is still open, so that the server
    knows it is closed before anything that follows (a rotation freeing its slot creates the
    next channel at once, and Genesys evicts channels it still believes in use); then drop it."""
    if ws.connected:
        try:
            ws.close(timeout=0.5)  # sends close, waits (bounded) for the server's close frame
        except Exception as exc:  # already gone: nothing to tell the server
            logger.debug("close handshake failed: %s", exc)
    ws.shutdown()
