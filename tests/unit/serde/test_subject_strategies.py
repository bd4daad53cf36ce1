"""Subject name strategies and converter settings, as Confluent's serializers name them."""

from __future__ import annotations

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.api import AvroSchema
from connector.serde.avro import AvroConverter, record_full_name
from connector.serde.factory import check_converter_config, make_converter
from connector.serde.registry import (
    record_name_strategy,
    strategy_named,
    topic_name_strategy,
    topic_record_name_strategy,
)

FQCN = "io.confluent.kafka.serializers.subject."
SCHEMA = AvroSchema(
    "com.example.Reading",
    {
        "type": "record",
        "name": "Reading",
        "namespace": "com.example",
        "fields": [{"name": "v", "type": "long"}],
    },
)


def test_topic_name_strategy_appends_key_or_value() -> None:
    assert topic_name_strategy("orders", "com.example.Order", False) == "orders-value"
    assert topic_name_strategy("orders", "com.example.Order", True) == "orders-key"


def test_record_name_strategy_is_the_full_record_name_without_suffix() -> None:
    assert record_name_strategy("orders", "com.example.Order", False) == "com.example.Order"
    assert record_name_strategy("orders", "com.example.Order", True) == "com.example.Order"


def test_topic_record_name_strategy_joins_topic_and_record_name() -> None:
    assert (
        topic_record_name_strategy("orders", "com.example.Order", True)
        == "orders-com.example.Order"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("TopicNameStrategy", "t-value"),
        (FQCN + "TopicNameStrategy", "t-value"),
        ("RecordNameStrategy", "com.example.Reading"),
        (FQCN + "RecordNameStrategy", "com.example.Reading"),
        ("TopicRecordNameStrategy", "t-com.example.Reading"),
        (FQCN + "TopicRecordNameStrategy", "t-com.example.Reading"),
    ],
)
def test_short_and_confluent_class_names_select_the_same_strategy(name: str, expected: str) -> None:
    assert strategy_named(name)("t", "com.example.Reading", False) == expected


def test_unknown_strategy_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown subject name strategy 'TopicStrategy'") as info:
        strategy_named("TopicStrategy")
    assert "RecordNameStrategy" in str(info.value)


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"name": "Reading", "namespace": "com.example"}, "com.example.Reading"),
        ({"name": "a.b.Reading", "namespace": "ignored"}, "a.b.Reading"),
        ({"name": "Reading"}, "Reading"),
    ],
)
def test_record_full_name_follows_avro_naming(definition: dict[str, str], expected: str) -> None:
    assert record_full_name(definition) == expected


@pytest.mark.parametrize(
    ("config", "is_key", "subject"),
    [
        ({}, False, "readings-value"),
        ({}, True, "readings-key"),
        (
            {"value.subject.name.strategy": FQCN + "RecordNameStrategy"},
            False,
            "com.example.Reading",
        ),
        (
            {"key.subject.name.strategy": "TopicRecordNameStrategy"},
            True,
            "readings-com.example.Reading",
        ),
        # the key strategy does not apply to the value converter, and vice versa
        ({"key.subject.name.strategy": "RecordNameStrategy"}, False, "readings-value"),
    ],
)
def test_make_converter_registers_under_the_configured_subject(
    config: dict[str, str], is_key: bool, subject: str
) -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://strategies"})
    clients = {"mock://strategies": client}
    converter = make_converter(
        "avro", config, is_key=is_key, worker_registry_url="mock://strategies", clients=clients
    )
    assert isinstance(converter, AvroConverter)
    converter.convert("readings", {"v": 1}, SCHEMA)
    assert client.get_subjects() == [subject]


def test_make_converter_shares_one_registry_client_per_url() -> None:
    clients: dict[str, SchemaRegistryClient] = {}
    for _ in range(2):
        make_converter("avro", {}, is_key=False, worker_registry_url="mock://a", clients=clients)
    make_converter(
        "avro",
        {"schema.registry.url": "mock://b"},
        is_key=False,
        worker_registry_url="mock://a",
        clients=clients,
    )
    assert sorted(clients) == ["mock://a", "mock://b"]


def test_converter_config_problems_are_reported_per_key() -> None:
    problems = dict(
        check_converter_config(
            "avro",
            {
                "schema.registry.url": "http://registry",
                "auto.register.schemas": "maybe",
                "value.subject.name.strategy": "NoSuchStrategy",
                "schemas.enable": False,
            },
        )
    )
    assert set(problems) == {
        "auto.register.schemas",
        "value.subject.name.strategy",
        "schemas.enable",
    }
    assert "true or false" in problems["auto.register.schemas"]
    assert "unknown setting for the avro converter" in problems["schemas.enable"]


def test_valid_converter_configs_have_no_problems() -> None:
    assert check_converter_config("json", {"schemas.enable": "false"}) == []
    assert (
        check_converter_config(
            "avro",
            {
                "auto.register.schemas": "false",
                "use.latest.version": True,
                "value.subject.name.strategy": FQCN + "TopicRecordNameStrategy",
            },
        )
        == []
    )
    assert check_converter_config("json", {"schemas.enable": True}) == [
        ("schemas.enable", "only schemas.enable=false (schemaless JSON) is supported")
    ]
