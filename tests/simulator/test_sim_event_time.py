"""Event time: live bodies carry wall-clock timestamps (model and flood), conversations stay
internally consistent at any load, and a fixed ``start_time`` stays byte-identical."""

from __future__ import annotations

import calendar
import re
import time
from collections import defaultdict
from typing import Any

import orjson
import pytest
from sim_helpers import Api, connect, recv_until

from connector.simulator import GenesysSimulator
from connector.simulator.model import LIVE_SLACK_S, ContactCentre

ISO_RE = re.compile(rb'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)')
INTERVAL_RE = re.compile(rb'"interval":"[^"/]+/(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"')
EPOCH_MS_RE = re.compile(rb'"eventTime":(\d+)')
SKEW_S = 2.0


def iso_s(text: str | bytes) -> float:
    s = text.decode() if isinstance(text, bytes) else text
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + int(s[20:23]) / 1000


def stamps(body: bytes) -> list[float]:
    """Every timestamp in a body, in seconds: ISO strings and epoch-ms ``eventTime``."""
    out = [iso_s(m) for m in ISO_RE.findall(body)]
    out += [iso_s(m) for m in INTERVAL_RE.findall(body)]
    return out + [int(m) / 1000 for m in EPOCH_MS_RE.findall(body)]


def family(topic: str) -> str:
    return "detail" if ".detail." in topic else topic.rsplit(".", 1)[-1]


def event_time(fam: str, body: dict[str, Any]) -> float | None:
    """The field that is the time of the event itself, for the families that have one
    (a conversation snapshot or a queue membership has none)."""
    if fam == "detail":
        return float(body["eventTime"]) / 1000
    if fam == "observations":
        return iso_s(body["data"][0]["interval"].split("/")[0])
    if fam == "presence":
        return iso_s(body["modifiedDate"])
    if fam in ("routingStatus", "activity"):
        return iso_s(body["routingStatus"]["startTime"])
    return None


# -- consistency of one conversation ----------------------------------------------------------
def check_snapshot(body: dict[str, Any], seen: dict[str, dict[str, str]]) -> None:
    """Times inside one snapshot are ordered; a participant's times never change later."""
    parts = body["participants"]
    start = iso_s(parts[0]["connectedTime"])  # the customer
    for p in parts:
        t = {k: p[k] for k in ("connectedTime", "endTime", "startAcwTime", "endAcwTime") if k in p}
        for v in t.values():
            assert iso_s(v) >= start, (p, start)
        if "connectedTime" in t and "endTime" in t:
            assert iso_s(t["endTime"]) >= iso_s(t["connectedTime"]), p
        if "startAcwTime" in t:
            assert t["startAcwTime"] == t["endTime"], p
        if "endAcwTime" in t:
            acw_s = iso_s(t["endAcwTime"]) - iso_s(t["startAcwTime"])
            assert acw_s >= 0, p
            assert abs(p["wrapup"]["durationSeconds"] - acw_s) < 1.01, p
            assert p["wrapup"]["endTime"] == t["endAcwTime"]
        (media,) = [m for k in ("calls", "chats", "emails", "messages") for m in p.get(k, [])]
        if "connectedTime" in t:
            assert media["connectedTime"] == t["connectedTime"]
        if "endTime" in t:
            assert media["disconnectedTime"] == t["endTime"]
        if media.get("startHoldTime"):
            assert iso_s(media["startHoldTime"]) >= iso_s(t["connectedTime"]), p
        before = seen.setdefault(p["id"], {})
        for k, v in t.items():
            assert before.setdefault(k, v) == v, (p["id"], k, before[k], v)


