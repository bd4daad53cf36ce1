"""Channel planning: topics -> channels (<= 1,000 topics) -> tasks, within the 20-channel budget.

Limits (NOTIFICATIONS_API.md §0, §8.3): a channel carries at most 1,000 topics, and an OAuth
client may hold 20 channels; the 21st silently evicts the oldest one (channels without an active
connection first). So the planner:

- packs topics into ``ceil(N / channel.max.topics)`` channels, evenly and in declaration order
  (stable across restarts), and spreads the channels round-robin over at most ``tasks.max``
  tasks (one channel is never split: one socket per channel);
- keeps ``channels.rotation.headroom`` channels free for make-before-break rotations (a rotation
  briefly holds the old and the new channel): a plan may use ``channels.max - headroom``;
- counts channels across **every connector of the process** with the same OAuth client
  (:data:`CHANNEL_BUDGET`, keyed by login URL and client id): two connectors sharing a client must
  not together exceed the budget, or their own channel creations would evict each other.

The registry is per process. Several worker processes sharing one OAuth client cannot see each
other: give each its own ``channels.max`` share.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass


class PlanError(ValueError):
    """The topics do not fit; the message says how many channels they need."""

    def __init__(self, message: str, *, channels_needed: int) -> None:
        self.channels_needed = channels_needed
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ChannelPlan:
    """One channel: its index in the connector's plan and its topics."""

    index: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Channels and their assignment: ``tasks[i]`` lists the channel indexes of task ``i``."""

    channels: tuple[ChannelPlan, ...]
    tasks: tuple[tuple[int, ...], ...]

    def task_channels(self, task_index: int) -> list[ChannelPlan]:
        """The channels of one task."""
        return [self.channels[i] for i in self.tasks[task_index]]


def channels_needed(topic_count: int, max_topics: int) -> int:
    """How many channels ``topic_count`` topics need (at least one)."""
    return max(1, math.ceil(topic_count / max_topics))


def make_plan(
    topics: Sequence[str], *, max_topics: int, usable_channels: int, max_tasks: int
) -> Plan:
    """Pack ``topics`` into channels and channels into tasks; raise :class:`PlanError` if the
    plan needs more than ``usable_channels``."""
    needed = channels_needed(len(topics), max_topics)
    if needed > usable_channels:
        raise PlanError(
            f"{len(topics)} topics need {needed} channels of at most {max_topics} topics, but "
            f"only {usable_channels} channels are usable per OAuth client (channels.max minus "
            "channels.rotation.headroom; Genesys allows 20 per OAuth client and evicts the oldest "
            "beyond that). Subscribe fewer topics or split them over connectors with different "
            "OAuth clients.",
            channels_needed=needed,
        )
    # Even sizes (differ by at most one) leave room in every channel, in declaration order.
    base, extra = divmod(len(topics), needed)
    channels: list[ChannelPlan] = []
    start = 0
    for index in range(needed):
        size = base + (1 if index < extra else 0)
        channels.append(ChannelPlan(index, tuple(topics[start : start + size])))
        start += size
    task_count = max(1, min(max_tasks, needed))
    tasks = tuple(tuple(range(t, needed, task_count)) for t in range(task_count))
    return Plan(tuple(channels), tasks)


ClientKey = tuple[str, str]
"""(login URL, OAuth client id)."""


class ChannelBudget:
    """Process-wide accounting of channels per OAuth client, and the rotation slots.

    Thread-safe. ``reserve`` is called when a connector plans its channels, ``release`` when it
    stops. Rotations take one of ``headroom`` slots of their client while they hold two channels.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reserved: dict[ClientKey, dict[str, int]] = {}
        self._slots: dict[ClientKey, threading.BoundedSemaphore] = {}

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._reserved.clear()
            self._slots.clear()

    def reserve(self, client: ClientKey, owner: str, channels: int, usable: int) -> None:
        """Reserve ``channels`` for ``owner`` (a connector name), replacing its previous
        reservation; raise :class:`PlanError` if the client's usable budget is exceeded."""
        with self._lock:
            owners = self._reserved.setdefault(client, {})
            others = {name: n for name, n in owners.items() if name != owner}
            total = sum(others.values()) + channels
            if total > usable:
                held = ", ".join(f"{name} ({n})" for name, n in sorted(others.items()))
                raise PlanError(
                    f"connector {owner} needs {channels} channels for OAuth client {client[1]} "
                    f"at {client[0]}, but {held} already hold {sum(others.values())} of the "
                    f"{usable} usable channels of that client in this process: "
                    f"{total} channels are needed in total. Use another OAuth client for one of "
                    "the connectors, or fewer topics.",
                    channels_needed=total,
                )
            owners[owner] = channels

    def release(self, client: ClientKey, owner: str) -> None:
        """Drop ``owner``'s reservation (idempotent)."""
        with self._lock:
            owners = self._reserved.get(client)
            if owners is not None:
                owners.pop(owner, None)

    def reserved(self, client: ClientKey) -> int:
        """Channels reserved for ``client`` by every connector of the process."""
        with self._lock:
            return sum(self._reserved.get(client, {}).values())

    def rotation_slots(self, client: ClientKey, headroom: int) -> threading.BoundedSemaphore | None:
        """The semaphore of ``client``'s rotation headroom (``None`` when headroom is 0)."""
        if headroom <= 0:
            return None
        with self._lock:
            slots = self._slots.get(client)
            if slots is None:
                slots = threading.BoundedSemaphore(headroom)
                self._slots[client] = slots
            return slots


CHANNEL_BUDGET = ChannelBudget()
"""The process-wide budget: Genesys counts channels per OAuth client, whatever the connector."""
