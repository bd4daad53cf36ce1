"""Exactly-once settings (KIP-618): Connect's keys, validated where they are written.

``exactly.once.support: required`` is refused on a worker without exactly-once and for a plugin
that does not declare it; ``transaction.boundary: connector`` needs a plugin that defines
boundaries; settings that have no effect are warnings.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from connector.api import SourceConnector
from connector.config.validate import format_warning, validate_paths
from connector.plugins.datagen.connector import DatagenSourceConnector
from connector.plugins.discovery import PluginEntry, discover


class PlainConnector(DatagenSourceConnector):
    """datagen's config and task, but none of its exactly-once declarations (the SPI's
    defaults)."""

    exactly_once_support = SourceConnector.exactly_once_support  # type: ignore[assignment]
    can_define_transaction_boundaries = (  # type: ignore[assignment]
        SourceConnector.can_define_transaction_boundaries
    )


def plugins() -> dict[str, PluginEntry]:
    return {**discover(), "plain": PluginEntry("plain", "tests:PlainConnector", PlainConnector)}


def write(tmp_path: Path, worker: str, connector: str, plugin: str = "datagen") -> Path:
    text = f"""
worker:
  bootstrap.servers: 127.0.0.1:9092
{textwrap.indent(worker, "  ")}
connectors:
  - name: orders
    plugin: {plugin}
    value.converter: string
    datagen.topic: orders
{textwrap.indent(connector, "    ")}
"""
    path = tmp_path / "deployment.yaml"
    path.write_text(text.lstrip())
    return path


def line_of(path: Path, text: str) -> int:
    return 1 + [line.strip() for line in path.read_text().splitlines()].index(text)


def check(tmp_path: Path, worker: str, connector: str, plugin: str = "datagen") -> Any:
    path = write(tmp_path, worker, connector, plugin)
    deployment, issues = validate_paths([path], environ={}, plugins=plugins())
    return path, deployment, [str(issue) for issue in issues]


def test_required_on_a_worker_without_exactly_once_is_refused_at_its_line(tmp_path: Path) -> None:
    path, deployment, issues = check(tmp_path, "", "exactly.once.support: required")
    assert deployment is None
    assert issues == [
        f"{path}:{line_of(path, 'exactly.once.support: required')}: "
        "connectors[orders].exactly.once.support: exactly-once delivery is required, but the "
        "worker has exactly.once.source.support: disabled (set it to enabled)"
    ]


def test_required_for_a_plugin_that_does_not_declare_support_is_refused(tmp_path: Path) -> None:
    path, deployment, issues = check(
        tmp_path,
        "exactly.once.source.support: enabled",
        "exactly.once.support: required",
        plugin="plain",
    )
    assert deployment is None
    assert issues == [
        f"{path}:{line_of(path, 'exactly.once.support: required')}: "
        "connectors[orders].exactly.once.support: exactly-once delivery is required, but "
        "plugin 'plain' does not support it with this configuration"
    ]


def test_connector_boundaries_need_a_plugin_that_defines_them(tmp_path: Path) -> None:
    path, deployment, issues = check(
        tmp_path,
        "exactly.once.source.support: enabled",
        "transaction.boundary: connector",
        plugin="plain",
    )
    assert deployment is None
    assert issues == [
        f"{path}:{line_of(path, 'transaction.boundary: connector')}: "
        "connectors[orders].transaction.boundary: transaction.boundary connector needs a plugin "
        "that defines its own transaction boundaries; 'plain' does not (use poll or interval)"
    ]


def test_a_plugin_that_declares_support_validates_with_every_boundary(tmp_path: Path) -> None:
    for boundary in ("poll", "interval", "connector"):
        _, deployment, issues = check(
            tmp_path,
            "exactly.once.source.support: enabled\ngroup.id: prod",
            f"exactly.once.support: required\ntransaction.boundary: {boundary}\n"
            "offsets.storage.topic: orders-offsets",
        )
        assert issues == [] and deployment is not None
        assert deployment.warnings == ()
        config = deployment.connectors[0].connector_config
        assert config.transaction_boundary == boundary
        assert config.offsets_storage_topic == "orders-offsets"
        assert deployment.worker.group_id == "prod"


@pytest.mark.parametrize(
    ("worker", "connector", "key", "message"),
    [
        (
            "",
            "transaction.boundary: interval",
            "transaction.boundary: interval",
            "transaction.boundary: ignored: the worker has exactly.once.source.support: disabled",
        ),
        (
            "exactly.once.source.support: enabled",
            "transaction.boundary.interval.ms: 500",
            "transaction.boundary.interval.ms: 500",
            "transaction.boundary.interval.ms: ignored: transaction.boundary is poll, not interval",
        ),
    ],
    ids=["worker-disabled", "interval-without-interval-boundary"],
)
def test_settings_without_effect_are_located_warnings(
    tmp_path: Path, worker: str, connector: str, key: str, message: str
) -> None:
    path, deployment, issues = check(tmp_path, worker, connector)
    assert issues == [] and deployment is not None
    assert [format_warning(w) for w in deployment.warnings] == [
        f"{path}:{line_of(path, key)}: warning: connectors[orders].{message}"
    ]


def test_an_undeclared_plugin_on_an_exactly_once_worker_is_warned_about(tmp_path: Path) -> None:
    _, deployment, issues = check(
        tmp_path, "exactly.once.source.support: enabled", "", plugin="plain"
    )
    assert issues == [] and deployment is not None
    assert [w.message for w in deployment.warnings] == [
        "plugin 'plain' does not declare exactly-once support: its records are written in "
        "transactions, but its source may still repeat or lose input after a restart"
    ]


@pytest.mark.parametrize(
    ("where", "setting", "expected"),
    [
        ("worker", "exactly.once.source.support: preparing", "'disabled' or 'enabled'"),
        ("connector", "exactly.once.support: always", "'requested' or 'required'"),
        ("connector", "transaction.boundary: batch", "'poll', 'interval' or 'connector'"),
        ("connector", "transaction.boundary.interval.ms: 0", "greater than or equal to 1"),
        ("connector", "offsets.storage.topic: 'bad topic'", "a Kafka topic name"),
    ],
)
def test_bad_values_are_refused_naming_the_choices(
    tmp_path: Path, where: str, setting: str, expected: str
) -> None:
    worker, connector = (setting, "") if where == "worker" else ("", setting)
    path, deployment, issues = check(tmp_path, worker, connector)
    assert deployment is None
    assert len(issues) == 1 and expected in issues[0], issues
    assert issues[0].startswith(f"{path}:{line_of(path, setting)}: ")
