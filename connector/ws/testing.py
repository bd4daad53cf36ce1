"""A minimal in-process WebSocket server (RFC 6455 subset) for tests and benchmarks.

Shipped with the package (like :mod:`connector.testing`) so that receiver tests, WebSocket plugin
tests and benchmarks can script a server without extra dependencies. It is deliberately small:
no TLS, no extensions, no fragmentation on the send side. Frames from the server are unmasked;
frames from the client are unmasked on receipt. Every connection gets its own reader thread that
records the client's data frames and answers pings and close frames.

>>> with LocalWebSocketServer() as server:
...     server.url.startswith("ws://127.0.0.1:")
True
"""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OPCODE_CONT = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA


def encode_frame(payload: bytes | str, opcode: int = OPCODE_TEXT) -> bytes:
    """Encode one unmasked, final frame as a server sends it (``str`` is UTF-8 encoded)."""
    data = payload.encode() if isinstance(payload, str) else payload
    length = len(data)
    head = bytes([0x80 | opcode])
    if length < 126:
        return head + bytes([length]) + data
    if length < 1 << 16:
        return head + bytes([126]) + struct.pack("!H", length) + data
    return head + bytes([127]) + struct.pack("!Q", length) + data


class ServerConnection:
    """The server side of one accepted WebSocket connection.

    Attributes:
        path: the request target, with its query string.
        headers: the request headers, names lower-cased.
        received: the client's data frames in order (text as ``str``, binary as ``bytes``).
        pings: how many WebSocket ping control frames the client sent.
        closed: set once the connection is closed (by either side).
        close_code: the status code of the client's close frame, if it sent one.
    """

    def __init__(self, sock: socket.socket, path: str, headers: dict[str, str]) -> None:
        self.sock = sock
        self.path = path
        self.headers = headers
        self.received: list[str | bytes] = []
        self.pings = 0
        self.closed = threading.Event()
        self.close_code: int | None = None
        self._send_lock = threading.Lock()
        self._changed = threading.Condition()

    @property
    def query(self) -> dict[str, list[str]]:
        """The parsed query string of the request."""
        return parse_qs(urlsplit(self.path).query)

    def send_text(self, payload: str | bytes) -> None:
        """Send a text frame. ``bytes`` go out verbatim, so a test can send invalid UTF-8."""
        self.send_raw(encode_frame(payload, OPCODE_TEXT))

    def send_binary(self, payload: bytes) -> None:
        """Send a binary frame."""
        self.send_raw(encode_frame(payload, OPCODE_BINARY))

    def send_raw(self, data: bytes) -> None:
        """Send pre-encoded bytes (one or many frames); blocks while the client is not reading."""
        with self._send_lock:
            self.sock.sendall(data)

    def send_many(self, payloads: Iterable[str | bytes], *, chunk_bytes: int = 1 << 16) -> None:
        """Send many text frames, coalescing them into large writes (fast, for benchmarks)."""
        chunk: list[bytes] = []
        size = 0
        for payload in payloads:
            frame = encode_frame(payload)
            chunk.append(frame)
            size += len(frame)
            if size >= chunk_bytes:
                self.send_raw(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            self.send_raw(b"".join(chunk))

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and stop reading; the socket closes once the client answers."""
        self.send_raw(encode_frame(struct.pack("!H", code) + reason.encode(), OPCODE_CLOSE))

    def drop(self) -> None:
        """Close the TCP connection abruptly, without a close frame (a network failure)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._mark_closed()

    def wait_for_messages(self, count: int, timeout_s: float = 5.0) -> list[str | bytes]:
        """Wait until the client sent at least ``count`` data frames; return them all."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.received) >= count, timeout_s)
            if len(self.received) < count:
                raise TimeoutError(f"got {len(self.received)} of {count} client messages")
            return list(self.received)

    def _record(self, message: str | bytes) -> None:
        with self._changed:
            self.received.append(message)
            self._changed.notify_all()

    def _mark_closed(self) -> None:
        self.closed.set()
        with self._changed:
            self._changed.notify_all()

    def _read_exact(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client closed the connection")
            data += chunk
        return bytes(data)

    def _serve_reads(self) -> None:
        """Read the client's frames until it closes: record data, answer ping and close."""
        fragments: list[bytes] = []
        fragment_opcode = OPCODE_TEXT
        try:
            while True:
                first, second = self._read_exact(2)
                fin, opcode = first & 0x80, first & 0x0F
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", self._read_exact(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", self._read_exact(8))
                mask = self._read_exact(4) if second & 0x80 else b""
                payload = self._read_exact(length)
                if mask:
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                if opcode == OPCODE_PING:
                    self.pings += 1
                    self.send_raw(encode_frame(payload, OPCODE_PONG))
                elif opcode == OPCODE_CLOSE:
                    if len(payload) >= 2:
                        (self.close_code,) = struct.unpack("!H", payload[:2])
                    try:
                        self.send_raw(encode_frame(payload[:2], OPCODE_CLOSE))
                    except OSError:
                        pass
                    break
                elif opcode in (OPCODE_TEXT, OPCODE_BINARY, OPCODE_CONT):
                    if opcode != OPCODE_CONT:
                        fragment_opcode = opcode
                    fragments.append(payload)
                    if fin:
                        data = b"".join(fragments)
                        fragments = []
                        self._record(
                            data.decode("utf-8", "replace")
                            if fragment_opcode == OPCODE_TEXT
                            else data
                        )
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self._mark_closed()


