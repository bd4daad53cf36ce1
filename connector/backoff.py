"""Exponential backoff with jitter: how long to wait before the next attempt.

Pure and clock-free: it only computes delays, the caller decides how to wait (an interruptible
``Event.wait`` in a receiver, a scheduler in the runtime's task supervisor). Jitter spreads the
reconnects of many sockets that dropped together, so they do not stampede the server.
"""

from __future__ import annotations

import random
from typing import Literal

FULL_JITTER: Literal["full"] = "full"
"""Pick each delay uniformly in ``[0, base]`` (the AWS "full jitter" strategy)."""


class ExponentialBackoff:
    """Delays that grow by ``multiplier`` per attempt, capped at ``max_s``, with jitter.

    Args:
        initial_s: the base delay of the first attempt.
        max_s: the cap of the base delay; a jittered delay never exceeds it either (only an
            explicit ``at_least`` can).
        multiplier: growth factor per attempt (``>= 1``).
        jitter: a fraction ``j`` in ``[0, 1]`` picks each delay uniformly in
            ``[base * (1 - j), base * (1 + j)]``; ``"full"`` picks it in ``[0, base]``.
        rng: the random source; pass a seeded ``random.Random`` for reproducible delays.

    >>> backoff = ExponentialBackoff(1.0, 8.0, jitter=0.0)
    >>> [backoff.next_delay() for _ in range(5)]
    [1.0, 2.0, 4.0, 8.0, 8.0]
    >>> backoff.reset(); backoff.next_delay(at_least=30.0)
    30.0
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        multiplier: float = 2.0,
        jitter: float | Literal["full"] = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if initial_s < 0:
            raise ValueError(f"initial_s must be >= 0, got {initial_s}")
        if max_s < initial_s:
            raise ValueError(f"max_s ({max_s}) must be >= initial_s ({initial_s})")
        if multiplier < 1:
            raise ValueError(f"multiplier must be >= 1 so delays never shrink, got {multiplier}")
        if jitter != FULL_JITTER and not (isinstance(jitter, int | float) and 0 <= jitter <= 1):
            raise ValueError(f"jitter must be a fraction in [0, 1] or 'full', got {jitter!r}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.multiplier = multiplier
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._attempts = 0
        self._base = initial_s

    @property
    def attempts(self) -> int:
        """How many delays were handed out since creation or the last :meth:`reset`."""
        return self._attempts

    def next_delay(self, at_least: float | None = None) -> float:
        """Return the delay before the next attempt and advance the schedule.

        Args:
            at_least: a lower bound the server asked for (an HTTP ``Retry-After`` in seconds,
                a "reconnect after" hint). It wins even above ``max_s``: the server knows best.
        """
        base = self._base
        # Grow the base iteratively instead of initial * multiplier ** n: no overflow after
        # thousands of attempts during a long outage.
        self._base = min(self.max_s, base * self.multiplier)
        self._attempts += 1
        if self.jitter == FULL_JITTER:
            delay = self._rng.uniform(0.0, base)
        elif self.jitter:
            spread = base * float(self.jitter)
            delay = min(self.max_s, self._rng.uniform(base - spread, base + spread))
        else:
            delay = base
        if at_least is not None and at_least > delay:
            return float(at_least)
        return delay

    def reset(self) -> None:
        """Start over from ``initial_s``: call it once an attempt has clearly succeeded."""
        self._attempts = 0
        self._base = self.initial_s

    def __repr__(self) -> str:
        return (
            f"ExponentialBackoff(initial_s={self.initial_s}, max_s={self.max_s}, "
            f"multiplier={self.multiplier}, jitter={self.jitter!r}, attempts={self._attempts})"
        )
