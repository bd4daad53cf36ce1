"""The contact-centre model, the ledger/control API, flood mode and the CLI wiring."""

from __future__ import annotations

import argparse
import re
from collections import Counter

import orjson
import requests
from sim_helpers import Api, connect, recv_until, wait_for

from connector.simulator import GenesysSimulator
from connector.simulator.cli import build_config, register
from connector.simulator.model import ContactCentre

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_model_is_deterministic_and_covers_the_life_cycle() -> None:
    a = ContactCentre(7, 3, 10, 1714557600.0).advance(6000)
    b = ContactCentre(7, 3, 10, 1714557600.0).advance(6000)
    assert a == b
    assert a != ContactCentre(8, 3, 10, 1714557600.0).advance(6000)
    kinds = Counter(
        e.topic.rsplit(".", 1)[-1] if ".detail." not in e.topic else e.topic.split(".", 5)[-1]
        for e in a
    )
    for k in (
        "conversations",
        "presence",
        "routingStatus",
        "activity",
        "observations",
        "users",
        "customer.start",
        "acd.start",
        "acd.end",
        "user.start",
        "user.end",
        "acw",
        "wrapup",
    ):
        assert kinds[k] > 0, k
    states, media, routing = set(), set(), set()
    for e in a:
        body = orjson.loads(e.body)
        if e.topic.endswith(".conversations"):
            for p in body["participants"]:
                for arr in ("calls", "chats", "emails", "messages"):
                    for m in p.get(arr, []):
                        media.add(arr)
                        states.add((m["state"], m.get("held", False)))
        if e.topic.endswith(".routingStatus"):
            routing.add(body["routingStatus"]["status"])
    assert media == {"calls", "chats", "emails", "messages"}
    assert {
        ("alerting", False),
        ("connected", False),
        ("connected", True),
        ("disconnected", False),
    } <= states
    assert {"IDLE", "INTERACTING", "OFF_QUEUE"} <= routing


