"""Single message transforms (SMTs) and predicates, configured the Kafka Connect way::

    transforms: route,tag
    transforms.route.type: RegexRouter   # or org.apache.kafka.connect.transforms.RegexRouter
    transforms.route.regex: "genesys\\.(.*)"
    transforms.route.replacement: "cc.$1"
    transforms.tag.type: InsertHeader
    transforms.tag.header: source
    transforms.tag.value.literal: genesys
    transforms.tag.predicate: isPresence
    transforms.tag.negate: false
    predicates: isPresence
    predicates.isPresence.type: TopicNameMatches
    predicates.isPresence.pattern: ".*presence.*"

A transform returns a new record, or ``None`` to drop it (``Filter``); the runtime still
advances the dropped record's offset.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connector.api import SourceRecord

Transform = Callable[[SourceRecord], SourceRecord | None]
Predicate = Callable[[SourceRecord], bool]

_CONNECT_PREFIXES = (  # longest first: the predicates package is inside the transforms one
    "org.apache.kafka.connect.transforms.predicates.",
    "org.apache.kafka.connect.transforms.",
)


def _short(type_name: str) -> str:
    for prefix in _CONNECT_PREFIXES:
        if type_name.startswith(prefix):
            return type_name[len(prefix) :]
    return type_name


def _regex_router(config: Mapping[str, Any]) -> Transform:
    pattern = re.compile(str(config["regex"]))
    replacement = re.sub(r"\$(\d+)", r"\\\1", str(config["replacement"]))

    def route(record: SourceRecord) -> SourceRecord:
        if pattern.fullmatch(record.topic):
            # count=1: Java's replaceFirst. A pattern like (.*) also matches the empty string
            # at the end, which re.sub would replace a second time.
            return dataclasses.replace(
                record, topic=pattern.sub(replacement, record.topic, count=1)
            )
        return record

    return route


def _insert_header(config: Mapping[str, Any]) -> Transform:
    header = str(config["header"])
    value = str(config["value.literal"]).encode("utf-8")

    def insert(record: SourceRecord) -> SourceRecord:
        return dataclasses.replace(record, headers=[*(record.headers or ()), (header, value)])

    return insert


def _filter(config: Mapping[str, Any]) -> Transform:
    return lambda record: None


def _drop_headers(config: Mapping[str, Any]) -> Transform:
    names = {n.strip() for n in str(config["headers"]).split(",")}

    def drop(record: SourceRecord) -> SourceRecord:
        kept = [h for h in record.headers or () if h[0] not in names]
        return dataclasses.replace(record, headers=kept)

    return drop


TRANSFORMS: dict[str, tuple[Callable[[Mapping[str, Any]], Transform], tuple[str, ...]]] = {
    "RegexRouter": (_regex_router, ("regex", "replacement")),
    "InsertHeader": (_insert_header, ("header", "value.literal")),
    "Filter": (_filter, ()),
    "DropHeaders": (_drop_headers, ("headers",)),
}


def _topic_name_matches(config: Mapping[str, Any]) -> Predicate:
    pattern = re.compile(str(config["pattern"]))
    return lambda record: pattern.fullmatch(record.topic) is not None


def _has_header_key(config: Mapping[str, Any]) -> Predicate:
    name = str(config["name"])
    return lambda record: any(h[0] == name for h in record.headers or ())


PREDICATES: dict[str, tuple[Callable[[Mapping[str, Any]], Predicate], tuple[str, ...]]] = {
    "TopicNameMatches": (_topic_name_matches, ("pattern",)),
    "HasHeaderKey": (_has_header_key, ("name",)),
}


def _group(flat: Mapping[str, Any], alias: str) -> dict[str, Any]:
    prefix = alias + "."
    return {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}


def chain_issues(
    transforms: Sequence[str],
    transforms_config: Mapping[str, Any],
    predicates: Sequence[str],
    predicates_config: Mapping[str, Any],
) -> list[tuple[str, str]]:
    """Problems as (key, message) for ``connector validate``."""
    problems: list[tuple[str, str]] = []
    for kind, aliases, flat, known in (
        ("transforms", transforms, transforms_config, TRANSFORMS),
        ("predicates", predicates, predicates_config, PREDICATES),
    ):
        for alias in aliases:
            config = _group(flat, alias)
            type_name = _short(str(config.get("type", "")))
            if type_name not in known:
                problems.append(
                    (
                        f"{kind}.{alias}.type",
                        f"unknown type {config.get('type')!r} (expected one of {', '.join(known)})",
                    )
                )
                continue
            for key in known[type_name][1]:
                if key not in config:
                    problems.append((f"{kind}.{alias}.{key}", "missing required setting"))
            predicate = config.get("predicate")
            if kind == "transforms" and predicate is not None and predicate not in predicates:
                problems.append((f"{kind}.{alias}.predicate", f"unknown predicate {predicate!r}"))
        for key in flat:
            if key.split(".", 1)[0] not in aliases:
                problems.append(
                    (f"{kind}.{key}", f"'{key.split('.', 1)[0]}' is not listed in {kind}")
                )
    return problems


def build_chain(
    transforms: Sequence[str],
    transforms_config: Mapping[str, Any],
    predicates: Sequence[str],
    predicates_config: Mapping[str, Any],
) -> Transform | None:
    """The composed transform, or ``None`` when no transforms are configured (fast path)."""
    if not transforms:
        return None
    built_predicates = {
        alias: PREDICATES[_short(str(cfg["type"]))][0](cfg)
        for alias in predicates
        for cfg in [_group(predicates_config, alias)]
    }
    steps: list[tuple[Transform, Predicate | None, bool]] = []
    for alias in transforms:
        config = _group(transforms_config, alias)
        transform = TRANSFORMS[_short(str(config["type"]))][0](config)
        predicate = built_predicates.get(config["predicate"]) if "predicate" in config else None
        negate = str(config.get("negate", "false")).lower() == "true"
        steps.append((transform, predicate, negate))

    def apply(record: SourceRecord) -> SourceRecord | None:
        current: SourceRecord | None = record
        for transform, predicate, negate in steps:
            if predicate is not None and predicate(current) == negate:  # type: ignore[arg-type]
                continue
            current = transform(current)  # type: ignore[arg-type]
            if current is None:
                return None
        return current

    return apply
