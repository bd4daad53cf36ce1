"""OAuth and the documented limits: tokens, 401, 300 req/min, 20 channels, 1,000 topics,
one socket per channel, channel expiry and its extension by resubscribing."""

from __future__ import annotations

import time

import requests
from sim_helpers import Api, connect, recv_until, wait_for

from connector.simulator import ClientConfig, GenesysSimulator


def _token(sim: GenesysSimulator, client: str, secret: str) -> requests.Response:
    return requests.post(
        f"{sim.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client, secret),
        timeout=5,
    )


def test_token_and_invalid_client_bodies(make_sim) -> None:
    sim = make_sim(clients=[ClientConfig("c1", "s1", token_ttl_s=7200)])
    ok = _token(sim, "c1", "s1")
    assert ok.status_code == 200
    assert set(ok.json()) == {"access_token", "token_type", "expires_in"}
    assert ok.json()["token_type"] == "bearer" and ok.json()["expires_in"] == 7200
    unknown = _token(sim, "nobody", "s1")
    assert unknown.status_code == 400
    assert unknown.json() == {
        "error": "invalid_client",
        "description": "client not found",
        "error_description": "client not found",
    }
    wrong = _token(sim, "c1", "wrong")
    assert wrong.status_code == 400
    assert wrong.json()["description"] == "authentication failed"
    assert wrong.json()["error_description"] == "authentication failed"


def test_missing_bad_and_expired_tokens_get_401(make_sim) -> None:
    sim = make_sim(token_ttl_s=0.3)
    api = Api(sim)
    assert api.req("GET", "/api/v2/notifications/channels").status_code == 200
    no_auth = requests.get(f"{sim.base_url}/api/v2/notifications/channels", timeout=5)
    assert no_auth.status_code == 401 and no_auth.json()["status"] == 401
    bad = requests.get(
        f"{sim.base_url}/api/v2/notifications/channels",
        headers={"Authorization": "Bearer nope"},
        timeout=5,
    )
    assert bad.status_code == 401
    wait_for(lambda: api.req("GET", "/api/v2/notifications/channels").status_code == 401)


def test_rate_limit_300_per_window_with_retry_after(make_sim) -> None:
    sim = make_sim(rate_limit_window_s=1.5)
    api = Api(sim)
    statuses = [api.req("HEAD", "/api/v2/notifications/channels/x").status_code for _ in range(300)]
    assert set(statuses) == {404}
    limited = api.req("GET", "/api/v2/notifications/channels")
    assert limited.status_code == 429
    retry = int(limited.headers["Retry-After"])
    assert 1 <= retry <= 2
    body = limited.json()
    assert body["code"] == "too.many.requests.retry.after" and body["status"] == 429
    assert body["message"] == (
        f"Rate limit exceeded the maximum. Retry the request in [{retry}] seconds"
    )
    assert body["details"] == [] and body["errors"] == []
    other = Api(sim)  # the limit is per token
    assert other.req("GET", "/api/v2/notifications/channels").status_code == 200
    wait_for(
        lambda: api.req("GET", "/api/v2/notifications/channels").status_code == 200,
        timeout=retry + 1,
        interval=0.2,
    )


def test_21st_channel_evicts_oldest_idle_first(sim: GenesysSimulator, api: Api) -> None:
    chans = [api.channel() for _ in range(20)]
    ws = connect(chans[0]["connectUri"])  # the oldest is connected, so it is kept
    try:
        assert sim.wait_connected(chans[0]["id"])
        api.channel()
        listed = {
            c["id"] for c in api.req("GET", "/api/v2/notifications/channels").json()["entities"]
        }
        assert len(listed) == 20
        assert chans[0]["id"] in listed and chans[1]["id"] not in listed
        assert (
            api.req("HEAD", f"/api/v2/notifications/channels/{chans[1]['id']}").status_code == 404
        )
    finally:
        ws.close()


def test_eviction_of_connected_channel_sends_404_frame(sim: GenesysSimulator, api: Api) -> None:
    chans = [api.channel() for _ in range(20)]
    sockets = [connect(c["connectUri"]) for c in chans]
    try:
        for c in chans:
            assert sim.wait_connected(c["id"])
        api.channel()  # all connected: the oldest last-used goes
        msgs = recv_until(sockets[0], lambda m: m.get("result") == "404")
        assert chans[0]["id"] in msgs[-1]["message"]
    finally:
        for s in sockets:
            s.close()


def test_topic_limit_1000(sim: GenesysSimulator, api: Api) -> None:
    ch = api.channel()
    topics = [f"v2.users.u{i}.presence" for i in range(1000)]
    assert api.subscribe(ch["id"], topics).status_code == 200
    over = api.subscribe(ch["id"], ["v2.users.extra.presence"], method="POST")
    assert over.status_code == 400 and over.json()["status"] == 400
    listed = api.req("GET", f"/api/v2/notifications/channels/{ch['id']}/subscriptions").json()
    assert len(listed["entities"]) == 1000
    assert api.subscribe(ch["id"], topics + ["v2.users.x.presence"]).status_code == 400
    # Combined ids count each leaf.
    combined = [f"v2.users.u{i}?presence&routingStatus" for i in range(501)]
    assert api.subscribe(ch["id"], combined).status_code == 400


def test_second_socket_kicks_the_first(sim: GenesysSimulator, api: Api) -> None:
    ch = api.channel()
    first = connect(ch["connectUri"])
    assert sim.wait_connected(ch["id"])
    second = connect(ch["connectUri"])
    try:
        first.settimeout(3)
        opcode, _ = first.recv_data(control_frame=True)
        assert opcode == 8  # close frame
        second.send('{"message":"ping"}')
        recv_until(second, lambda m: m.get("eventBody", {}).get("message") == "pong")
    finally:
        first.close()
        second.close()


def test_channel_expires_after_ttl_unless_resubscribed(make_sim) -> None:
    sim = make_sim(channel_ttl_s=0.8)
    api = Api(sim)
    stale, kept = api.channel(), api.channel()
    ws = connect(stale["connectUri"])
    try:
        start = time.monotonic()
        while time.monotonic() - start < 1.6:  # resubscribe every ~0.3 s keeps it alive
            assert api.subscribe(kept["id"], ["v2.users.a.presence"]).status_code == 200
            wait_for(lambda s=time.monotonic(): time.monotonic() - s > 0.3, timeout=1)
        assert api.req("HEAD", f"/api/v2/notifications/channels/{kept['id']}").status_code == 200
        assert api.req("HEAD", f"/api/v2/notifications/channels/{stale['id']}").status_code == 404
        msgs = recv_until(ws, lambda m: m.get("result") == "404")
        assert msgs[-1]["result"] == "404"
    finally:
        ws.close()
    late = connect(stale["connectUri"])  # connecting to a dead channel: 404 frame
    try:
        assert recv_until(late, lambda m: "result" in m)[-1]["result"] == "404"
    finally:
        late.close()


def test_channel_expires_field_moves_on_subscribe(make_sim) -> None:
    sim = make_sim(channel_ttl_s=3600)
    api = Api(sim)
    ch = api.channel()
    wait_for(lambda s=time.monotonic(): time.monotonic() - s > 0.05)
    assert api.subscribe(ch["id"], ["v2.users.a.presence"]).status_code == 200
    listed = api.req("GET", "/api/v2/notifications/channels").json()["entities"][0]
    assert listed["expires"] > ch["expires"]
