"""Each fault shows its documented (or chosen) behaviour on the wire and in the ledger."""

from __future__ import annotations

import itertools
import json
import time

import pytest
import websocket
from sim_helpers import Api, connect, is_heartbeat, recv_until, wait_for

from connector.simulator import GenesysSimulator


def _events(ws: websocket.WebSocket, n: int, timeout: float = 5.0) -> list[dict]:
    out: list[dict] = []
    while len(out) < n:
        out.append(recv_until(ws, lambda m: m.get("topicName", "").startswith("v2."), timeout)[-1])
    return out


@pytest.fixture
def flowing(sim: GenesysSimulator, api: Api):
    """A connected channel receiving ~2,000 flood events/s on two queue topics."""
    ch = api.channel()
    q = sim.queue_ids
    api.subscribe(
        ch["id"],
        [f"v2.routing.queues.{q[0]}.conversations", f"v2.users.{sim.user_ids[0]}.presence"],
    )
    ws = connect(ch["connectUri"])
    assert sim.wait_connected(ch["id"])
    sim.set_rate(rate=2000, mode="flood")
    yield ch, ws
    ws.close()


def test_drop_closes_without_close_frame_and_channel_survives(sim, api, flowing) -> None:
    ch, ws = flowing
    _events(ws, 3)
    sim.faults.drop(ch["id"])
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        for _ in range(100_000):
            opcode, _ = ws.recv_data(control_frame=True)
            assert opcode != 8, "a close frame was sent"
    assert api.req("HEAD", f"/api/v2/notifications/channels/{ch['id']}").status_code == 200
    again = connect(ch["connectUri"])
    try:
        assert len(_events(again, 3)) == 3  # subscriptions belong to the channel
    finally:
        again.close()


def test_socket_closing_then_close_after_lead(sim, flowing) -> None:
    ch, ws = flowing
    sim.faults.socket_closing(ch["id"], lead_s=0.4)
    warned = recv_until(ws, lambda m: m.get("topicName") == "v2.system.socket_closing")[-1]
    t0 = time.monotonic()
    assert warned["eventBody"]["channelId"] == ch["id"]
    assert "CorrelationId" in warned["metadata"]
    while True:  # events keep flowing until the close
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == 8:
            break
    assert time.monotonic() - t0 >= 0.3
    assert int.from_bytes(data[:2], "big") == 1001


def test_default_closing_lead_is_scaled(make_sim) -> None:
    sim = make_sim(socket_closing_lead_s=60, time_scale=0.005)  # 60 s -> 0.3 s
    api = Api(sim)
    ch = api.channel()
    ws = connect(ch["connectUri"])
    assert sim.wait_connected(ch["id"])
    sim.faults.socket_closing(ch["id"])
    recv_until(ws, lambda m: m.get("topicName") == "v2.system.socket_closing")
    t0 = time.monotonic()
    while ws.recv_data(control_frame=True)[0] != 8:
        pass
    assert 0.2 <= time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("fault", ["expire_channel", "evict_channel"])
def test_expire_or_evict_sends_404_frame(sim, api, flowing, fault: str) -> None:
    ch, ws = flowing
    getattr(sim.faults, fault)(ch["id"])
    msgs = recv_until(ws, lambda m: m.get("result") == "404")
    assert ch["id"] in msgs[-1]["message"]
    assert api.req("HEAD", f"/api/v2/notifications/channels/{ch['id']}").status_code == 404


def test_revoke_token(sim, api, flowing) -> None:
    _ch, ws = flowing
    sim.faults.revoke_token(token=api.token)
    msgs = recv_until(ws, lambda m: m.get("result") == "404")
    revoked = [m for m in msgs if m.get("topicName", "").startswith("v2.system.token_revoked")]
    assert revoked and revoked[0]["eventBody"]["systemTopicType"] == "token_revoked"
    assert api.req("GET", "/api/v2/notifications/channels").status_code == 401