def check_details(events: list[dict[str, Any]]) -> int:
    """Detail events of one conversation, in emission order: eventTime never goes back and
    every duration matches the eventTimes it spans. Returns how many durations were checked."""
    times = [e["eventTime"] for _k, e in events]
    assert times == sorted(times)
    starts: dict[tuple[str, str], int] = {}
    user_end: dict[str, int] = {}
    checked = 0
    for kind, e in events:
        pid, t = e["participantId"], e["eventTime"]
        if kind.endswith(".start"):
            starts[kind.split(".")[0], pid] = t
            continue
        if kind == "customer.end":
            assert abs(e["interactingDurationMs"] - (t - starts["customer", pid])) <= 1
            checked += 1
        elif kind == "acd.end" and "connectedDurationMs" in e:
            assert abs(e["connectedDurationMs"] - (t - starts["acd", pid])) <= 1
            checked += 1
        elif kind == "user.end":
            user_end[pid] = t
            if ("user", pid) in starts:
                assert abs(e["interactingDurationMs"] - (t - starts["user", pid])) <= 1
                assert 0 <= e["heldDurationMs"] <= e["interactingDurationMs"] + 1
                checked += 1
            assert e["alertingDurationMs"] >= 0
        elif kind in ("acw", "wrapup"):
            acw_ms = t - user_end[pid]
            assert (
                e["wrapupDurationMs"] == acw_ms // 1000 * 1000
                or abs(e["wrapupDurationMs"] - acw_ms) < 1001
            )
            checked += 1
    return checked


def run_live(model: ContactCentre, rate: float, seconds: float, t0: float) -> dict[str, int]:
    """Drive ``model`` in live mode on a simulated wall clock, checking every body's times
    against it (the stamp <= the clock and at most LIVE_SLACK_S behind) and every
    conversation's consistency. Returns counts of what was checked."""
    now, tick, budget = t0, 0.05, 0.0
    snapshots: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    details: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    while now < t0 + seconds:
        now += tick
        budget += rate * tick
        first = model.next_event_id
        for ev in model.advance(int(budget), until=now):
            body = orjson.loads(ev.body)
            fam = family(ev.topic)
            assert max(stamps(ev.body), default=now) <= now + 0.001, ev
            at = event_time(fam, body)
            if at is not None:
                assert now - LIVE_SLACK_S - 0.002 <= at <= now + 0.001, (ev.topic, at, now)
            counts[fam] += 1
            if fam == "detail":
                details[body["conversationId"]].append((ev.topic.split(".", 5)[-1], body))
            elif fam == "conversations" and ".queues." in ev.topic:
                check_snapshot(body, snapshots[body["id"]])
        budget -= model.next_event_id - first
    counts["durations"] = sum(check_details(evs) for evs in details.values())
    counts["conversations_seen"] = len(details)
    assert model.now <= now
    return counts


@pytest.mark.parametrize(
    ("load", "max_concurrency", "rate", "seconds"),
    [
        (0.3, None, 0.5, 1200.0),  # a trickle: fewer arrivals, one conversation per agent
        (30.0, None, 48.0, 420.0),  # parallel: agents handle many conversations at once
        (400.0, 4, 640.0, 20.0),  # beyond max_concurrency: every delay compressed 100x
    ],
)
def test_live_model_never_leaves_the_clock_and_keeps_conversations_consistent(
    load: float, max_concurrency: int | None, rate: float, seconds: float
) -> None:
    t0 = 1_800_000_000.0
    model = ContactCentre(5, 3, 12, t0, wanted=lambda t: ".users." not in t)
    if max_concurrency:
        model.max_concurrency = max_concurrency
    model.set_load(load)
    counts = run_live(model, rate, seconds, t0)
    assert counts["durations"] > 20, counts
    assert counts["conversations"] > 20 and counts["observations"] > 10, counts
    if max_concurrency:
        assert model.speed == pytest.approx(100.0)


def test_set_load_splits_into_parallelism_and_compression() -> None:
    model = ContactCentre(1, 4, 20, 0.0)
    assert (model.capacity, model.speed, model.arrival_scale) == (1, 1.0, 1.0)
    model.set_load(0.25)
    assert (model.capacity, model.speed, model.arrival_scale) == (1, 1.0, 0.25)
    model.set_load(100)
    assert model.speed == 1.0 and model.arrival_scale == 100 and model.capacity >= 100
    model.set_load(model.max_concurrency * 8)
    assert model.speed == pytest.approx(8) and model.arrival_scale == model.max_concurrency


