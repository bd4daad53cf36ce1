"""The asyncio server: one port serving HTTP (OAuth, REST, control) and the channel WebSockets.

One ``Connection`` per TCP connection parses HTTP/1.1 requests (keep-alive, Content-Length
bodies) and, on ``GET /channels/{id}`` with ``Upgrade: websocket``, becomes a WebSocket whose
server side is a ``WsConnection``. Everything runs on one event-loop thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from connector.simulator import frames
from connector.simulator.http import Request, Response, error_body
from connector.simulator.hub import Hub, not_found_frame
from connector.simulator.sockets import WsConnection

log = logging.getLogger(__name__)

Handler = Callable[[Request], Response]
MAX_HEADER = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
WRITE_HIGH_WATER = 4 * 1024 * 1024


class Connection(asyncio.Protocol):
    def __init__(self, hub: Hub, handler: Handler) -> None:
        self.hub = hub
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.ws: WsConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_HIGH_WATER // 4)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ws is not None:
            self.ws._closed()

    def pause_writing(self) -> None:
        if self.ws is not None:
            self.ws.paused = True

    def resume_writing(self) -> None:
        if self.ws is not None:
            self.ws.paused = False
            self.hub.wake()

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self.ws.data_received(data)
            return
        self.buf += data
        while self.ws is None and self.transport is not None and not self.transport.is_closing():
            req = self._parse()
            if req is None:
                return
            self._dispatch(req)
        if self.ws is not None and self.buf:
            rest, self.buf = bytes(self.buf), bytearray()
            self.ws.data_received(rest)

    def _parse(self) -> Request | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEADER:
                self._fail(400, "request header too large")
            return None
        head = bytes(self.buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            self._fail(400, "malformed request line")
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY:
            self._fail(400, "request body too large")
            return None
        if len(self.buf) < end + 4 + length:
            return None
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        return Request(parts[0].upper(), parts[1], headers, body)

    def _fail(self, status: int, message: str) -> None:
        assert self.transport is not None
        resp = error_body(status, "bad.request", message)
        resp.headers["Connection"] = "close"
        self.transport.write(resp.encode())
        self.transport.close()

    def _dispatch(self, req: Request) -> None:
        assert self.transport is not None
        if (
            req.path.startswith("/channels/")
            and "websocket" in req.headers.get("upgrade", "").lower()
        ):
            self._upgrade(req)
            return
        try:
            resp = self.handler(req)
        except Exception:
            log.exception("simulator handler failed for %s %s", req.method, req.target)
            resp = error_body(500, "internal.server.error", "simulator error")
        if req.headers.get("connection", "").lower() == "close":
            resp.headers["Connection"] = "close"
        self.transport.write(resp.encode(head_only=req.method == "HEAD"))
        if resp.headers.get("Connection") == "close":
            self.transport.close()

    def _upgrade(self, req: Request) -> None:
        assert self.transport is not None
        key = req.headers.get("sec-websocket-key")
        if not key:
            self._fail(400, "missing Sec-WebSocket-Key")
            return
        self.transport.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {frames.accept_key(key)}\r\n\r\n"
            ).encode("latin-1")
        )
        channel_id = req.path[len("/channels/") :].strip("/")
        ch = self.hub.registry.get(channel_id)
        if ch is None:
            # Dead or unknown channel: the observed failure frame, then close (spec 4.7).
            self.transport.write(not_found_frame(channel_id))
            self.transport.write(frames.close_frame(1000, "channel not found"))
            self.transport.close()
            return
        self.ws = WsConnection(self.hub, self.transport, ch)
        self.hub.attach(self.ws)
