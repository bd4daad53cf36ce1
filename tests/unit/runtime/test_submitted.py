"""SubmittedRecords: only the acked prefix of each source partition is committable."""

from __future__ import annotations

import random
import threading
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError

from connector.api import DeliveryError
from connector.runtime.submitted import Submitted, SubmittedRecords

P0 = {"stream": "s0"}
P1 = {"stream": "s1"}


def key(partition: dict[str, Any]) -> bytes:
    return orjson.dumps(partition)


def submit(tracker: SubmittedRecords, partition: dict[str, Any], seqs: range) -> list[Submitted]:
    return [tracker.submit(key(partition), partition, {"seq": n}) for n in seqs]


def deliver(handle: Submitted, err: Any = None) -> None:
    """What the producer's poller thread does for a delivery report."""
    handle.on_delivery(err, None)


def test_nothing_is_committable_before_any_ack() -> None:
    tracker = SubmittedRecords()
    submit(tracker, P0, range(3))
    assert tracker.committable() == {}
    assert tracker.in_flight == 3


def test_committable_is_the_last_offset_of_the_acked_prefix() -> None:
    tracker = SubmittedRecords()
    handles = submit(tracker, P0, range(5))
    for handle in handles[:3]:
        deliver(handle)
    assert tracker.committable() == {key(P0): (P0, {"seq": 2})}


def test_later_acks_do_not_skip_an_unacked_head() -> None:
    tracker = SubmittedRecords()
    handles = submit(tracker, P0, range(4))
    for handle in handles[1:]:
        deliver(handle)
    assert tracker.committable() == {}
    assert tracker.pending_counts() == {key(P0): 4}

    deliver(handles[0])
    assert tracker.committable() == {key(P0): (P0, {"seq": 3})}
    assert tracker.pending_counts() == {key(P0): 0}


def test_a_gap_in_the_middle_stops_the_prefix_there() -> None:
    tracker = SubmittedRecords()
    handles = submit(tracker, P0, range(6))
    for n in (0, 1, 3, 4, 5):
        deliver(handles[n])
    assert tracker.committable() == {key(P0): (P0, {"seq": 1})}
    assert tracker.committable() == {}  # popped: nothing new until seq 2 is acked
    deliver(handles[2])
    assert tracker.committable() == {key(P0): (P0, {"seq": 5})}


def test_an_unacked_record_blocks_only_its_own_partition() -> None:
    tracker = SubmittedRecords()
    first = submit(tracker, P0, range(3))
    second = submit(tracker, P1, range(3))
    for handle in first[1:] + second:
        deliver(handle)
    assert tracker.committable() == {key(P1): (P1, {"seq": 2})}


def test_random_ack_order_never_commits_ahead_of_an_unacked_record() -> None:
    rng = random.Random(42)
    tracker = SubmittedRecords()
    handles = {p["stream"]: submit(tracker, p, range(200)) for p in (P0, P1)}
    order = [(stream, n) for stream in handles for n in range(200)]
    rng.shuffle(order)
    acked: dict[str, set[int]] = {"s0": set(), "s1": set()}
    committed: dict[str, int] = {}
    for stream, n in order:
        deliver(handles[stream][n])
        acked[stream].add(n)
        for _, (partition, offset) in tracker.committable().items():
            seq = offset["seq"]
            stream_acked = acked[partition["stream"]]
            assert all(m in stream_acked for m in range(seq + 1))  # a true prefix
            assert seq > committed.get(partition["stream"], -1)  # monotonic
            committed[partition["stream"]] = seq
    assert committed == {"s0": 199, "s1": 199}
    assert tracker.in_flight == 0
    assert tracker.acked_total == 400


def test_filtered_records_advance_the_offset_once_the_prefix_is_acked() -> None:
    tracker = SubmittedRecords()
    produced = tracker.submit(key(P0), P0, {"seq": 0})
    tracker.submit_acked(key(P0), P0, {"seq": 1})  # dropped by a transform
    tracker.submit_acked(key(P0), P0, {"seq": 2})
    assert tracker.committable() == {}  # seq 0 is still in flight
    deliver(produced)
    assert tracker.committable() == {key(P0): (P0, {"seq": 2})}


def test_a_partition_of_only_filtered_records_still_commits() -> None:
    tracker = SubmittedRecords()
    for n in range(3):
        tracker.submit_acked(key(P0), P0, {"seq": n})
    assert tracker.committable() == {key(P0): (P0, {"seq": 2})}
    assert tracker.in_flight == 0


def test_records_without_a_source_partition_are_tracked_but_never_committed() -> None:
    tracker = SubmittedRecords()
    handle = tracker.submit(None, None, {"seq": 9})
    other = tracker.submit(key(P0), P0, {"seq": 0})
    assert tracker.in_flight == 2
    deliver(handle)
    deliver(other)
    assert tracker.committable() == {key(P0): (P0, {"seq": 0})}
    assert tracker.in_flight == 0


def test_a_delivery_failure_is_latched_and_blocks_its_partition() -> None:
    tracker = SubmittedRecords()
    handles = submit(tracker, P0, range(3))
    deliver(handles[0])
    deliver(handles[1], KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    deliver(handles[2])
    other_partition = tracker.submit(key(P1), P1, {"seq": 0})
    deliver(other_partition, KafkaError(KafkaError._MSG_TIMED_OUT))

    for _ in range(2):  # raised on every check, and always the first failure
        with pytest.raises(DeliveryError, match="Kafka did not accept a record") as info:
            tracker.raise_if_failed()
        assert info.value.code == "MSG_SIZE_TOO_LARGE"
    # the failed record is never acked: nothing after it in its partition is committable
    assert tracker.committable() == {key(P0): (P0, {"seq": 0})}
    assert tracker.committable() == {}
    assert tracker.in_flight == 2


def test_no_failure_means_raise_if_failed_is_silent() -> None:
    tracker = SubmittedRecords()
    deliver(tracker.submit(key(P0), P0, {"seq": 0}))
    tracker.raise_if_failed()


def test_wait_all_acked_returns_when_the_last_ack_arrives_from_another_thread() -> None:
    tracker = SubmittedRecords()
    handles = submit(tracker, P0, range(100))
    assert tracker.wait_all_acked(0.01) is False

    def ack_all() -> None:
        for handle in reversed(handles):
            deliver(handle)

    thread = threading.Thread(target=ack_all)
    thread.start()
    assert tracker.wait_all_acked(10.0) is True
    thread.join()
    assert tracker.committable() == {key(P0): (P0, {"seq": 99})}