class LocalWebSocketServer:
    """Accepts WebSocket connections on ``127.0.0.1`` in background threads.

    Args:
        on_connect: called with each new :class:`ServerConnection` on that connection's own
            thread, right after the handshake (send frames from it, or from the test).
        send_buffer_bytes: ``SO_SNDBUF`` for accepted sockets; a small value makes TCP
            backpressure visible quickly.
        reject_status: answer handshakes with this HTTP status instead of upgrading (for
            example 503), to test connection failures. Can be changed while running.
    """

    def __init__(
        self,
        on_connect: Callable[[ServerConnection], None] | None = None,
        *,
        send_buffer_bytes: int | None = None,
        reject_status: int | None = None,
    ) -> None:
        self.on_connect = on_connect
        self.send_buffer_bytes = send_buffer_bytes
        self.reject_status = reject_status
        self.connections: list[ServerConnection] = []
        self.handshakes = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="local-ws-server", daemon=True
        )

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>``; append a path and query as needed."""
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> LocalWebSocketServer:
        self._accept_thread.start()
        return self

    def close(self) -> None:
        """Stop accepting and drop every open connection."""
        self._stopping.set()
        self._accept_thread.join(2)
        self._listener.close()
        for connection in list(self.connections):
            if not connection.closed.is_set():
                connection.drop()

    def __enter__(self) -> LocalWebSocketServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def wait_for_connection(self, index: int = 0, timeout_s: float = 5.0) -> ServerConnection:
        """Wait until connection number ``index`` (0-based) has completed its handshake."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.connections) > index, timeout_s):
                raise TimeoutError(f"only {len(self.connections)} connections, wanted {index + 1}")
            return self.connections[index]

    def wait_for_handshakes(self, count: int, timeout_s: float = 5.0) -> None:
        """Wait until ``count`` handshakes were attempted (including rejected ones)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.handshakes >= count, timeout_s):
                raise TimeoutError(f"only {self.handshakes} handshakes, wanted {count}")

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(
                target=self._handle, args=(sock,), name="local-ws-connection", daemon=True
            ).start()

    def _handle(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.send_buffer_bytes:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
        try:
            path, headers = self._read_request(sock)
        except (OSError, ValueError):
            sock.close()
            return
        with self._changed:
            self.handshakes += 1
            self._changed.notify_all()
        if self.reject_status is not None:
            sock.sendall(
                f"HTTP/1.1 {self.reject_status} Rejected\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            sock.close()
            return
        accept = base64.b64encode(
            hashlib.sha1((headers["sec-websocket-key"] + _GUID).encode()).digest()
        ).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        connection = ServerConnection(sock, path, headers)
        threading.Thread(
            target=connection._serve_reads, name="local-ws-reader", daemon=True
        ).start()
        with self._changed:
            self.connections.append(connection)
            self._changed.notify_all()
        if self.on_connect is not None:
            try:
                self.on_connect(connection)
            except OSError:
                pass  # the client went away while we were sending
            except Exception:
                logger.exception("on_connect failed")

    @staticmethod
    def _read_request(sock: socket.socket) -> tuple[str, dict[str, str]]:
        data = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in data:
            if time.monotonic() > deadline:
                raise ValueError("handshake timed out")
            chunk = sock.recv(4096)
            if not chunk:
                raise ValueError("client closed during handshake")
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        path = request_line.split(" ")[1]
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return path, headers
