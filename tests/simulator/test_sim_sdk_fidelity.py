"""The official Genesys Python SDK as a real client of the simulator, plus body-shape checks of
every event family against the SDK's own models."""

from __future__ import annotations

import re
from typing import Any

import PureCloudPlatformClientV2 as G
import pytest
from PureCloudPlatformClientV2 import models as M
from PureCloudPlatformClientV2.rest import ApiException
from sim_helpers import connect, is_heartbeat, recv_until

from connector.simulator import GenesysSimulator
from connector.simulator.model import ContactCentre
from connector.simulator.topics import FAMILIES, family_of


def sdk(sim: GenesysSimulator) -> G.NotificationsApi:
    client = G.ApiClient(host=sim.base_url).get_client_credentials_token(
        "demo-client", "demo-secret"
    )
    return G.NotificationsApi(client)


def test_sdk_round_trip_and_websocket(sim: GenesysSimulator) -> None:
    sim.set_rate(rate=3000)
    notifications = sdk(sim)
    channel = notifications.post_notifications_channels()
    assert isinstance(channel, M.Channel)
    assert re.fullmatch(r"streaming-\d-[a-z0-9]{26}", channel.id)
    assert channel.connect_uri == f"{sim.ws_url}/channels/{channel.id}"
    assert channel.expires is not None  # parsed as a datetime by the SDK

    queue = sim.queue_ids[0]
    wanted = [
        f"v2.routing.queues.{queue}.conversations",
        f"v2.analytics.queues.{queue}.observations",
    ]
    body = []
    for t in wanted:
        topic = M.ChannelTopic()
        topic.id = t
        body.append(topic)
    result = notifications.put_notifications_channel_subscriptions(channel.id, body)
    assert isinstance(result, M.ChannelTopicEntityListing)
    assert [(e.id, e.state) for e in result.entities] == [(t, "Permitted") for t in wanted]
    listed = notifications.get_notifications_channel_subscriptions(channel.id)
    assert sorted(e.id for e in listed.entities) == sorted(wanted)
    notifications.head_notifications_channel(channel.id)  # 200: no exception
    with pytest.raises(ApiException) as missing:
        notifications.head_notifications_channel("streaming-0-doesnotexist0000000000000000")
    assert missing.value.status == 404
    channels = notifications.get_notifications_channels(includechannels="token")
    assert [c.id for c in channels.entities] == [channel.id]
    topics = notifications.get_notifications_availabletopics(
        expand=[
            "description",
            "requiresPermissions",
            "permissionDetails",
            "schema",
            "visibility",
            "transports",
            "topicParameters",
            "enforced",
        ]
    )
    templates = {t.id for t in topics.entities}
    assert {f.template for f in FAMILIES} <= templates
    assert all(t.visibility == "Public" for t in topics.entities)

    ws = connect(channel.connect_uri)
    try:
        recv_until(ws, is_heartbeat)
        ws.send('{"message":"ping"}')
        recv_until(ws, lambda m: m.get("eventBody", {}).get("message") == "pong")
        events = []
        while len(events) < 20:
            m = recv_until(ws, lambda m: m.get("topicName") != "channel.metadata", 5)[-1]
            events.append(m)
        for e in events:
            assert e["topicName"] in wanted
            assert e["version"] == "2"
            assert set(e) == {"topicName", "version", "eventBody", "metadata"}
            assert re.fullmatch(r"[0-9a-f-]{36}", e["metadata"]["CorrelationId"])
    finally:
        ws.close()


def _check_keys(value: Any, type_name: str, path: str) -> None:
    """Every key in ``value`` is a field of the SDK model ``type_name`` (recursively)."""
    if type_name.startswith("list["):
        for i, item in enumerate(value):
            _check_keys(item, type_name[5:-1], f"{path}[{i}]")
        return
    if type_name.startswith("dict(") or type_name in (
        "str",
        "int",
        "bool",
        "float",
        "datetime",
        "object",
        "date",
    ):
        return
    model = getattr(M, type_name)()
    json_to_attr = {v: k for k, v in model.attribute_map.items()}
    assert isinstance(value, dict), path
    for key, item in value.items():
        assert key in json_to_attr, f"{path}.{key} is not a field of {type_name}"
        _check_keys(item, model.swagger_types[json_to_attr[key]], f"{path}.{key}")


def _no_outdated(obj: Any, path: str) -> None:
    if isinstance(obj, list):
        for i, x in enumerate(obj):
            _no_outdated(x, f"{path}[{i}]")
    elif hasattr(obj, "swagger_types"):
        for attr in obj.swagger_types:
            _no_outdated(getattr(obj, attr), f"{path}.{attr}")
    else:
        assert obj != "outdated_sdk_version", f"{path} has an enum value the SDK does not know"


def test_every_family_matches_its_sdk_model() -> None:
    model = ContactCentre(seed=3, queues=3, agents=12, start_time=1714557600.0)
    seen: dict[str, int] = {}
    client = G.ApiClient(host="http://unused")
    import orjson

    for ev in model.advance(8000):
        found = family_of(ev.topic)
        assert found is not None, ev.topic
        fam = found[0]
        if seen.get(fam.template, 0) >= 40:
            continue
        seen[fam.template] = seen.get(fam.template, 0) + 1
        body = orjson.loads(ev.body)
        _check_keys(body, fam.model, fam.template)
        obj = client._ApiClient__deserialize(body, fam.model)
        _no_outdated(obj, fam.template)
    assert set(seen) == {f.template for f in FAMILIES}
