"""Subscription semantics: add / replace / clear, ignoreErrors, permissions, system topics."""

from __future__ import annotations

from sim_helpers import Api

from connector.simulator import GenesysSimulator


def _ids(resp_json: dict) -> list[str]:
    return [e["id"] for e in resp_json["entities"]]


def test_post_adds_put_replaces_delete_clears(sim: GenesysSimulator, api: Api) -> None:
    ch = api.channel()["id"]
    path = f"/api/v2/notifications/channels/{ch}/subscriptions"
    assert api.subscribe(ch, ["v2.users.a.presence"], method="POST").status_code == 200
    added = api.subscribe(ch, ["v2.users.b.presence"], method="POST").json()
    assert _ids(added) == ["v2.users.a.presence", "v2.users.b.presence"]
    replaced = api.subscribe(ch, ["v2.users.c.presence"], method="PUT").json()
    assert _ids(replaced) == ["v2.users.c.presence"]
    cleared = api.req("DELETE", path)
    assert cleared.status_code == 200 and cleared.content == b""
    assert api.req("GET", path).json() == {"entities": []}
    assert (
        api.req("GET", "/api/v2/notifications/channels/streaming-0-x/subscriptions").status_code
        == 404
    )


def test_ignore_errors_reports_per_topic_state(sim: GenesysSimulator) -> None:
    limited = Api(sim, "limited", "limited-secret")  # has routing:queue:view only
    ch = limited.channel()["id"]
    queue = sim.queue_ids[0]
    topics = [
        f"v2.routing.queues.{queue}.users",
        f"v2.analytics.queues.{queue}.observations",
        "v2.not.a.topic",
    ]
    strict = limited.subscribe(ch, topics)
    assert strict.status_code == 403 and strict.json()["status"] == 403
    resp = limited.subscribe(ch, topics, ignore_errors=True)
    assert resp.status_code == 200
    by_id = {e["id"]: e for e in resp.json()["entities"]}
    assert by_id[topics[0]]["state"] == "Rejected"
    assert by_id[topics[0]]["missingPermissions"] == ["routing:queueMember:view"]
    assert by_id[topics[1]]["missingPermissions"] == ["analytics:queueObservation:view"]
    assert by_id[topics[2]]["state"] == "Rejected" and "rejectionReason" in by_id[topics[2]]
    ok = limited.subscribe(
        ch, ["v2.detail.events.conversation.c1.acw", topics[0]], ignore_errors=True
    ).json()
    assert [e["state"] for e in ok["entities"]] == ["Rejected", "Rejected"]
    full = Api(sim)
    ch2 = full.channel()["id"]
    granted = full.subscribe(ch2, topics[:2], ignore_errors=True).json()
    assert [e["state"] for e in granted["entities"]] == ["Permitted", "Permitted"]


def test_bad_topic_without_ignore_errors_is_400_and_changes_nothing(sim, api: Api) -> None:
    ch = api.channel()["id"]
    api.subscribe(ch, ["v2.users.a.presence"])
    bad = api.subscribe(ch, ["v2.users.b.presence", "channel.metadata"], method="POST")
    assert bad.status_code == 400
    listed = api.req("GET", f"/api/v2/notifications/channels/{ch}/subscriptions").json()
    assert _ids(listed) == ["v2.users.a.presence"]


def test_combined_topic_ids(sim: GenesysSimulator, api: Api) -> None:
    ch = api.channel()["id"]
    resp = api.subscribe(ch, ["v2.users.u1?presence&routingStatus"])
    assert resp.status_code == 200
    assert resp.json()["entities"][0]["state"] == "Permitted"


def test_channels_listing_by_token_and_client(sim: GenesysSimulator) -> None:
    a, b = Api(sim), Api(sim)
    ca, cb = a.channel(), b.channel()
    mine = a.req("GET", "/api/v2/notifications/channels").json()["entities"]
    assert [c["id"] for c in mine] == [ca["id"]]
    everyone = a.req(
        "GET", "/api/v2/notifications/channels", params={"includechannels": "oauthclient"}
    ).json()["entities"]
    assert len(everyone) == 2
    assert cb["id"] not in [c.get("id") for c in everyone]  # other tokens' ids are hidden


def test_availabletopics_expand(sim: GenesysSimulator, api: Api) -> None:
    plain = api.req("GET", "/api/v2/notifications/availabletopics").json()["entities"]
    assert "description" not in plain[0]
    full = api.req(
        "GET",
        "/api/v2/notifications/availabletopics",
        params={"expand": ["description", "requiresPermissions", "topicParameters"]},
    )
    presence = next(t for t in full.json()["entities"] if t["id"] == "v2.users.{id}.presence")
    assert presence["topicParameters"] == ["userId"]
    assert presence["requiresPermissions"] and presence["description"]
