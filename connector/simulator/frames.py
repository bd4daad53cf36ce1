"""RFC 6455 framing: unmasked server frames built by hand, masked client frames parsed."""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def header(length: int, opcode: int = OP_TEXT, fin: bool = True) -> bytes:
    """Server-to-client frame header (never masked) for a payload of ``length`` bytes."""
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes((b0, length))
    if length < 65536:
        return struct.pack("!BBH", b0, 126, length)
    return struct.pack("!BBQ", b0, 127, length)


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    return header(len(payload), opcode) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(struct.pack("!H", code) + reason.encode("utf-8")[:120], OP_CLOSE)


@dataclass
class ClientFrame:
    fin: bool
    opcode: int
    payload: bytes


class FrameParser:
    """Incremental parser of client frames (masked, as RFC 6455 requires of clients)."""

    def __init__(self, max_size: int = 1 << 20) -> None:
        self._buf = bytearray()
        self._max = max_size

    def feed(self, data: bytes) -> list[ClientFrame]:
        self._buf += data
        out: list[ClientFrame] = []
        buf = self._buf
        while True:
            if len(buf) < 2:
                break
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    break
                length = struct.unpack_from("!H", buf, 2)[0]
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    break
                length = struct.unpack_from("!Q", buf, 2)[0]
                pos = 10
            if length > self._max:
                raise ValueError(f"client frame of {length} bytes exceeds {self._max}")
            masked = bool(b1 & 0x80)
            mask = b""
            if masked:
                if len(buf) < pos + 4:
                    break
                mask = bytes(buf[pos : pos + 4])
                pos += 4
            if len(buf) < pos + length:
                break
            payload = bytes(buf[pos : pos + length])
            if masked:
                payload = _unmask(payload, mask)
            del buf[: pos + length]
            out.append(ClientFrame(bool(b0 & 0x80), b0 & 0x0F, payload))
        return out


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
