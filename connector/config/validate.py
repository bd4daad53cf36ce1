"""Deployment files -> a validated :class:`Deployment`, or every problem at once.

Order: parse YAML (keeping lines) -> resolve ``${...}`` providers -> validate the worker block ->
for each connector split connector-config keys from plugin keys -> validate the connector config
-> validate the plugin block with the plugin's model -> the connector's own cross-field
``validate()``.
Each problem becomes a :class:`ConfigIssue` ``file:line: path: message``; secrets never appear:
every message passes through the deployment's :class:`~connector.config.redaction.Redactor`
on the way out, whichever check wrote it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from connector.api import (
    ConfigError,
    ConfigIssue,
    ConnectorTransactionBoundaries,
    ExactlyOnceSupport,
    SourceConnector,
)
from connector.config.loader import (
    DUPLICATE_KEY,
    KeyPath,
    SourceDocument,
    expand_paths,
    load_document,
)
from connector.config.models import (
    CONNECTOR_CONFIG_KEYS,
    CONVERTER_ALIASES,
    ENVELOPE_PREFIXES,
    WORKER_PREFIXES,
    ConnectorConfig,
    WorkerConfig,
)
from connector.config.providers import ProviderResolver
from connector.config.redaction import HIDDEN, Redactor, is_secret_key, secret_fields
from connector.plugins.discovery import PluginEntry, discover, find_plugin
from connector.serde.factory import check_converter_config
from connector.transforms.chain import chain_issues

_TOP_LEVEL_KEYS = ("worker", "connectors")


@dataclass(frozen=True)
class ConnectorDeployment:
    """One validated connector: its runtime settings (``ConnectorConfig``), the plugin's config
    and its class."""

    connector_config: ConnectorConfig
    plugin_config: BaseModel
    connector_class: type[SourceConnector]
    file: str

    @property
    def name(self) -> str:
        return self.connector_config.name


@dataclass(frozen=True)
class Deployment:
    """A whole validated deployment: one worker and its connectors."""

    worker: WorkerConfig
    connectors: tuple[ConnectorDeployment, ...]
    files: tuple[str, ...]
    warnings: tuple[ConfigIssue, ...] = ()
    """Legal but probably unintended settings (``connector validate`` prints them, exit 0)."""
    redactor: Redactor = field(default_factory=Redactor)
    """Knows this deployment's secrets: pass every message shown to users through it."""


