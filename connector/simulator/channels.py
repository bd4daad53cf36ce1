"""Notification channels and their subscriptions: limits, expiry and eviction (spec 2, 3).

Owned by the server's event-loop thread. The registry only keeps state; sockets are closed
by the hub through the ``on_removed`` callback.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connector.simulator import topics
from connector.simulator.bodies import iso
from connector.simulator.config import SimulatorConfig

if TYPE_CHECKING:
    from connector.simulator.auth import Token
    from connector.simulator.server import WsConnection


@dataclass(eq=False)
class Channel:
    id: str
    client_id: str
    token: str
    created: float  # monotonic
    expires: float  # monotonic
    expires_wall: float  # epoch s, for the ``expires`` field
    last_used: float
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> ChannelTopic
    leaves: set[str] = field(default_factory=set)
    socket: WsConnection | None = None

    def to_json(self, ws_base: str) -> dict[str, Any]:
        return {
            "connectUri": f"{ws_base}/channels/{self.id}",
            "id": self.id,
            "expires": iso(self.expires_wall),
        }


class SubscriptionError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


RemovedCallback = Callable[[Channel, str], None]


class ChannelRegistry:
    """All channels; per-client ordering for eviction; topic -> channels index for routing."""

    def __init__(self, config: SimulatorConfig, on_removed: RemovedCallback) -> None:
        self.config = config
        self.on_removed = on_removed
        self.by_id: dict[str, Channel] = {}
        self.topic_index: dict[str, set[Channel]] = {}
        self._rng = random.Random(config.seed ^ 0x5EED)
        self._n = 0
        self.ws_base = ""

    def _new_id(self) -> str:
        self._n += 1
        alnum = string.ascii_lowercase + string.digits
        return f"streaming-{self._n % 10}-" + "".join(self._rng.choice(alnum) for _ in range(26))

    def create(self, token: Token) -> Channel:
        now = time.monotonic()
        client_id = token.client.client_id
        mine = [c for c in self.by_id.values() if c.client_id == client_id]
        while len(mine) >= self.config.max_channels_per_client:
            # Oldest last-used first, channels without a socket before connected ones.
            victim = min(mine, key=lambda c: (c.socket is not None, c.last_used))
            mine.remove(victim)
            self.remove(victim, "evicted")
        ttl = self.config.channel_ttl
        ch = Channel(self._new_id(), client_id, token.value, now, now + ttl, time.time() + ttl, now)
        self.by_id[ch.id] = ch
        return ch

    def get(self, channel_id: str) -> Channel | None:
        ch = self.by_id.get(channel_id)
        if ch is not None and time.monotonic() >= ch.expires:
            self.remove(ch, "expired")
            return None
        return ch

    def list_for(self, token: Token, include: str) -> list[dict[str, Any]]:
        out = []
        for ch in self.by_id.values():
            if ch.client_id != token.client.client_id:
                continue
            if ch.token == token.value:
                out.append(ch)
            elif include == "oauthclient":
                out.append(None)  # other tokens' channels: shown to exist, ids hidden (spec 2.2)
        return [
            c.to_json(self.ws_base) if c is not None else {"connectUri": None, "id": None}
            for c in out
        ]

    def remove(self, ch: Channel, reason: str) -> None:
        if self.by_id.pop(ch.id, None) is None:
            return
        self._unindex(ch)
        self.on_removed(ch, reason)

    def sweep(self, now: float) -> None:
        for ch in [c for c in self.by_id.values() if now >= c.expires]:
            self.remove(ch, "expired")

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(
        self,
        ch: Channel,
        granted: tuple[str, ...],
        requested: list[str],
        replace: bool,
        ignore_errors: bool,
    ) -> list[dict[str, Any]]:
        """POST (add) or PUT (replace) semantics; returns the ChannelTopic list of the channel.

        Raises SubscriptionError (400 bad topic or >limit, 403 missing permissions) unless
        ``ignore_errors`` turns per-topic failures into ``Rejected`` entries.
        """
        entries: dict[str, dict[str, Any]] = {}
        rejected: list[dict[str, Any]] = []
        for topic_id in dict.fromkeys(requested):
            entry = self._check(topic_id, granted)
            if entry["state"] == "Permitted":
                entries[topic_id] = entry
                continue
            if not ignore_errors:
                if entry.get("missingPermissions"):
                    raise SubscriptionError(
                        403,
                        "missing.permissions",
                        f"Missing permissions {entry['missingPermissions']} for topic {topic_id}",
                    )
                raise SubscriptionError(400, "bad.request", f"Invalid topic {topic_id}")
            rejected.append(entry)
        merged = dict(entries) if replace else {**ch.subscriptions, **entries}
        leaves = {leaf for t in merged for leaf in topics.expand_combined(t)}
        if len(leaves) > self.config.max_topics_per_channel:
            raise SubscriptionError(
                400,
                "bad.request",
                f"Channel {ch.id} would have {len(leaves)} topics; the limit is "
                f"{self.config.max_topics_per_channel} per channel",
            )
        self._unindex(ch)
        ch.subscriptions, ch.leaves = merged, leaves
        self._index(ch)
        now = time.monotonic()
        ch.expires, ch.expires_wall = (
            now + self.config.channel_ttl,
            time.time() + self.config.channel_ttl,
        )
        ch.last_used = now
        return list(merged.values()) + rejected

    def clear(self, ch: Channel) -> None:
        self._unindex(ch)
        ch.subscriptions, ch.leaves = {}, set()

    def _check(self, topic_id: str, granted: tuple[str, ...]) -> dict[str, Any]:
        missing: list[str] = []
        for leaf in topics.expand_combined(topic_id):
            found = topics.family_of(leaf)
            if found is None:
                return {
                    "id": topic_id,
                    "state": "Rejected",
                    "rejectionReason": f"Topic {leaf} is not a valid notification topic",
                }
            missing += [
                m for m in topics.missing_permissions(granted, found[0]) if m not in missing
            ]
        if missing:
            return {
                "id": topic_id,
                "state": "Rejected",
                "rejectionReason": "Missing required permissions",
                "missingPermissions": missing,
            }
        return {"id": topic_id, "state": "Permitted"}

    def _index(self, ch: Channel) -> None:
        for leaf in ch.leaves:
            self.topic_index.setdefault(leaf, set()).add(ch)

    def _unindex(self, ch: Channel) -> None:
        for leaf in ch.leaves:
            chans = self.topic_index.get(leaf)
            if chans is not None:
                chans.discard(ch)
                if not chans:
                    del self.topic_index[leaf]
