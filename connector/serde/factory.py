"""Builds a connector's key and value converters from its ``key.converter``/``value.converter``
settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.serde.avro import AvroConverter
from connector.serde.converter import BytesConverter, Converter, JsonConverter, StringConverter
from connector.serde.registry import strategy_named

_AVRO_KEYS = {
    "schema.registry.url",
    "auto.register.schemas",
    "use.latest.version",
    "normalize.schemas",
    "key.subject.name.strategy",
    "value.subject.name.strategy",
    "basic.auth.user.info",
    "basic.auth.credentials.source",
}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"expected true or false, got {value!r}")


_FLAG_DEFAULTS = {
    "auto.register.schemas": True,
    "use.latest.version": False,
    "normalize.schemas": False,
}


def converter_flag(config: Mapping[str, Any], key: str) -> bool:
    """A boolean Avro converter setting with Confluent's default, read the same way by the
    converter and by ``connector validate --connect``."""
    return _bool(config.get(key, _FLAG_DEFAULTS[key]))


def check_converter_config(kind: str, config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems as (key, message): unknown keys and bad values, Confluent's
    "Unrecognized properties" lesson."""
    problems: list[tuple[str, str]] = []
    allowed = _AVRO_KEYS if kind == "avro" else {"schemas.enable"} if kind == "json" else set()
    for key, value in config.items():
        if key not in allowed:
            problems.append((key, f"unknown setting for the {kind} converter"))
        elif key == "schemas.enable" and value not in (False, "false"):
            problems.append((key, "only schemas.enable=false (schemaless JSON) is supported"))
        elif key.endswith("subject.name.strategy"):
            try:
                strategy_named(str(value))
            except ValueError as exc:
                problems.append((key, str(exc)))
        elif key in _FLAG_DEFAULTS:
            try:
                _bool(value)
            except ValueError as exc:
                problems.append((key, str(exc)))
    return problems


def registry_client(url: str, extra: Mapping[str, Any]) -> SchemaRegistryClient:
    # The runtime retries with its own backoff (errors.retry.*); the client's retries would only
    # hide an outage for seconds per attempt.
    conf: dict[str, Any] = {"url": url, "max.retries": 0}
    for key in ("basic.auth.user.info", "basic.auth.credentials.source"):
        if key in extra:
            conf[key] = extra[key]
    return SchemaRegistryClient(conf)


def make_converter(
    kind: str,
    config: Mapping[str, Any],
    *,
    is_key: bool,
    worker_registry_url: str | None,
    worker_registry_config: Mapping[str, Any] | None = None,
    clients: dict[str, SchemaRegistryClient] | None = None,
) -> Converter:
    """A converter for ``kind`` (string/json/avro/bytes). ``clients`` shares registry clients
    (and their caches) between connectors that use the same registry URL."""
    if kind == "string":
        return StringConverter()
    if kind == "json":
        return JsonConverter()
    if kind == "bytes":
        return BytesConverter()
    url = str(config.get("schema.registry.url") or worker_registry_url or "")
    extra = {**(worker_registry_config or {}), **config}
    if clients is not None:
        if url not in clients:
            clients[url] = registry_client(url, extra)
        client = clients[url]
    else:
        client = registry_client(url, extra)
    strategy_key = "key.subject.name.strategy" if is_key else "value.subject.name.strategy"
    return AvroConverter(
        client,
        is_key=is_key,
        subject_name_strategy=strategy_named(str(config.get(strategy_key, "TopicNameStrategy"))),
        auto_register_schemas=converter_flag(config, "auto.register.schemas"),
        use_latest_version=converter_flag(config, "use.latest.version"),
        normalize_schemas=converter_flag(config, "normalize.schemas"),
    )
