from __future__ import annotations

import pytest
from genesys_helpers import CONV_1, QUEUE_1, QUEUE_2, USER_1, base_config
from pydantic import ValidationError

from connector.plugins.genesys import topics
from connector.plugins.genesys.spec import SPEC, GenesysNotificationsConfig


def test_expand_template_per_id() -> None:
    assert topics.expand_template("queue.conversations", [QUEUE_1, QUEUE_2]) == [
        f"v2.routing.queues.{QUEUE_1}.conversations",
        f"v2.routing.queues.{QUEUE_2}.conversations",
    ]


def test_expand_detail_events_defaults_to_every_member() -> None:
    expanded = topics.expand_template("conversation.detail", [CONV_1])
    assert len(expanded) == len(topics.DETAIL_EVENT_TYPES) == 16
    assert f"v2.detail.events.conversation.{CONV_1}.acd.end" in expanded
    picked = topics.expand_template("conversation.detail", [CONV_1], ["acw", "wrapup"])
    assert picked == [
        f"v2.detail.events.conversation.{CONV_1}.acw",
        f"v2.detail.events.conversation.{CONV_1}.wrapup",
    ]


def test_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(topics.TopicError, match=r"'queue\.convos'.*queue\.conversations"):
        topics.expand_template("queue.convos", [QUEUE_1])


def test_malformed_id_is_refused() -> None:
    with pytest.raises(topics.TopicError, match="not a valid queue id"):
        topics.expand_template("queue.conversations", ["queue-1"])


@pytest.mark.parametrize(
    "topic",
    ["channel.metadata", "v2.system.socket_closing", f"v2.system.no_longer_subscribed.{USER_1}"],
)
def test_system_topics_are_refused(topic: str) -> None:
    with pytest.raises(topics.TopicError, match="system topics"):
        topics.validate_topic(topic)


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        (f"v2.users.{USER_1}?presence&routingStatus", "combined topics"),
        ("v2.users.not-a-guid.presence", "not a valid user id"),
        ("v2.users.{id}.presence", "must be concrete"),
        ("users.x.presence", "start with 'v2.'"),
        ("v2." + "a" * 200, "shorter than 200"),
        ("v2.users x", "only letters"),
    ],
)
def test_raw_topic_validation(topic: str, message: str) -> None:
    with pytest.raises(topics.TopicError, match=message):
        topics.validate_topic(topic)


def test_raw_topic_outside_catalogue_is_accepted_as_other() -> None:
    found = topics.validate_topic(f"v2.users.{USER_1}.station")
    assert found.family is topics.OTHER_FAMILY
    assert found.entity_id == USER_1


@pytest.mark.parametrize(
    ("topic", "family", "entity", "event"),
    [
        (f"v2.routing.queues.{QUEUE_1}.conversations", "queue.conversations", QUEUE_1, None),
        (f"v2.routing.queues.{QUEUE_1}.users", "queue.users", QUEUE_1, None),
        (f"v2.analytics.queues.{QUEUE_1}.observations", "queue.observations", QUEUE_1, None),
        (f"v2.users.{USER_1}.conversations", "user.conversations", USER_1, None),
        (f"v2.users.{USER_1}.presence", "user.presence", USER_1, None),
        (f"v2.users.{USER_1}.routingStatus", "user.routingStatus", USER_1, None),
        (f"v2.users.{USER_1}.activity", "user.activity", USER_1, None),
        (
            f"v2.detail.events.conversation.{CONV_1}.customer.start",
            "conversation.detail",
            CONV_1,
            "customer.start",
        ),
        (f"v2.routing.queues.{QUEUE_1}.conversations.calls", "other", QUEUE_1, None),
    ],
)
def test_match_topic(topic: str, family: str, entity: str, event: str | None) -> None:
    found = topics.match_topic(topic)
    assert (found.family.name, found.entity_id, found.detail_event) == (family, entity, event)


def test_default_routing_is_one_kafka_topic_per_family() -> None:
    router = topics.Router()
    assert router.topic_for("queue.conversations") == "genesys.queue.conversations"
    assert router.topic_for("other") == "genesys.other"


def test_routing_map_and_template() -> None:
    router = topics.Router("{connector}.{family}", {"user.presence": "presence"}, "prod")
    assert router.topic_for("user.presence") == "presence"
    assert router.topic_for("user.activity") == "prod.user.activity"


def test_config_expands_templates_and_raw_topics() -> None:
    config = GenesysNotificationsConfig.model_validate(
        base_config(
            **{
                "genesys.subscriptions": [
                    {"template": ["queue.conversations", "queue.observations"], "ids": [QUEUE_1]},
                    {"template": "user.presence", "ids": [USER_1, USER_1]},
                    {"topics": [f"v2.users.{USER_1}.station"]},
                    {"template": "conversation.detail", "ids": [CONV_1], "events": ["acw"]},
                ]
            }
        )
    )
    assert config.topics() == [
        f"v2.routing.queues.{QUEUE_1}.conversations",
        f"v2.analytics.queues.{QUEUE_1}.observations",
        f"v2.users.{USER_1}.presence",
        f"v2.users.{USER_1}.station",
        f"v2.detail.events.conversation.{CONV_1}.acw",
    ]
    assert config.genesys_client_secret.get_secret_value() == "demo-secret"
    assert "demo-secret" not in repr(config)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"genesys.subscriptions": [{"template": "queue.nope", "ids": [QUEUE_1]}]}, "queue.nope"),
        ({"genesys.subscriptions": [{"template": "user.presence", "ids": ["x"]}]}, "user id"),
        ({"genesys.subscriptions": [{"topic": "v2.system.socket_closing"}]}, "system topics"),
        ({"genesys.subscriptions": [{"topic": "v2.x.y", "template": "user.presence"}]}, "either"),
        (
            {
                "genesys.subscriptions": [
                    {"template": "user.presence", "ids": [USER_1], "events": ["acw"]}
                ]
            },
            "only applies",
        ),
        ({"genesys.region": "mars.pure.cloud"}, "genesys.region"),
        ({"genesys.regoin": "mypurecloud.com"}, "Extra inputs"),
        ({"topic.routing": {"queue.nope": "x"}}, "Invalid family"),
        ({"topic.routing": "bad topic {family}"}, "Invalid Kafka topic"),
        ({"liveness.timeout.ms": 1000, "ping.interval.ms": 2000}, "liveness.timeout.ms"),
        ({"genesys.login.url": "http://user:pw@host"}, "credentials in the URL"),
    ],
)
def test_config_rejects(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GenesysNotificationsConfig.model_validate(base_config(**overrides))


def test_region_and_explicit_hosts_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="not both"):
        GenesysNotificationsConfig.model_validate(
            base_config(**{"genesys.region": "mypurecloud.de"})
        )
    config = base_config(**{"genesys.region": "eu-central-1"})
    del config["genesys.login.url"], config["genesys.api.url"]
    hosts = GenesysNotificationsConfig.model_validate(config).hosts()
    assert (hosts.login, hosts.api) == (
        "https://login.mypurecloud.de",
        "https://api.mypurecloud.de",
    )


def test_spec_example_is_valid() -> None:
    for example in SPEC.examples:
        GenesysNotificationsConfig.model_validate(example)
