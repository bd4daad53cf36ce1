from __future__ import annotations

import json

import pytest
from genesys_helpers import CONV_1, FIXTURES, QUEUE_1, USER_1, fixture_bytes, load_fixture

from connector.plugins.genesys import events, topics
from connector.plugins.genesys.events import FrameKind

RECEIVED_MS = 1_714_557_700_000


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("heartbeat.json", FrameKind.HEARTBEAT),
        ("pong.json", FrameKind.PONG),
        ("socket_closing.json", FrameKind.SOCKET_CLOSING),
        ("channel_gone_404.json", FrameKind.CHANNEL_GONE),
        ("no_longer_subscribed.json", FrameKind.NO_LONGER_SUBSCRIBED),
        ("token_revoked.json", FrameKind.TOKEN_REVOKED),
        ("reply_subscribed.json", FrameKind.REPLY),
        ("reply_error.json", FrameKind.REPLY),
        ("queue_conversation.json", FrameKind.EVENT),
        ("user_presence.json", FrameKind.EVENT),
        ("detail_acw.json", FrameKind.EVENT),
        ("other_family_station.json", FrameKind.EVENT),
    ],
)
def test_classify_every_frame_kind(fixture: str, kind: FrameKind) -> None:
    assert events.classify(fixture_bytes(f"frames/{fixture}")).kind is kind


def test_classify_accepts_str_payloads_and_other_system_topics() -> None:
    frame = (
        '{"topicName":"v2.system.abc.def","eventBody":{"systemTopicType":"subscription_changed"}}'
    )
    assert events.classify(frame).kind is FrameKind.SYSTEM
    assert events.classify('{"topicName":"channel.metadata","eventBody":{"message":"x"}}').kind is (
        FrameKind.METADATA
    )


def test_404_frame_keeps_the_server_message() -> None:
    found = events.classify(fixture_bytes("frames/channel_gone_404.json"))
    assert "not found" in (found.message or "")


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("bad_json.txt", "bad JSON"),
        ("array.json", "wrong envelope: a JSON list"),
        ("no_topic.json", "no topicName"),
        ("topic_not_string.json", "topicName is not a string"),
        ("body_not_object.json", "eventBody is a JSON str"),
        ("body_missing.json", "eventBody is missing"),
        ("bad_utf8.bin", "undecodable text"),
    ],
)
def test_malformed_frames_are_classified_with_a_reason(fixture: str, reason: str) -> None:
    found = events.classify((FIXTURES / "malformed" / fixture).read_bytes())
    assert found.kind is FrameKind.MALFORMED
    assert reason in (found.message or "")


def test_big_integers_do_not_make_a_frame_malformed() -> None:
    topic = f"v2.detail.events.conversation.{CONV_1}.acw"
    frame = '{"topicName":"%s","eventBody":{"eventTime":%d}}' % (topic, 2**70)  # noqa: UP031
    assert events.classify(frame).kind is FrameKind.EVENT


def _build(fixture: str, router: topics.Router | None = None):
    envelope = events.classify(fixture_bytes(f"frames/{fixture}")).envelope
    return events.RecordBuilder(router or topics.Router()).build(envelope, RECEIVED_MS)


@pytest.mark.parametrize(
    ("fixture", "kafka_topic", "key", "timestamp_ms"),
    [
        ("queue_conversation.json", "genesys.queue.conversations", CONV_1, RECEIVED_MS),
        ("user_conversation.json", "genesys.user.conversations", CONV_1, RECEIVED_MS),
        ("user_presence.json", "genesys.user.presence", USER_1, 1620982997047),
        ("user_routing_status.json", "genesys.user.routingStatus", USER_1, 1714557605000),
        ("user_activity.json", "genesys.user.activity", USER_1, 1714557660000),
        ("queue_observations.json", "genesys.queue.observations", QUEUE_1, RECEIVED_MS),
        ("queue_users.json", "genesys.queue.users", USER_1, RECEIVED_MS),
        ("detail_acw.json", "genesys.conversation.detail", CONV_1, 1714557600000),
        ("other_family_station.json", "genesys.other", USER_1, RECEIVED_MS),
    ],
)
def test_record_topic_key_and_timestamp(
    fixture: str, kafka_topic: str, key: str, timestamp_ms: int
) -> None:
    record = _build(fixture)
    assert (record.topic, record.key, record.timestamp_ms) == (kafka_topic, key, timestamp_ms)


def test_record_headers_partition_and_offset() -> None:
    frame = load_fixture("frames/detail_acw.json")
    record = _build("detail_acw.json")
    assert dict(record.headers) == {
        "genesys.topic": frame["topicName"],
        "genesys.version": "2",
        "genesys.correlation.id": frame["metadata"]["CorrelationId"],
    }
    assert record.source_partition == {"topic": frame["topicName"]}
    assert record.source_offset == {
        "event_time_ms": 1714557600000,
        "correlation_id": frame["metadata"]["CorrelationId"],
        "seen_ms": RECEIVED_MS,
    }
    assert record.value["detail_event_type"] == "acw"
    assert record.value_schema.name == "com.genesys.notifications.ConversationDetailEvent"


def test_extra_metadata_and_envelope_keys_travel_in_headers() -> None:
    envelope = load_fixture("frames/user_presence.json")
    envelope["metadata"]["type"] = "member-change"
    envelope["newEnvelopeKey"] = 1
    record = events.RecordBuilder(topics.Router()).build(envelope, RECEIVED_MS)
    headers = dict(record.headers)
    assert json.loads(headers["genesys.metadata"])["type"] == "member-change"
    assert json.loads(headers["genesys.envelope.unknown"]) == {"newEnvelopeKey": 1}


def test_other_topics_use_the_generic_envelope() -> None:
    record = _build("other_family_station.json")
    assert record.value_schema.name == "com.genesys.notifications.NotificationEnvelope"
    assert json.loads(record.value["eventBody"])["id"] == "st-1"
    assert json.loads(record.value["metadata"])["type"] == "member-change"


def test_routing_overrides_apply() -> None:
    router = topics.Router("{connector}.{family}", {"user.presence": "presence"}, "prod")
    assert _build("user_presence.json", router).topic == "presence"
    assert _build("detail_acw.json", router).topic == "prod.conversation.detail"


def test_gap_record_carries_the_offset_forward() -> None:
    record = events.gap_record(
        gaps_topic="genesys.gaps",
        connector="c",
        task_id=0,
        genesys_topic="v2.users.x.presence",
        from_ms=10,
        to_ms=20,
        reason="restart",
        last_offset={"event_time_ms": 5, "correlation_id": "abc", "seen_ms": 10},
    )
    assert record.topic == "genesys.gaps" and record.key == "v2.users.x.presence"
    assert record.source_partition == {"topic": "v2.users.x.presence"}
    assert record.source_offset == {"event_time_ms": 5, "correlation_id": "abc", "seen_ms": 20}
    assert record.value["from_time"] == 10 and record.value["last_correlation_id"] == "abc"