# -- over a socket ------------------------------------------------------------------------
def assert_fresh(raw: str | bytes, received: float, fams: dict[str, int]) -> dict[str, Any]:
    """The event time is within SKEW_S of the receive time, no timestamp is in the future and
    a conversation's times are from its last hour."""
    data = raw.encode() if isinstance(raw, str) else raw
    msg = orjson.loads(data)
    topic = msg.get("topicName", "")
    if topic.startswith("v2."):
        body = orjson.dumps(msg["eventBody"])
        fam = family(topic)
        found = stamps(body)
        if found:
            assert max(found) <= received + SKEW_S, (topic, max(found) - received, body[:300])
            at = event_time(fam, msg["eventBody"])
            if at is not None:
                assert abs(at - received) <= SKEW_S, (topic, at - received, body[:300])
            elif fam == "conversations":
                assert min(found) >= received - 3600, (topic, min(found) - received)
            kind = "epoch-ms" if b'"eventTime"' in body else "iso"
            fams[f"{fam}/{kind}"] += 1
    return msg


def test_live_model_at_a_high_rate_stamps_events_at_the_wall_clock(make_sim) -> None:
    sim: GenesysSimulator = make_sim(start_time=None, rate=0)
    api = Api(sim)
    ch = api.channel()
    topics = [f"v2.routing.queues.{q}.conversations" for q in sim.queue_ids[:2]]
    topics += [f"v2.analytics.queues.{q}.observations" for q in sim.queue_ids[:2]]
    topics += [
        f"v2.users.{u}.{leaf}"
        for u in sim.user_ids[:4]
        for leaf in ("conversations", "routingStatus", "activity", "presence")
    ]
    assert api.subscribe(ch["id"], topics).status_code == 200
    ws = connect(ch["connectUri"])
    fams: dict[str, int] = defaultdict(int)
    followed: set[str] = set()
    try:
        assert sim.wait_connected(ch["id"])
        sim.set_rate(rate=5000)  # ~3000x the contact centre's own pace
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ws.settimeout(max(0.01, deadline - time.monotonic()))
            msg = assert_fresh(ws.recv(), time.time(), fams)
            body = msg.get("eventBody", {})
            if msg.get("topicName", "").endswith(".conversations") and len(followed) < 40:
                conv = body["id"]
                if conv not in followed:  # follow its detail events from now on
                    followed.add(conv)
                    kinds = ("acd.end", "user.start", "user.end", "customer.end", "acw")
                    detail = [f"v2.detail.events.conversation.{conv}.{k}" for k in kinds]
                    ws.send(orjson.dumps({"message": "subscribe", "topics": detail}).decode())
            if (
                fams["detail/epoch-ms"] >= 20
                and fams["conversations/iso"] >= 200
                and fams["observations/iso"] >= 50
            ):
                break
    finally:
        ws.close()
    assert fams["detail/epoch-ms"] >= 20, dict(fams)
    assert fams["conversations/iso"] >= 200 and fams["observations/iso"] >= 50, dict(fams)


def flood_topics(sim: GenesysSimulator) -> list[str]:
    topics = [f"v2.routing.queues.{q}.conversations" for q in sim.queue_ids]
    topics += [f"v2.analytics.queues.{q}.observations" for q in sim.queue_ids]
    topics += [f"v2.users.{sim.user_ids[0]}.{x}" for x in ("presence", "routingStatus", "activity")]
    return topics + [
        f"v2.detail.events.conversation.00000000-0000-4000-8000-00000000000{i}.{k}"
        for i in range(3)
        for k in ("customer.start", "acd.end", "user.end", "acw")
    ]


