from __future__ import annotations

import itertools
import random

import pytest

from connector.backoff import FULL_JITTER, ExponentialBackoff


def test_without_jitter_delays_double_up_to_the_cap() -> None:
    backoff = ExponentialBackoff(0.5, 4.0, jitter=0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.attempts == 6


def test_custom_multiplier() -> None:
    backoff = ExponentialBackoff(1.0, 100.0, multiplier=3.0, jitter=0)
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 3.0, 9.0, 27.0]


def test_proportional_jitter_stays_in_range_and_under_the_cap() -> None:
    backoff = ExponentialBackoff(1.0, 8.0, jitter=0.2, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(50)]
    bases = [1.0, 2.0, 4.0] + [8.0] * 47
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.8 <= delay <= min(8.0, base * 1.2)
    assert len(set(delays)) > 10  # actually jittered


def test_delays_grow_on_average() -> None:
    backoff = ExponentialBackoff(0.1, 1000.0, jitter=0.2, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(later > earlier for earlier, later in itertools.pairwise(delays))


def test_full_jitter_is_between_zero_and_the_base() -> None:
    backoff = ExponentialBackoff(1.0, 8.0, jitter=FULL_JITTER, rng=random.Random(3))
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert max(delays[3:]) > 4.0  # the cap is reached, not just the start


def test_seeded_rng_gives_reproducible_delays() -> None:
    first = ExponentialBackoff(1.0, 30.0, rng=random.Random(42))
    second = ExponentialBackoff(1.0, 30.0, rng=random.Random(42))
    assert [first.next_delay() for _ in range(8)] == [second.next_delay() for _ in range(8)]


def test_reset_starts_over() -> None:
    backoff = ExponentialBackoff(1.0, 60.0, jitter=0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() == 1.0


def test_at_least_honours_a_server_retry_after_even_above_the_cap() -> None:
    backoff = ExponentialBackoff(1.0, 10.0, jitter=0)
    assert backoff.next_delay(at_least=30.0) == 30.0
    assert backoff.next_delay(at_least=0.5) == 2.0  # a smaller hint does not shorten the delay
    assert backoff.attempts == 2


def test_many_attempts_do_not_overflow() -> None:
    backoff = ExponentialBackoff(1.0, 5.0, multiplier=10.0, jitter=0)
    for _ in range(5000):
        delay = backoff.next_delay()
    assert delay == 5.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_s": -1, "max_s": 1}, "initial_s"),
        ({"initial_s": 2, "max_s": 1}, "max_s"),
        ({"initial_s": 1, "max_s": 2, "multiplier": 0.5}, "multiplier"),
        ({"initial_s": 1, "max_s": 2, "jitter": 1.5}, "jitter"),
        ({"initial_s": 1, "max_s": 2, "jitter": "half"}, "jitter"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExponentialBackoff(**kwargs)
