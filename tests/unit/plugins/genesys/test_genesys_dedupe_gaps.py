from __future__ import annotations

from connector.plugins.genesys.task import DuplicateFilter, compute_start_gap


def test_duplicates_are_dropped_only_around_a_rotation() -> None:
    dedupe = DuplicateFilter(window_ms=1000, max_entries=10)
    assert not dedupe.is_duplicate(b"a", 0)
    assert not dedupe.is_duplicate(b"a", 1)  # no rotation: identical frames both pass
    dedupe.rotation_started()
    assert not dedupe.is_duplicate(b"a", 2)
    assert dedupe.is_duplicate(b"a", 3)
    dedupe.rotation_finished(now_ms=10)
    assert dedupe.is_duplicate("a", 500)  # still inside the window after the rotation
    assert not dedupe.is_duplicate(b"a", 1011)  # window over: memory cleared
    assert not dedupe.is_duplicate(b"a", 1012)
    assert dedupe.dropped == 2


def test_duplicate_memory_is_bounded() -> None:
    dedupe = DuplicateFilter(window_ms=1000, max_entries=2)
    dedupe.rotation_started()
    for payload in (b"1", b"2", b"3"):
        assert not dedupe.is_duplicate(payload, 0)
    assert not dedupe.is_duplicate(b"1", 0)  # forgotten: let through (at-least-once)
    assert dedupe.is_duplicate(b"3", 0)


def test_start_gap_from_committed_offset() -> None:
    assert compute_start_gap({"seen_ms": 100, "correlation_id": "x"}, 500) == (100, "restart")
    assert compute_start_gap(None, 500) == (None, "coverage_start")
    assert compute_start_gap({"event_time_ms": 5}, 500) == (None, "coverage_start")