def test_timestamps_iso_except_detail_events_and_ids_for_keys() -> None:
    events = ContactCentre(2, 2, 8, 1714557600.0).advance(3000)
    for e in events:
        body = orjson.loads(e.body)
        entity = e.topic.split(".")[3] if e.topic.startswith("v2.routing") else None
        if ".detail." in e.topic:
            assert isinstance(body["eventTime"], int) and body["eventTime"] > 1_714_557_600_000
            assert body["conversationId"] in e.topic
        elif e.topic.endswith(".presence"):
            assert ISO.match(body["modifiedDate"])
        elif e.topic.endswith(".conversations"):
            assert body["id"] and all(
                ISO.match(p.get("connectedTime", "2024-01-01T00:00:00.000Z"))
                for p in body["participants"]
            )
            if entity:
                assert any(p.get("queueId") == entity for p in body["participants"])
            else:
                user = e.topic.split(".")[2]
                assert any(p.get("userId") == user for p in body["participants"])
    sizes = [len(e.body) for e in events if e.topic.endswith(".conversations")]
    assert 1000 < sorted(sizes)[len(sizes) // 2] < 4000


def test_only_subscribed_topics_are_delivered_and_ledgered(sim: GenesysSimulator, api: Api) -> None:
    ch = api.channel()
    user = sim.user_ids[0]
    wanted = {f"v2.users.{user}.activity", f"v2.users.{user}.routingStatus"}
    api.subscribe(ch["id"], sorted(wanted))
    ws = connect(ch["connectUri"])
    try:
        sim.set_rate(rate=20000)
        got = []
        while len(got) < 4:
            got.append(recv_until(ws, lambda m: m.get("topicName", "").startswith("v2."), 5)[-1])
        assert {m["topicName"] for m in got} <= wanted
        ledger_cids = {e.correlation_id for e in sim.ledger.entries()}
        assert {m["metadata"]["CorrelationId"] for m in got} <= ledger_cids
        assert all(e.topic in wanted and e.channel_id == ch["id"] for e in sim.ledger.entries())
    finally:
        ws.close()


def test_control_api_ledger_cursor_summary_rate_and_faults(sim: GenesysSimulator, api: Api) -> None:
    ctl = sim.control_url
    ch = api.channel()
    api.subscribe(ch["id"], [f"v2.routing.queues.{sim.queue_ids[0]}.conversations"])
    ws = connect(ch["connectUri"])
    try:
        assert sim.wait_connected(ch["id"])
        r = requests.post(f"{ctl}/rate", json={"rate": 3000, "mode": "flood"}, timeout=5)
        assert r.json()["mode"] == "flood"
        wait_for(lambda: len(sim.ledger) >= 50)
        page1 = requests.get(f"{ctl}/ledger", params={"from": 0, "limit": 20}, timeout=5).json()
        page2 = requests.get(
            f"{ctl}/ledger", params={"from": page1["next"], "limit": 20}, timeout=5
        ).json()
        assert [e["index"] for e in page1["entries"]] == list(range(20))
        assert page2["entries"][0]["index"] == 20
        assert page1["entries"][-1]["eventId"] < page2["entries"][0]["eventId"]
        e0 = page1["entries"][0]
        assert set(e0) == {
            "index",
            "channelId",
            "topicName",
            "correlationId",
            "eventId",
            "sentNs",
            "sentAt",
        }
        summary = requests.get(f"{ctl}/ledger/summary", timeout=5).json()
        assert summary["total"] >= 50 and summary["perChannel"][ch["id"]] == summary["total"]
        status = requests.get(ctl, timeout=5).json()
        assert status["sockets"] == 1
        ents = requests.get(f"{ctl}/entities", timeout=5).json()
        assert len(ents["queues"]) == sim.config.queues
        chans = requests.get(f"{ctl}/channels", timeout=5).json()["entities"]
        assert chans[0]["connected"] is True
        bad = requests.post(f"{ctl}/faults/drop", json={"channelId": "nope"}, timeout=5)
        assert bad.status_code == 404
        drop = requests.post(f"{ctl}/faults/drop", json={"channelId": ch["id"]}, timeout=5)
        assert drop.json() == {"channels": [ch["id"]]}
        wait_for(lambda: not sim.channels()[0]["connected"])
        assert requests.delete(f"{ctl}/ledger", timeout=5).json() == {"total": 0}
    finally:
        ws.close()


def test_flood_ledger_matches_what_a_reader_received(make_sim) -> None:
    sim = make_sim(mode="flood", rate=0)
    api = Api(sim)
    ch = api.channel()
    topics = [f"v2.routing.queues.{q}.conversations" for q in sim.queue_ids]
    topics += [f"v2.detail.events.conversation.c{i}.acw" for i in range(3)]
    api.subscribe(ch["id"], topics)
    ws = connect(ch["connectUri"])
    received = []
    try:
        while len(received) < 5000:
            m = orjson.loads(ws.recv())
            if m["topicName"].startswith("v2."):
                received.append(m)
        sim.faults.drop(ch["id"])
    finally:
        ws.close()
    assert {m["topicName"] for m in received} == set(topics)
    detail = next(m for m in received if ".detail." in m["topicName"])
    assert detail["eventBody"]["conversationId"] == detail["topicName"].split(".")[4]
    wait_for(lambda: not sim.channels()[0]["connected"])
    entries = sim.ledger.entries(0, len(received))
    assert [e.correlation_id for e in entries] == [m["metadata"]["CorrelationId"] for m in received]
    assert [e.topic for e in entries] == [m["topicName"] for m in received]


def test_cli_registers_simulate_genesys(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "simulate",
            "genesys",
            "--port",
            "0",
            "--flood",
            "--seed",
            "9",
            "--client-id",
            "me",
            "--client-secret",
            "pw",
            "--heartbeat-s",
            "2",
        ]
    )
    cfg = build_config(args)
    assert callable(args.handler)
    assert (cfg.port, cfg.mode, cfg.rate, cfg.seed, cfg.heartbeat_interval_s) == (
        0,
        "flood",
        0,
        9,
        2,
    )
    assert (cfg.clients[0].client_id, cfg.clients[0].client_secret) == ("me", "pw")
    path = tmp_path / "sim.yaml"
    path.write_text(
        "seed: 4\nqueues: 2\nclients:\n  - {id: a, secret: b, permissions: ['x:y:z']}\n"
    )
    args = parser.parse_args(["simulate", "genesys", "--config", str(path), "--rate", "10"])
    cfg = build_config(args)
    assert (cfg.seed, cfg.queues, cfg.rate) == (4, 2, 10)
    assert cfg.clients[0].permissions == ("x:y:z",)


def test_protocol_ping_and_ws_subscribe_commands(sim: GenesysSimulator, api: Api) -> None:
    ch = api.channel()
    ws = connect(ch["connectUri"])
    try:
        ws.ping(b"hi")
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == 0xA:
                assert data == b"hi"
                break
        user = sim.user_ids[0]
        ws.send(
            orjson.dumps(
                {
                    "message": "subscribe",
                    "topics": [f"v2.users.{user}.presence"],
                    "correlationId": "c1",
                }
            ).decode()
        )
        assert recv_until(ws, lambda m: "result" in m)[-1] == {
            "result": "200",
            "status": "subscribed",
        }
        path = f"/api/v2/notifications/channels/{ch['id']}/subscriptions"
        assert [e["id"] for e in api.req("GET", path).json()["entities"]] == [
            f"v2.users.{user}.presence"
        ]
        ws.send('{"message":"subscribe","correlationId":"c2"}')
        reply = recv_until(ws, lambda m: "result" in m)[-1]
        assert reply["result"] == "400" and reply["correlationId"] == "c2"
    finally:
        ws.close()
