"""The SMT chain: RegexRouter, InsertHeader, Filter, DropHeaders and predicates with negate."""

from __future__ import annotations

from typing import Any

import pytest

from connector.api import SourceRecord
from connector.transforms.chain import build_chain, chain_issues

CONNECT = "org.apache.kafka.connect.transforms."


def chain(transforms: str, predicates: str = "", **settings: Any) -> Any:
    """``build_chain`` from flat ``transforms.*``/``predicates.*`` settings (dots as ``__``)."""
    flat = {key.replace("__", "."): value for key, value in settings.items()}
    t_config = {k[len("transforms.") :]: v for k, v in flat.items() if k.startswith("transforms.")}
    p_config = {k[len("predicates.") :]: v for k, v in flat.items() if k.startswith("predicates.")}
    t_aliases = [a for a in transforms.split(",") if a]
    p_aliases = [a for a in predicates.split(",") if a]
    assert chain_issues(t_aliases, t_config, p_aliases, p_config) == []
    return build_chain(t_aliases, t_config, p_aliases, p_config)


def record(topic: str = "genesys.users", headers: Any = None) -> SourceRecord:
    return SourceRecord(topic, {"v": 1}, key="k", source_offset={"seq": 1}, headers=headers)


def test_no_transforms_is_the_fast_path() -> None:
    assert build_chain([], {}, [], {}) is None


@pytest.mark.parametrize("type_name", ["RegexRouter", CONNECT + "RegexRouter"])
def test_regex_router_rewrites_matching_topics_with_java_group_references(type_name: str) -> None:
    route = chain(
        "route",
        transforms__route__type=type_name,
        transforms__route__regex=r"genesys\.(.*)",
        transforms__route__replacement="cc.$1",
    )
    routed = route(record("genesys.users"))
    assert routed.topic == "cc.users"
    assert (routed.value, routed.key, routed.source_offset) == ({"v": 1}, "k", {"seq": 1})


def test_regex_router_leaves_topics_that_do_not_match_entirely() -> None:
    route = chain(
        "route",
        transforms__route__type="RegexRouter",
        transforms__route__regex=r"genesys\.(.*)",
        transforms__route__replacement="cc.$1",
    )
    assert route(record("xgenesys.users")).topic == "xgenesys.users"


def test_regex_router_replaces_once_like_java_replace_first() -> None:
    route = chain(
        "route",
        transforms__route__type="RegexRouter",
        transforms__route__regex="(.*)",
        transforms__route__replacement="$1-copy",
    )
    assert route(record("orders")).topic == "orders-copy"


def test_insert_header_appends_a_literal_and_keeps_existing_headers() -> None:
    tag = chain(
        "tag",
        transforms__tag__type=CONNECT + "InsertHeader",
        transforms__tag__header="source",
        transforms__tag__value__literal="genesys",
    )
    tagged = tag(record(headers=[("trace", b"1")]))
    assert list(tagged.headers) == [("trace", b"1"), ("source", b"genesys")]
    assert tag(record()).headers == [("source", b"genesys")]


def test_filter_without_predicate_drops_everything() -> None:
    drop = chain("drop", transforms__drop__type="Filter")
    assert drop(record()) is None


@pytest.mark.parametrize(
    ("negate", "dropped", "kept"),
    [
        ("false", "v2.users.1.presence", "v2.users.1.activity"),
        ("true", "v2.users.1.activity", "v2.users.1.presence"),
    ],
)
def test_filter_with_predicate_and_negate(negate: str, dropped: str, kept: str) -> None:
    drop = chain(
        "drop",
        "isPresence",
        transforms__drop__type=CONNECT + "Filter",
        transforms__drop__predicate="isPresence",
        transforms__drop__negate=negate,
        predicates__isPresence__type=CONNECT + "predicates.TopicNameMatches",
        predicates__isPresence__pattern=".*presence",
    )
    assert drop(record(dropped)) is None
    assert drop(record(kept)).topic == kept


def test_has_header_key_predicate_guards_a_transform() -> None:
    route = chain(
        "route",
        "marked",
        transforms__route__type="RegexRouter",
        transforms__route__regex="(.*)",
        transforms__route__replacement="marked.$1",
        transforms__route__predicate="marked",
        predicates__marked__type="HasHeaderKey",
        predicates__marked__name="mark",
    )
    assert route(record("t", headers=[("mark", b"")])).topic == "marked.t"
    assert route(record("t")).topic == "t"


def test_transforms_run_in_order_and_see_earlier_results() -> None:
    steps = chain(
        "route,tag,drop",
        "isCc",
        transforms__route__type="RegexRouter",
        transforms__route__regex=r"genesys\.(.*)",
        transforms__route__replacement="cc.$1",
        transforms__tag__type="InsertHeader",
        transforms__tag__header="routed",
        transforms__tag__value__literal="yes",
        transforms__tag__predicate="isCc",
        transforms__drop__type="DropHeaders",
        transforms__drop__headers="trace, other",
        predicates__isCc__type="TopicNameMatches",
        predicates__isCc__pattern=r"cc\..*",
    )
    result = steps(record("genesys.users", headers=[("trace", b"1"), ("keep", b"2")]))
    assert result.topic == "cc.users"
    assert list(result.headers) == [("keep", b"2"), ("routed", b"yes")]
    untouched = steps(record("other", headers=[("trace", b"1")]))
    assert (untouched.topic, list(untouched.headers)) == ("other", [])


def test_a_filter_stops_the_chain() -> None:
    steps = chain(
        "drop,tag",
        transforms__drop__type="Filter",
        transforms__tag__type="InsertHeader",
        transforms__tag__header="h",
        transforms__tag__value__literal="v",
    )
    assert steps(record()) is None


def test_chain_issues_name_each_bad_setting() -> None:
    issues = dict(
        chain_issues(
            ["route", "mystery", "tag"],
            {
                "route.type": "RegexRouter",
                "route.regex": "x",
                "mystery.type": "com.acme.Mystery",
                "tag.type": "InsertHeader",
                "tag.header": "h",
                "tag.value.literal": "v",
                "tag.predicate": "nope",
                "orphan.type": "Filter",
            },
            ["p"],
            {"p.type": "TopicNameMatches"},
        )
    )
    assert set(issues) == {
        "transforms.route.replacement",
        "transforms.mystery.type",
        "transforms.tag.predicate",
        "transforms.orphan.type",
        "predicates.p.pattern",
    }
    assert issues["transforms.route.replacement"] == "missing required setting"
    assert "unknown type 'com.acme.Mystery'" in issues["transforms.mystery.type"]
    assert issues["transforms.tag.predicate"] == "unknown predicate 'nope'"
    assert issues["transforms.orphan.type"] == "'orphan' is not listed in transforms"
