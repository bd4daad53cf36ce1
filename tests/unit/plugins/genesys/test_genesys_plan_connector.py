from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from genesys_helpers import base_config

from connector.api import ConfigError
from connector.plugins.genesys import plan
from connector.plugins.genesys.connector import (
    GenesysNotificationsSourceConnector,
    catalogue_issues,
)
from connector.plugins.genesys.spec import GenesysNotificationsConfig
from connector.testing import MemoryOffsetReader


def _queues(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


def _config(queue_count: int, **overrides: Any) -> GenesysNotificationsConfig:
    subscriptions = [{"template": "queue.conversations", "ids": _queues(queue_count)}]
    return GenesysNotificationsConfig.model_validate(
        base_config(**{"genesys.subscriptions": subscriptions, **overrides})
    )


@dataclass
class _ConnectorContext:
    connector_name: str
    config: Any
    offset_reader: Any = None
    status: dict[str, Any] = field(default_factory=dict)
    logger: Any = field(default_factory=lambda: logging.LoggerAdapter(logging.getLogger("t"), {}))

    def set_status_detail(self, name: str, value: Any) -> None:
        self.status[name] = value


def _started(name: str, config: GenesysNotificationsConfig) -> GenesysNotificationsSourceConnector:
    connector = GenesysNotificationsSourceConnector()
    connector.start(_ConnectorContext(name, config, MemoryOffsetReader(name)))
    return connector


def test_packing_is_even_and_never_above_1000_topics() -> None:
    topics = [f"t{i}" for i in range(2500)]
    result = plan.make_plan(topics, max_topics=1000, usable_channels=19, max_tasks=2)
    assert [len(c.topics) for c in result.channels] == [834, 833, 833]
    assert sum((c.topics for c in result.channels), ()) == tuple(topics)
    assert result.tasks == ((0, 2), (1,))


def test_exactly_1000_topics_is_one_channel_and_tasks_never_exceed_channels() -> None:
    result = plan.make_plan(
        [f"t{i}" for i in range(1000)], max_topics=1000, usable_channels=19, max_tasks=4
    )
    assert len(result.channels) == 1 and result.tasks == ((0,),)


def test_a_plan_that_cannot_fit_says_how_many_channels_it_needs() -> None:
    with pytest.raises(plan.PlanError, match="20001 topics need 21 channels") as info:
        plan.make_plan(
            [f"t{i}" for i in range(20001)], max_topics=1000, usable_channels=19, max_tasks=1
        )
    assert info.value.channels_needed == 21


def test_validate_reports_the_needed_channel_count() -> None:
    config = _config(2500, **{"channel.max.topics": 100, "channels.max": 20})
    issues = GenesysNotificationsSourceConnector().validate(config)
    assert len(issues) == 1
    assert "need 25 channels" in issues[0].message and "19 channels are usable" in issues[0].message


def test_rotation_headroom_is_kept_out_of_the_plan() -> None:
    config = _config(1900, **{"channel.max.topics": 100})
    assert GenesysNotificationsSourceConnector().validate(config) == []
    config = _config(1901, **{"channel.max.topics": 100})
    assert "need 20 channels" in GenesysNotificationsSourceConnector().validate(config)[0].message


def test_task_configs_spread_channels_over_tasks() -> None:
    connector = _started("a", _config(250, **{"channel.max.topics": 100}))
    configs = connector.task_configs(2)
    assert [[c["index"] for c in t["channels"]] for t in configs] == [[0, 2], [1]]
    assert sum(len(c["topics"]) for t in configs for c in t["channels"]) == 250


def test_twenty_channel_budget_is_shared_by_connectors_with_the_same_client() -> None:
    first = _started("first", _config(1200, **{"channel.max.topics": 100}))
    first.task_configs(4)  # 12 channels
    second = _started("second", _config(800, **{"channel.max.topics": 100}))
    with pytest.raises(ConfigError) as info:
        second.task_configs(4)  # 8 more: 20 > 19 usable
    message = str(info.value)
    assert "first (12)" in message and "20 channels are needed" in message
    # another OAuth client has its own budget
    other = _started("other", _config(800, **{"channel.max.topics": 100, "genesys.client.id": "x"}))
    other.task_configs(4)
    # stopping the first connector frees its channels
    first.stop()
    second.task_configs(4)
    assert plan.CHANNEL_BUDGET.reserved(("http://127.0.0.1:1", "demo-client")) == 8


def test_gaps_topic_must_not_collide_with_a_family_topic() -> None:
    config = _config(1, **{"gaps.topic": "genesys.queue.conversations"})
    issues = GenesysNotificationsSourceConnector().validate(config)
    assert issues and issues[0].path == "gaps.topic"


def test_value_schemas_cover_every_routed_topic() -> None:
    schemas = GenesysNotificationsSourceConnector.value_schemas(_config(1))
    assert schemas["genesys.queue.conversations"].name.endswith("QueueConversation")
    assert schemas["genesys.gaps"].name.endswith("GapRecord")
    assert schemas["genesys.other"].name.endswith("NotificationEnvelope")


def test_catalogue_issues_flag_missing_and_current_user_templates() -> None:
    config = GenesysNotificationsConfig.model_validate(base_config())
    catalogue = [
        {"id": "v2.routing.queues.{id}.conversations"},
        {"id": "v2.users.{id}.presence", "requiresCurrentUser": True},
    ]
    messages = [i.message for i in catalogue_issues(config, catalogue)]
    assert any("v2.analytics.queues.{id}.observations is not offered" in m for m in messages)
    assert any("v2.users.{id}.presence requires the current user" in m for m in messages)


def test_entry_point_names_the_connector() -> None:
    from importlib.metadata import entry_points

    found = [
        e for e in entry_points(group="connector.plugins") if e.name == "genesys_notifications"
    ]
    if found:
        assert found[0].load() is GenesysNotificationsSourceConnector
    assert GenesysNotificationsSourceConnector.spec.name == "genesys_notifications"


def test_config_template_validates() -> None:
    import yaml

    from connector import examples
    from connector.api import PluginSpec

    path = examples.path("genesys")
    document = yaml.safe_load(path.read_text())
    (block,) = [c for c in document["connectors"] if c["plugin"] == "genesys_notifications"]
    envelope = ("name", "plugin", "tasks.max", "key.converter", "value.converter")
    plugin_keys = {
        k: v for k, v in block.items() if k not in envelope and not k.startswith("errors.")
    }
    plugin_keys["genesys.client.id"] = "id"
    plugin_keys["genesys.client.secret"] = "secret"
    spec: PluginSpec = GenesysNotificationsSourceConnector.spec
    config = spec.config_model.model_validate(plugin_keys)
    assert GenesysNotificationsSourceConnector().validate(config) == []
