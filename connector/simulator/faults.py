"""Fault injection. Every method runs on the server's event-loop thread (the Python API and the
control API marshal calls there) and returns a small JSON-able result.

``channel_id=None`` means "every channel that has an open socket".
"""

from __future__ import annotations

from typing import Any

from connector.simulator import frames
from connector.simulator.channels import Channel
from connector.simulator.hub import Hub, envelope_parts

BAD_FRAME_KINDS = (
    "malformed",
    "truncated",
    "truncated_frame",
    "non_utf8",
    "oversized",
    "deep_array",
    "lone_surrogate_correlation_id",
    "lone_surrogate_metadata",
    "lone_surrogate_topic",
    "oversized_bad_json",
)
"""The kinds :meth:`Faults.bad_frame` sends (issue 8, defect 9, for the last five)."""

DEEP_ARRAY_LEVELS = 1_100
LONE_SURROGATE = b"\\ud800"
"""A lone high surrogate as a JSON escape (six ASCII bytes): valid JSON syntax, invalid text."""


class FaultError(LookupError):
    pass


class Faults:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def _channels(self, channel_id: str | None, need_socket: bool = True) -> list[Channel]:
        reg = self.hub.registry
        if channel_id is None:
            return [c for c in reg.by_id.values() if c.socket is not None and c.socket.open]
        ch = reg.by_id.get(channel_id)
        if ch is None:
            raise FaultError(f"unknown channel {channel_id}")
        if need_socket and (ch.socket is None or not ch.socket.open):
            raise FaultError(f"channel {channel_id} has no open socket")
        return [ch]

    def _done(self, chans: list[Channel]) -> dict[str, Any]:
        return {"channels": [c.id for c in chans]}

    # -- connection-level ----------------------------------------------------------------
    def drop(self, channel_id: str | None = None) -> dict[str, Any]:
        """Drop the TCP connection without a close frame."""
        chans = self._channels(channel_id)
        for c in chans:
            assert c.socket is not None
            c.socket.abort()
        return self._done(chans)

    def close(
        self, channel_id: str | None = None, code: int = 1001, reason: str = "idle timeout"
    ) -> dict[str, Any]:
        """Close with a close frame (default 1001 "idle timeout", as users reported)."""
        chans = self._channels(channel_id)
        for c in chans:
            assert c.socket is not None
            c.socket.close(code, reason)
        return self._done(chans)

    def socket_closing(
        self, channel_id: str | None = None, lead_s: float | None = None
    ) -> dict[str, Any]:
        """``v2.system.socket_closing`` now, close 1001 after ``lead_s`` (default: scaled 60 s)."""
        chans = self._channels(channel_id)
        for c in chans:
            self.hub.socket_closing(c, lead_s)
        return self._done(chans)

    def stall(
        self, channel_id: str | None = None, duration_s: float | None = None
    ) -> dict[str, Any]:
        """Stop sending anything (events, heartbeats, pongs); ``None`` = until ``unstall``."""
        chans = self._channels(channel_id)
        for c in chans:
            assert c.socket is not None
            c.socket.stall(duration_s)
        return self._done(chans)

    def unstall(self, channel_id: str | None = None) -> dict[str, Any]:
        chans = self._channels(channel_id)
        for c in chans:
            assert c.socket is not None
            c.socket.stalled_until = 0.0
        self.hub.wake()
        return self._done(chans)

    # -- channel and token lifecycle -----------------------------------------------------
    def expire_channel(self, channel_id: str) -> dict[str, Any]:
        chans = self._channels(channel_id, need_socket=False)
        self.hub.registry.remove(chans[0], "expired")
        return self._done(chans)

    def evict_channel(self, channel_id: str) -> dict[str, Any]:
        chans = self._channels(channel_id, need_socket=False)
        self.hub.registry.remove(chans[0], "evicted")
        return self._done(chans)

    def no_longer_subscribed(self, channel_id: str) -> dict[str, Any]:
        chans = self._channels(channel_id, need_socket=False)
        ch = chans[0]
        self.hub.registry.clear(ch)
        self.hub.system_event(
            ch,
            f"v2.system.no_longer_subscribed.{ch.id}",
            "no_longer_subscribed",
            "The channel is no longer subscribed",
            "another_channel_subscribed",
        )
        return self._done(chans)

    def revoke_token(
        self, token: str | None = None, client_id: str | None = None
    ) -> dict[str, Any]:
        """Revoke one token or all of a client's: REST calls get 401; its channels receive
        ``v2.system.token_revoked.<channelId>`` and then the 404 frame, and are removed."""
        auth = self.hub.authority
        values = [
            t.value
            for t in auth.tokens.values()
            if (token is not None and t.value == token)
            or (client_id is not None and t.client.client_id == client_id)
        ]
        if not values:
            raise FaultError("no matching token")
        for v in values:
            auth.revoke(v)
        chans = [c for c in self.hub.registry.by_id.values() if c.token in values]
        for c in chans:
            self.hub.system_event(
                c,
                f"v2.system.token_revoked.{c.id}",
                "token_revoked",
                "The token used by this channel was revoked",
                "user_tokens_revoked",
            )
            self.hub.registry.remove(c, "token revoked")
        return {"tokens": len(values), "channels": [c.id for c in chans]}

    def expire_token(self, token: str) -> dict[str, Any]:
        if not self.hub.authority.expire(token):
            raise FaultError("unknown token")
        return {"tokens": 1}

    # -- bad frames ----------------------------------------------------------------------
    def bad_frame(
        self, kind: str, channel_id: str | None = None, size: int = 1_100_000
    ) -> dict[str, Any]:
        """``malformed`` JSON, ``truncated`` JSON in a complete frame, ``truncated_frame``
        (header promises more bytes, then the TCP connection drops), ``non_utf8`` bytes in a
        text frame, or ``oversized``: a valid, ledgered conversation event of ``size`` bytes.

        Hostile frames, none ledgered (they are not events a connector must deliver):
        ``deep_array`` (a JSON array nested 1,100 deep), ``lone_surrogate_correlation_id``,
        ``lone_surrogate_metadata`` (in another metadata field), ``lone_surrogate_topic`` (in
        ``topicName``): an event of a subscribed topic with ``"\\ud800"`` in that string; and
        ``oversized_bad_json``: ``size`` bytes of unterminated JSON."""
        if kind not in BAD_FRAME_KINDS:
            raise FaultError(f"unknown bad frame kind {kind!r}")
        chans = self._channels(channel_id)
        for c in chans:
            sock = c.socket
            assert sock is not None
            sock.special_frames[kind] = sock.special_frames.get(kind, 0) + 1
            sample = self._sample_envelope(c)
            if kind == "malformed":
                sock.send_raw(frames.frame(b'{"topicName":"channel.metadata",eventBody:{oops'))
            elif kind == "truncated":
                sock.send_raw(frames.frame(sample[: len(sample) // 2]))
            elif kind == "truncated_frame":
                sock.send_raw(frames.header(len(sample)) + sample[: len(sample) // 2])
                sock.abort()
            elif kind == "non_utf8":
                sock.send_raw(frames.frame(b'{"topicName":"\xff\xfe\xc3\x28","eventBody":{}}'))
            elif kind == "oversized":
                self._oversized(c, size)
            elif kind == "deep_array":
                levels = DEEP_ARRAY_LEVELS
                sock.send_raw(frames.frame(b"[" * levels + b"]" * levels))
            elif kind.startswith("lone_surrogate_"):
                sock.send_raw(frames.frame(self._lone_surrogate(c, kind)))
            else:  # oversized_bad_json
                sock.send_raw(frames.frame(b'{"topicName":"' + b"x" * max(0, size)))
        return self._done(chans)

    def raw_frame(
        self, payload: bytes | str, channel_id: str | None = None, binary: bool = False
    ) -> dict[str, Any]:
        """Send ``payload`` as one text (or ``binary``) frame, exactly as given, not ledgered."""
        data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
        chans = self._channels(channel_id)
        for c in chans:
            assert c.socket is not None
            opcode = frames.OP_BINARY if binary else frames.OP_TEXT
            c.socket.send_raw(frames.frame(data, opcode))
        return self._done(chans)

    def _lone_surrogate(self, ch: Channel, kind: str) -> bytes:
        """A conversation event of one of ``ch``'s topics with ``\\ud800`` where ``kind`` says."""
        topic = self._event_topic(ch).encode()
        cid = self.hub.cids.of(0).encode()
        metadata = b'{"CorrelationId":"' + cid + b'"}'
        if kind == "lone_surrogate_correlation_id":
            metadata = b'{"CorrelationId":"' + LONE_SURROGATE + b'"}'
        elif kind == "lone_surrogate_metadata":
            metadata = b'{"CorrelationId":"' + cid + b'","type":"member' + LONE_SURROGATE + b'"}'
        elif kind == "lone_surrogate_topic":
            topic += LONE_SURROGATE
        else:
            raise FaultError(f"unknown bad frame kind {kind!r}")
        body = b'{"id":"00000000-0000-4000-8000-00000000fffd","participants":[]}'
        return (
            b'{"topicName":"'
            + topic
            + b'","version":"2","eventBody":'
            + body
            + b',"metadata":'
            + metadata
            + b"}"
        )

    @staticmethod
    def _event_topic(ch: Channel) -> str:
        conv_topics = sorted(t for t in ch.leaves if t.endswith(".conversations"))
        return conv_topics[0] if conv_topics else (sorted(ch.leaves) or ["channel.metadata"])[0]

    def _sample_envelope(self, ch: Channel) -> bytes:
        head, tail = envelope_parts("channel.metadata", b'{"message":"WebSocket Heartbeat"}')
        return head + self.hub.cids.of(0).encode() + tail

    def _oversized(self, ch: Channel, size: int) -> None:
        topic = self._event_topic(ch)
        body = {
            "id": "00000000-0000-4000-8000-00000000ffff",
            "participants": [
                {
                    "id": "00000000-0000-4000-8000-00000000fffe",
                    "purpose": "customer",
                    "attributes": {"blob": "x" * max(0, size)},
                }
            ],
        }
        self.hub.inject(ch, topic, body)

    # -- event stream --------------------------------------------------------------------
    def duplicate(self, channel_id: str | None = None, count: int = 1) -> dict[str, Any]:
        """Send each of the next ``count`` events twice (same event id and CorrelationId)."""
        chans = self._channels(channel_id)
        for c in chans:
            assert c.socket is not None
            c.socket.duplicate_next += count
        return self._done(chans)

    def reorder(self, channel_id: str | None = None, count: int = 1) -> dict[str, Any]:
        """Deliver each of the next ``count`` events after the event that follows it."""
        chans = self._channels(channel_id)
        for c in chans:
            assert c.socket is not None
            c.socket.reorder_next += count
        return self._done(chans)

    def http_errors(self, status: int = 429, count: int = 1) -> dict[str, Any]:
        """The next ``count`` /api/v2 requests return ``status`` (429 with the documented body
        and Retry-After, or a 5xx ErrorBody)."""
        if status != 429 and not 500 <= status <= 599:
            raise FaultError("status must be 429 or 5xx")
        self.hub.http_bursts.extend([status] * count)
        return {"queued": len(self.hub.http_bursts)}
