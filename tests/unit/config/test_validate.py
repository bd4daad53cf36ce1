"""Deployment validation: every problem at once, located as ``file:line: path: message``."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from connector.api import ConfigError, ConfigIssue, PluginSpec, SourceConnector, TaskConfig
from connector.config.models import dotted
from connector.config.validate import load_deployment, validate_paths
from connector.plugins.datagen.connector import DatagenConfig, DatagenSourceTask
from connector.plugins.discovery import PluginEntry, discover

FIXTURES = Path(__file__).parents[2] / "fixtures" / "config"
_EXPECT = re.compile(r"#\s*expect:\s*(?P<path>\S+)\s*::\s*(?P<message>.+?)\s*$")


class VaultConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=dotted, populate_by_name=True)

    vault_url: str = Field(description="Where the vault is.")
    vault_secret: int = Field(description="A secret that happens to be numeric.")


class VaultConnector(SourceConnector):
    """A test plugin with a ``*.secret`` key."""

    spec = PluginSpec(name="vault", summary="test", version="0", config_model=VaultConfig)
    task_class = DatagenSourceTask

    def task_configs(self, max_tasks: int) -> list[TaskConfig]:
        return [{}]


def plugins() -> Mapping[str, PluginEntry]:
    return {**discover(), "vault": PluginEntry("vault", "tests:VaultConnector", VaultConnector)}


def expectations(path: Path) -> set[tuple[int, str, str]]:
    """``(line, issue path, message fragment)`` from the file's ``# expect:`` comments."""
    found = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECT.search(line)
        if match:
            found.add((number, match["path"], match["message"]))
    return found


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_every_problem_is_reported_at_once_on_its_own_line() -> None:
    path = FIXTURES / "many_problems.yaml"
    expected = expectations(path)
    assert len(expected) >= 15  # the fixture itself must not rot into an empty check

    deployment, issues = validate_paths([path], plugins=plugins(), environ={})

    assert deployment is None
    assert all(issue.file == str(path) for issue in issues)
    assert sorted((i.line or 0, i.path) for i in issues) == sorted(
        (line, where) for line, where, _ in expected
    )
    by_location = {(i.line, i.path): i.message for i in issues}
    for line, where, fragment in expected:
        assert fragment in by_location[(line, where)], f"line {line}: {by_location[(line, where)]}"


def test_issues_print_as_file_line_path_message() -> None:
    path = FIXTURES / "many_problems.yaml"
    _, issues = validate_paths([path], plugins=plugins(), environ={})
    lines = [str(issue) for issue in issues]
    assert (
        f"{path}:13: connectors[orders].tasks.maxx: unknown key (did you mean 'tasks.max'?)"
        in lines
    )
    assert all(re.match(rf"{re.escape(str(path))}:\d+: \S+: .+", line) for line in lines)


def test_secret_and_provided_values_never_appear_in_messages() -> None:
    _, issues = validate_paths([FIXTURES / "many_problems.yaml"], plugins=plugins(), environ={})
    text = "\n".join(str(issue) for issue in issues)
    assert "hunter2" not in text  # a *.secret key
    assert "topsecret" not in text  # a value read through ${file:...}
    assert text.count("[hidden]") == 2