def load_deployment(
    paths: Iterable[str | Path],
    *,
    plugins: Mapping[str, PluginEntry] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Deployment:
    """Validate ``paths`` and return the deployment; raise :class:`ConfigError` listing every
    issue when anything is wrong."""
    deployment, issues = validate_paths(paths, plugins=plugins, environ=environ)
    if issues or deployment is None:
        raise ConfigError(issues)
    return deployment


def validate_paths(
    paths: Iterable[str | Path],
    *,
    plugins: Mapping[str, PluginEntry] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Deployment | None, list[ConfigIssue]]:
    files = expand_paths(paths)
    issues: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []
    if not files:
        return None, [ConfigIssue("", "no deployment files given")]
    redactor = Redactor()
    plugins = discover() if plugins is None else plugins
    environ = os.environ if environ is None else environ
    worker: WorkerConfig | None = None
    worker_file: str | None = None
    connectors: list[ConnectorDeployment] = []
    located: list[tuple[ConnectorDeployment, _Reporter, KeyPath]] = []
    names: dict[str, str] = {}
    for path in files:
        document, load_issues = load_document(path)
        if document is None:
            issues.extend(load_issues)
            continue
        report = _Reporter(document, issues, warnings, redactor)
        data = document.data
        if data is None:
            report((), "the file is empty: expected 'worker:' and/or 'connectors:'")
            continue
        if not isinstance(data, dict):
            report((), "expected a mapping with 'worker:' and/or 'connectors:'")
            continue
        _label_connectors(data.get("connectors"), report)
        for key_path, line in document.duplicates:  # re-reported with connectors[<name>]
            issues.append(
                ConfigIssue(report.display(key_path), DUPLICATE_KEY, file=document.file, line=line)
            )
        resolver = ProviderResolver(path.parent, environ)
        data = resolver.resolve(data, (), report.unresolved)
        report.hidden = resolver.placeholder_paths
        redactor.add_values(data)
        for hidden in resolver.placeholder_paths:
            redactor.add_values(_value_at(data, hidden), secret=True)
        for key in data:
            if key not in _TOP_LEVEL_KEYS:
                report((key,), f"unknown key{_suggest(str(key), _TOP_LEVEL_KEYS)}")
        if "worker" in data:
            if worker_file is not None:
                report(("worker",), f"the worker is already configured in {worker_file}")
            else:
                worker_file = document.file
                worker = _validate_worker(data["worker"], report)
        for index, block in _connector_blocks(data.get("connectors"), report):
            # a repeated name is a problem even when the first connector of that name is invalid
            name = block.get("name")
            previous = names.get(name) if isinstance(name, str) else None
            if previous is not None:
                report(
                    ("connectors", index, "name"),
                    f"connector name '{name}' is already used in {previous}",
                )
            elif isinstance(name, str):
                names[name] = document.file
            validated = _validate_connector(block, ("connectors", index), plugins, report)
            if validated is None or previous is not None:
                continue
            connectors.append(validated)
            located.append((validated, report, ("connectors", index)))
    if worker is None and worker_file is None:
        worker = WorkerConfig()
    if worker is not None:
        for validated, report, path in located:
            connector_config = validated.connector_config
            for role, kind, config in (
                ("key", connector_config.key_converter, connector_config.key_converter_config),
                (
                    "value",
                    connector_config.value_converter,
                    connector_config.value_converter_config,
                ),
            ):
                if kind == "avro" and not (
                    config.get("schema.registry.url") or worker.schema_registry_url
                ):
                    report(
                        (*path, f"{role}.converter"),
                        "the avro converter needs a schema registry: set worker "
                        f"schema.registry.url or {role}.converter.schema.registry.url",
                    )
            _check_exactly_once(validated, worker, report, path)
    issues = [replace(issue, message=redactor(issue.message)) for issue in issues]
    if issues or worker is None:
        return None, issues
    return (
        Deployment(
            worker,
            tuple(connectors),
            tuple(str(f) for f in files),
            warnings=tuple(replace(w, message=redactor(w.message)) for w in warnings),
            redactor=redactor,
        ),
        issues,
    )


def validate_connector_map(
    config: Mapping[str, Any],
    *,
    plugins: Mapping[str, PluginEntry] | None = None,
    source: str = "<request>",
) -> tuple[ConnectorDeployment | None, list[ConfigIssue], list[ConfigIssue]]:
    """Validate one connector's settings given as a map (a REST request body, Connect's flat
    form): the same checks as a deployment file's connector block, without ``${...}``
    providers (a request must not read the worker's files or environment). Returns the
    validated connector (None when invalid), the issues (paths relative to the block: the key
    first) and the warnings, every message redacted."""
    plugins = discover() if plugins is None else plugins
    redactor = Redactor()
    redactor.add_values(dict(config))
    issues: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []
    report = _Reporter(SourceDocument(source, dict(config)), issues, warnings, redactor)
    validated = _validate_connector(dict(config), (), plugins, report)
    return (
        validated if not issues else None,
        [replace(i, message=redactor(i.message)) for i in issues],
        [replace(w, message=redactor(w.message)) for w in warnings],
    )


def _check_exactly_once(
    validated: ConnectorDeployment, worker: WorkerConfig, report: _Reporter, path: KeyPath
) -> None:
    """KIP-618's validation: ``exactly.once.support: required`` needs the worker's
    ``exactly.once.source.support: enabled`` and a plugin that declares support;
    ``transaction.boundary: connector`` needs a plugin that defines boundaries. Settings that
    have no effect are warned about."""
    config = validated.connector_config
    explicit = config.model_fields_set
    enabled = worker.exactly_once_source_support == "enabled"
    plugin = config.plugin
    instance = validated.connector_class()
    try:
        support = instance.exactly_once_support(validated.plugin_config)
        boundaries = instance.can_define_transaction_boundaries(validated.plugin_config)
    except Exception as exc:  # a plugin's hook must report, not crash validation
        report(path, f"plugin '{plugin}' failed to say whether it supports exactly-once: {exc}")
        return
    if config.exactly_once_support == "required":
        if not enabled:
            report(
                (*path, "exactly.once.support"),
                "exactly-once delivery is required, but the worker has "
                "exactly.once.source.support: disabled (set it to enabled)",
            )
        if support is not ExactlyOnceSupport.SUPPORTED:
            report(
                (*path, "exactly.once.support"),
                f"exactly-once delivery is required, but plugin '{plugin}' does not support it "
                "with this configuration",
            )
    elif enabled and support is not ExactlyOnceSupport.SUPPORTED:
        report.warn(
            path,
            f"plugin '{plugin}' does not declare exactly-once support: its records are written "
            "in transactions, but its source may still repeat or lose input after a restart",
        )
    if not enabled:
        for key in ("transaction_boundary", "transaction_boundary_interval_ms"):
            if key in explicit:
                report.warn(
                    (*path, key.replace("_", ".")),
                    "ignored: the worker has exactly.once.source.support: disabled",
                )
        return
    if (
        config.transaction_boundary == "connector"
        and boundaries is not ConnectorTransactionBoundaries.SUPPORTED
    ):
        report(
            (*path, "transaction.boundary"),
            f"transaction.boundary connector needs a plugin that defines its own transaction "
            f"boundaries; '{plugin}' does not (use poll or interval)",
        )
    if "transaction_boundary_interval_ms" in explicit and config.transaction_boundary != "interval":
        report.warn(
            (*path, "transaction.boundary.interval.ms"),
            f"ignored: transaction.boundary is {config.transaction_boundary}, not interval",
        )


def _value_at(data: Any, path: KeyPath) -> Any:
    """The value at ``path`` in a resolved document, or None."""
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


class _Reporter:
    """Turns a key path into a located issue; remembers connector display names."""

    def __init__(
        self,
        document: SourceDocument,
        issues: list[ConfigIssue],
        warnings: list[ConfigIssue],
        redactor: Redactor,
    ) -> None:
        self.document = document
        self.issues = issues
        self.warnings = warnings
        self.redactor = redactor
        self.labels: dict[KeyPath, str] = {}
        self._unresolved: set[KeyPath] = set()
        self.hidden: set[KeyPath] = set()  # values that came from ${env:...}/${file:...}

    def unresolved(self, path: KeyPath, message: str) -> None:
        """A placeholder failed: report it, and mute later complaints about the same value
        (which would only be about the placeholder text left in place)."""
        self._unresolved.add(path)
        self._emit(path, message)

    def __call__(self, path: KeyPath, message: str) -> None:
        if path not in self._unresolved:
            self._emit(path, message)

    def warn(self, path: KeyPath, message: str) -> None:
        """A legal setting that probably does not do what was meant."""
        self.warnings.append(self._issue(path, message))

    def _emit(self, path: KeyPath, message: str) -> None:
        self.issues.append(self._issue(path, message))

    def _issue(self, path: KeyPath, message: str) -> ConfigIssue:
        return ConfigIssue(
            self.display(path), message, file=self.document.file, line=self.document.line_of(path)
        )

    def display(self, path: KeyPath) -> str:
        text = ""
        for end, part in enumerate(path, start=1):
            if isinstance(part, int) or (end == 2 and path[0] == "connectors"):
                label = self.labels.get(path[:end], str(part))
                text += f"[{label}]"
            else:
                text += f".{part}" if text else str(part)
        return text


def _label_connectors(raw: Any, report: _Reporter) -> None:
    if isinstance(raw, list):
        for index, block in enumerate(raw):
            if isinstance(block, dict) and isinstance(block.get("name"), str):
                report.labels[("connectors", index)] = block["name"]


def _connector_blocks(raw: Any, report: _Reporter) -> list[tuple[int | str, dict[str, Any]]]:
    if raw is None:
        return []
    blocks: list[tuple[int | str, dict[str, Any]]] = []
    if isinstance(raw, dict):  # connectors: {name: {...}} is accepted too
        for name, block in raw.items():
            if not isinstance(block, dict):
                report(("connectors", name), "expected a mapping of connector settings")
                continue
            blocks.append((name, {"name": name, **block}))
        return blocks
    if not isinstance(raw, list):
        report(("connectors",), "expected a list of connectors")
        return []
    for index, block in enumerate(raw):
        if not isinstance(block, dict):
            report(("connectors", index), "expected a mapping of connector settings")
            continue
        if isinstance(block.get("name"), str):
            report.labels[("connectors", index)] = block["name"]
        blocks.append((index, block))
    return blocks


def _validate_worker(raw: Any, report: _Reporter) -> WorkerConfig | None:
    if not isinstance(raw, dict):
        report(("worker",), "expected a mapping of worker settings")
        return None
    fields = {f.alias for f in WorkerConfig.model_fields.values()}
    values: dict[str, Any] = {"producer": {}, "schema.registry": {}}
    for key, value in raw.items():
        prefix = next((p for p in WORKER_PREFIXES if key.startswith(p)), None)
        if key in fields and key not in values:
            values[key] = value
        elif key in ("producer", "schema.registry") and isinstance(value, dict):
            values[key].update(value)
        elif prefix is not None and key not in fields:
            values[prefix[:-1]][key[len(prefix) :]] = value
        else:
            values[key] = value
    try:
        return WorkerConfig.model_validate(values)
    except ValidationError as exc:
        _report_validation(exc, ("worker",), fields, report)
        return None


def _validate_connector(
    block: dict[str, Any],
    path: KeyPath,
    plugins: Mapping[str, PluginEntry],
    report: _Reporter,
) -> ConnectorDeployment | None:
    connector_values: dict[str, Any] = {}
    prefixed: dict[str, dict[str, Any]] = {p: {} for p in ENVELOPE_PREFIXES}
    plugin_values: dict[str, Any] = {}
    for key, value in block.items():
        key = str(key)
        prefix = next((p for p in ENVELOPE_PREFIXES if key.startswith(p)), None)
        if key in CONNECTOR_CONFIG_KEYS:
            connector_values["plugin" if key == "connector.class" else key] = value
        elif prefix is not None:
            prefixed[prefix][key[len(prefix) :]] = value
        else:
            plugin_values[key] = value
    for prefix, values in prefixed.items():
        connector_values[prefix + "*"] = values
    ok = True
    for role in ("key", "value"):
        kind = connector_values.get(f"{role}.converter", "string" if role == "key" else "avro")
        kind = CONVERTER_ALIASES.get(str(kind), str(kind))
        for key, message in check_converter_config(kind, prefixed[f"{role}.converter."]):
            report((*path, f"{role}.converter.{key}"), message)
            ok = False
    connector_config: ConnectorConfig | None = None
    try:
        connector_config = ConnectorConfig.model_validate(connector_values)
    except ValidationError as exc:
        ok = False
        _report_validation(exc, path, CONNECTOR_CONFIG_KEYS, report)
    if (
        connector_config is not None
        and connector_config.errors_tolerance == "none"
        and connector_config.errors_deadletterqueue_topic_name
    ):
        tolerance = "is none" if "errors.tolerance" in block else "defaults to none"
        report.warn(
            (*path, "errors.deadletterqueue.topic.name"),
            f"errors.tolerance {tolerance}, so the dead-letter topic is never used: the first "
            "bad record fails the task (set errors.tolerance: all to send bad records to it)",
        )
    if connector_config is not None:
        chain_problems = chain_issues(
            connector_config.transforms,
            prefixed["transforms."],
            connector_config.predicates,
            prefixed["predicates."],
        )
    else:
        chain_problems = []
    for key, message in chain_problems:
        report((*path, key), message)
        ok = False
    plugin_name = connector_values.get("plugin")
    if not isinstance(plugin_name, str):
        return None
    entry = find_plugin(plugins, plugin_name)
    plugin_path = path + ("plugin" if "plugin" in block else "connector.class",)
    if entry is None:
        report(
            plugin_path,
            f"unknown plugin '{plugin_name}'{_suggest(plugin_name, plugins)}"
            f" (installed: {', '.join(sorted(plugins)) or 'none'})",
        )
        return None
    if entry.connector_class is None:
        report(plugin_path, f"plugin '{plugin_name}' failed to load: {entry.error}")
        return None
    model = entry.connector_class.spec.config_model
    typed_secrets = secret_fields(model)
    for key in typed_secrets & plugin_values.keys():
        report.redactor.add_values(plugin_values[key], secret=True)
    try:
        plugin_config = model.model_validate(plugin_values)
    except ValidationError as exc:
        allowed = {f.alias or n for n, f in model.model_fields.items()} | CONNECTOR_CONFIG_KEYS
        _report_validation(exc, path, allowed, report, typed_secrets)
        return None
    for issue in entry.connector_class().validate(plugin_config):
        sub = tuple(int(p) if p.isdigit() else p for p in _split_issue_path(issue.path))
        report(path + sub, issue.message)
        ok = False
    if not ok or connector_config is None:
        return None
    return ConnectorDeployment(
        connector_config, plugin_config, entry.connector_class, report.document.file
    )


def _split_issue_path(path: str) -> list[str]:
    """``genesys.subscriptions[2].ids[0]`` -> the raw key path, keeping dotted keys whole.

    Plugin issue paths name the dotted key first, then ``[index]`` selectors and nested keys.
    """
    parts: list[str] = []
    head, _, rest = path.partition("[")
    if head:
        parts.append(head)
    while rest:
        index, _, rest = rest.partition("]")
        parts.append(index)
        if rest.startswith("."):
            nested, _, rest = rest[1:].partition("[")
            parts.append(nested)
        else:
            rest = rest[1:] if rest.startswith("[") else rest
    return parts


def _report_validation(
    exc: ValidationError,
    base: KeyPath,
    allowed: Iterable[str],
    report: _Reporter,
    secret_keys: frozenset[str] = frozenset(),
) -> None:
    """Each pydantic error as a located issue. The input value is quoted only when it is a
    scalar that is not secret: a model-level check's input is the whole block, secrets included.
    """
    for error in exc.errors():
        loc: tuple[Any, ...] = tuple(error["loc"])
        if loc and isinstance(loc[0], str) and loc[0].endswith(".*"):
            loc = (loc[0][:-1] + ".".join(str(p) for p in loc[1:]),)
        path = base + loc
        key = str(loc[-1]) if loc else ""
        kind = error["type"]
        if kind == "extra_forbidden":
            report(path, f"unknown key{_suggest(key, allowed)}")
        elif kind == "missing":
            report(path, "missing required setting")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            value = error.get("input")
            secret = (
                path in report.hidden
                or any(is_secret_key(str(p)) for p in loc)
                or bool(loc and loc[0] in secret_keys)
            )
            if secret:
                report.redactor.add(value)
            scalar = isinstance(value, str | int | float | bool | None)
            if message.startswith("Invalid value") or not loc or not scalar:
                report(path, message)  # a mapping or list is not quoted: it may hold secrets
            else:
                shown = HIDDEN if secret else repr(value)
                report(path, f"Invalid value {shown} for {'.'.join(map(str, loc))}: {message}")


def _suggest(key: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    return f" (did you mean '{match[0]}'?)" if match else ""


def format_issues(issues: Sequence[ConfigIssue]) -> str:
    return "\n".join(str(issue) for issue in issues)


def format_warning(issue: ConfigIssue) -> str:
    """``file:line: warning: path: message``, the compiler convention editors recognise."""
    where = f"{issue.file}:{issue.line}: " if issue.file and issue.line else ""
    where = f"{issue.file}: " if issue.file and not issue.line else where
    what = f"{issue.path}: {issue.message}" if issue.path else issue.message
    return f"{where}warning: {what}"