def test_live_flood_stamps_events_at_the_wall_clock(make_sim) -> None:
    sim: GenesysSimulator = make_sim(start_time=None, mode="flood", rate=4000)
    api = Api(sim)
    ch = api.channel()
    assert api.subscribe(ch["id"], flood_topics(sim)).status_code == 200
    ws = connect(ch["connectUri"])
    fams: dict[str, int] = defaultdict(int)
    first = last = None
    try:
        started = time.monotonic()
        while time.monotonic() - started < 0.8 or len(fams) < 4:  # >= 3 stamping generations
            msg = assert_fresh(ws.recv(), time.time(), fams)
            body = msg.get("eventBody", {})
            if msg.get("topicName", "").endswith(".conversations"):
                check_snapshot(body, {})  # pool bodies repeat, re-stamped: one at a time
            if ".detail." in msg.get("topicName", ""):
                last = body["eventTime"]
                first = first or last
    finally:
        ws.close()
    assert {"conversations/iso", "observations/iso", "detail/epoch-ms"} <= set(fams), dict(fams)
    assert first is not None and last is not None and last - first >= 400  # re-stamped


def test_unlimited_flood_stamps_events_at_the_send_time(make_sim) -> None:
    """A reader slower than the flood reads what waited in the socket buffers, so its events
    are as old as that backlog: the times match when each frame was written (the ledger)."""
    sim: GenesysSimulator = make_sim(start_time=None, mode="flood", rate=0)
    api = Api(sim)
    ch = api.channel()
    assert api.subscribe(ch["id"], flood_topics(sim)).status_code == 200
    ws = connect(ch["connectUri"])
    got: list[tuple[str, float | None]] = []  # correlation id, event time
    lo, hi = float("inf"), 0.0
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            raw = ws.recv()
            received = time.time()
            msg = orjson.loads(raw)
            topic = msg.get("topicName", "")
            if not topic.startswith("v2."):
                continue
            assert max(stamps(raw.encode()), default=0) <= received + 0.05, msg
            at = event_time(family(topic), msg["eventBody"])
            got.append((msg["metadata"]["CorrelationId"], at))
            if at is not None:
                lo, hi = min(lo, at), max(hi, at)
            if len(got) >= 1000 and hi - lo >= 0.25:  # two stamping generations or more
                break
        sim.faults.drop(ch["id"])
    finally:
        ws.close()
    sent = sim.ledger.entries(0, len(got))
    assert [e.correlation_id for e in sent] == [c for c, _t in got]
    skews = [t - e.sent_ns / 1e9 for e, (_c, t) in zip(sent, got, strict=True) if t is not None]
    assert len(skews) > 500
    assert min(skews) >= -SKEW_S and max(skews) <= 0.01, (min(skews), max(skews))


# -- deterministic mode ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["model", "flood"])
def test_fixed_start_time_gives_byte_identical_bodies(make_sim, mode: str) -> None:
    received: list[list[bytes]] = []
    for _ in range(2):
        sim: GenesysSimulator = make_sim(seed=11, mode=mode, rate=0)
        api = Api(sim)
        ch = api.channel()
        topics = [f"v2.routing.queues.{q}.conversations" for q in sim.queue_ids]
        topics += [f"v2.users.{u}.routingStatus" for u in sim.user_ids]
        api.subscribe(ch["id"], topics)
        ws = connect(ch["connectUri"])
        try:
            assert sim.wait_connected(ch["id"])
            sim.set_rate(rate=20000 if mode == "model" else 2000)
            got: list[bytes] = []
            while len(got) < 60:
                msg = recv_until(ws, lambda m: m.get("topicName", "").startswith("v2."), 5)[-1]
                got.append(orjson.dumps(msg["eventBody"]))
            received.append(got)
        finally:
            ws.close()
            sim.stop()
    assert received[0] == received[1]
    assert all(min(stamps(b)) > 1714557600 - 4 * 86400 for b in received[0])