def test_a_value_from_the_environment_is_hidden_when_invalid(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "env.yaml",
        """
        connectors:
          - name: orders
            plugin: datagen
            value.converter: string
            datagen.topic: orders
            datagen.count: ${env:ORDERS_COUNT}
        """,
    )
    _, issues = validate_paths([path], environ={"ORDERS_COUNT": "s3cr3t-token"})
    assert [str(i) for i in issues] == [
        f"{path}:6: connectors[orders].datagen.count: Invalid value [hidden] for datagen.count: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_load_deployment_raises_config_error_with_every_issue() -> None:
    with pytest.raises(ConfigError) as info:
        load_deployment([FIXTURES / "many_problems.yaml"], plugins=plugins(), environ={})
    assert len(info.value.issues) == len(expectations(FIXTURES / "many_problems.yaml"))
    assert str(info.value).splitlines() == [str(issue) for issue in info.value.issues]


def test_placeholders_resolve_from_env_and_a_properties_file_beside_the_yaml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # the properties path is relative to the YAML, not the cwd
    deployment = load_deployment(
        [FIXTURES / "valid_datagen.yaml"], environ={"FIXTURE_BOOTSTRAP": "kafka-1:9092"}
    )
    assert deployment.worker.bootstrap_servers == "kafka-1:9092"
    assert deployment.worker.offset_storage_topic == "fixture-offsets"
    assert deployment.worker.offset_flush_interval_ms == 250
    (connector,) = deployment.connectors
    assert connector.name == "orders"
    assert connector.connector_config.tasks_max == 2
    assert connector.connector_config.transforms == ["route"]
    assert connector.connector_config.transforms_config["route.replacement"] == "shop.$1"
    config = connector.plugin_config
    assert isinstance(config, DatagenConfig)
    assert (config.datagen_topic, config.datagen_count) == ("orders-from-file", 25)


def test_a_missing_properties_file_is_reported_where_it_is_used(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "file.yaml",
        """
        connectors:
          - name: orders
            plugin: datagen
            value.converter: string
            datagen.topic: ${file:nowhere.properties:topic}
        """,
    )
    _, issues = validate_paths([path], environ={})
    assert [(i.line, i.path) for i in issues] == [(5, "connectors[orders].datagen.topic")]
    assert f"cannot read {tmp_path / 'nowhere.properties'}" in issues[0].message


@pytest.mark.parametrize(
    ("fixture", "line", "message"),
    [
        ("unclosed_quote.yaml", 5, "invalid YAML: found unexpected end of stream"),
        ("bad_indentation.yaml", 5, "invalid YAML: expected <block end>"),
    ],
)
def test_bad_yaml_syntax_names_the_line(fixture: str, line: int, message: str) -> None:
    path = FIXTURES / fixture
    deployment, issues = validate_paths([path], environ={})
    assert deployment is None
    assert len(issues) == 1
    assert (issues[0].file, issues[0].line) == (str(path), line)
    assert issues[0].message.startswith(message)


def test_duplicate_keys_are_reported_at_the_second_occurrence(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dup.yaml",
        """
        worker:
          bootstrap.servers: a:9092
          bootstrap.servers: b:9092
        connectors:
          orders:
            plugin: datagen
            value.converter: string
            datagen.topic: t
            datagen.topic: u
        """,
    )
    _, issues = validate_paths([path], environ={})
    assert [(i.line, i.path, i.message.split(" (")[0]) for i in issues] == [
        (3, "worker.bootstrap.servers", "duplicate key"),
        (9, "connectors[orders].datagen.topic", "duplicate key"),
    ]


def test_connectors_given_as_a_mapping_are_addressed_by_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "map.yaml",
        """
        connectors:
          orders:
            plugin: datagen
            value.converter: string
            datagen.topic: orders
            datagen.cont: 5
        """,
    )
    _, issues = validate_paths([path], environ={})
    assert [str(i) for i in issues] == [
        f"{path}:6: connectors[orders].datagen.cont: unknown key (did you mean 'datagen.count'?)"
    ]


def test_a_connector_without_name_is_addressed_by_index(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "noname.yaml",
        """
        connectors:
          - plugin: datagen
            value.converter: string
            datagen.topic: orders
        """,
    )
    _, issues = validate_paths([path], environ={})
    assert [(i.line, i.path, i.message) for i in issues] == [
        (2, "connectors[0].name", "missing required setting")
    ]


def test_problems_in_several_files_are_all_reported(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "a.yaml",
        """
        worker:
          bootstrap.servers: a:9092
        connectors:
          - name: orders
            plugin: datagen
            value.converter: string
            datagen.topic: orders
        """,
    )
    second = write(
        tmp_path,
        "b.yaml",
        """
        worker:
          bootstrap.servers: b:9092
        connectors:
          - name: orders
            plugin: datagen
            value.converter: string
            datagen.topic: orders
          - name: bad
            plugin: datagen
            value.converter: string
            datagen.topic: t
            datagen.partitions: 0
        """,
    )
    _, issues = validate_paths([tmp_path], environ={})  # a directory expands to its YAML files
    assert [(i.file, i.line, i.path) for i in issues] == [
        (str(second), 1, "worker"),
        (str(second), 4, "connectors[orders].name"),
        (str(second), 12, "connectors[bad].datagen.partitions"),
    ]
    assert f"already configured in {first}" in issues[0].message
    assert f"already used in {first}" in issues[1].message


def test_avro_without_any_registry_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "avro.yaml",
        """
        connectors:
          - name: orders
            plugin: datagen
            datagen.topic: orders
        """,
    )
    _, issues = validate_paths([path], environ={})
    assert [(i.line, i.path) for i in issues] == [(2, "connectors[orders].value.converter")]
    assert "needs a schema registry" in issues[0].message


def test_converter_and_transform_settings_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "settings.yaml",
        """
        worker:
          schema.registry.url: mock://x
        connectors:
          - name: orders
            plugin: datagen
            datagen.topic: orders
            value.converter.auto.register.schemas: perhaps
            value.converter.value.subject.name.strategy: Nope
            transforms: route
            transforms.route.type: RegexRouter
            transforms.route.regex: "(.*)"
        """,
    )
    _, issues = validate_paths([path], environ={})
    assert sorted((i.line, i.path) for i in issues) == [
        (4, "connectors[orders].transforms.route.replacement"),
        (7, "connectors[orders].value.converter.auto.register.schemas"),
        (8, "connectors[orders].value.converter.value.subject.name.strategy"),
    ]


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.yaml", "")
    missing = tmp_path / "missing.yaml"
    _, issues = validate_paths([empty, missing], environ={})
    assert [(i.file, i.message.split(":")[0]) for i in issues] == [
        (str(empty), "the file is empty"),
        (str(missing), "file not found"),
    ]
    assert validate_paths([], environ={}) == (None, [ConfigIssue("", "no deployment files given")])