def test_bad_frames(sim, flowing) -> None:
    ch, _ = flowing
    raw = websocket.create_connection(ch["connectUri"], timeout=3, skip_utf8_validation=True)
    try:
        assert sim.wait_connected(ch["id"])

        def next_matching(pred) -> bytes:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                _opcode, data = raw.recv_data()
                if pred(data):
                    return data
            raise AssertionError("frame not seen")

        def unparsable(data: bytes) -> bool:
            try:
                json.loads(data)
            except ValueError:
                return True
            return False

        sim.faults.bad_frame("malformed", ch["id"])
        assert b"oops" in next_matching(unparsable)
        sim.faults.bad_frame("truncated", ch["id"])
        assert next_matching(unparsable).startswith(b'{"topicName":"channel.metadata"')
        sim.faults.bad_frame("non_utf8", ch["id"])
        bad = next_matching(lambda d: b"\xff" in d)
        with pytest.raises(UnicodeDecodeError):
            bad.decode("utf-8")
        before = len(sim.ledger)
        sim.faults.bad_frame("oversized", ch["id"], size=2_000_000)
        big = next_matching(lambda d: len(d) > 2_000_000)
        cid = json.loads(big)["metadata"]["CorrelationId"]
        assert cid in {e.correlation_id for e in sim.ledger.entries(before)}
        sim.faults.bad_frame("truncated_frame", ch["id"])
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            for _ in range(100_000):
                raw.recv_data()
    finally:
        raw.close()


def test_duplicate_and_reorder_show_in_receiver_and_ledger(sim, flowing) -> None:
    ch, ws = flowing
    _events(ws, 5)
    sim.faults.duplicate(ch["id"], count=3)
    seen = [e["metadata"]["CorrelationId"] for e in _events(ws, 400)]
    dupes = {c for c in seen if seen.count(c) > 1}
    assert len(dupes) == 3
    assert sim.ledger.summary()["duplicates"] == 3
    sim.faults.reorder(ch["id"], count=2)
    ids = [sim.hub.cids.event_id(e["metadata"]["CorrelationId"]) for e in _events(ws, 400)]
    inversions = sum(1 for a, b in itertools.pairwise(ids) if b < a)
    assert inversions == 2


def test_http_error_bursts(sim, api) -> None:
    sim.faults.http_errors(status=429, count=2)
    sim.faults.http_errors(status=503, count=1)
    first = api.req("GET", "/api/v2/notifications/channels")
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    assert first.json()["code"] == "too.many.requests.retry.after"
    assert api.req("GET", "/api/v2/notifications/channels").status_code == 429
    assert api.req("GET", "/api/v2/notifications/channels").status_code == 503
    assert api.req("GET", "/api/v2/notifications/channels").status_code == 200


def test_stall_stops_everything_including_heartbeats(sim, api) -> None:
    ch = api.channel()
    ws = connect(ch["connectUri"])
    try:
        recv_until(ws, is_heartbeat)
        sim.faults.stall(ch["id"])
        ws.send('{"message":"ping"}')
        ws.settimeout(0.7)  # > 3 heartbeat intervals of 0.2 s
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()
        sim.faults.unstall(ch["id"])
        recv_until(ws, is_heartbeat)
    finally:
        ws.close()


def test_timed_stall_loses_events_then_resumes(make_sim) -> None:
    sim = make_sim(rate=5000, queues=1, agents=4)
    api = Api(sim)
    ch = api.channel()
    api.subscribe(ch["id"], [f"v2.routing.queues.{sim.queue_ids[0]}.conversations"])
    ws = connect(ch["connectUri"])
    try:
        _events(ws, 2)
        sim.faults.stall(ch["id"], duration_s=0.3)
        wait_for(lambda: sim.ledger.summary()["lostPerChannel"].get(ch["id"], 0) > 0)
        delivered = len(sim.ledger)
        wait_for(lambda: len(sim.ledger) > delivered)  # resumes by itself
        assert len(_events(ws, 3)) == 3
    finally:
        ws.close()


def test_events_without_socket_are_lost_not_queued(make_sim) -> None:
    sim = make_sim(rate=5000, queues=1, agents=4)
    api = Api(sim)
    ch = api.channel()
    api.subscribe(ch["id"], [f"v2.routing.queues.{sim.queue_ids[0]}.conversations"])
    wait_for(lambda: sim.ledger.summary()["lostPerChannel"].get(ch["id"], 0) > 5)
    assert len(sim.ledger) == 0
    ws = connect(ch["connectUri"])
    try:
        first = _events(ws, 1)[0]
        lost_before = sim.ledger.summary()["lostPerChannel"][ch["id"]]
        entries = sim.ledger.entries()
        assert entries[0].correlation_id == first["metadata"]["CorrelationId"]
        assert lost_before > 5
    finally:
        ws.close()


def test_no_longer_subscribed(sim, api, flowing) -> None:
    ch, ws = flowing
    sim.faults.no_longer_subscribed(ch["id"])
    msg = recv_until(ws, lambda m: m.get("topicName", "").startswith("v2.system.no_longer"))[-1]
    assert msg["eventBody"]["systemTopicType"] == "no_longer_subscribed"
    path = f"/api/v2/notifications/channels/{ch['id']}/subscriptions"
    assert api.req("GET", path).json() == {"entities": []}
