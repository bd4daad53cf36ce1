"""The deployment's runtime settings: worker settings and the runtime's part of each connector.

Keys are Kafka Connect's where Connect has the same setting. Python attributes are their
snake_case twins, mapped by one alias generator (``tasks_max`` <-> ``tasks.max``). Connector keys
that are not connector-config keys belong to the plugin and are validated by its own config model.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

CONVERTER_ALIASES: dict[str, str] = {
    "string": "string",
    "org.apache.kafka.connect.storage.StringConverter": "string",
    "json": "json",
    "org.apache.kafka.connect.json.JsonConverter": "json",
    "avro": "avro",
    "io.confluent.connect.avro.AvroConverter": "avro",
    "bytes": "bytes",
    "org.apache.kafka.connect.converters.ByteArrayConverter": "bytes",
}

# Connector keys with these prefixes are maps handed on verbatim (converter, client settings).
ENVELOPE_PREFIXES: tuple[str, ...] = (
    "key.converter.",
    "value.converter.",
    "producer.override.",
    "transforms.",
    "predicates.",
)
WORKER_PREFIXES: tuple[str, ...] = ("producer.", "schema.registry.")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def dotted(name: str) -> str:
    """``tasks_max`` -> ``tasks.max``: the alias generator shared by every config model."""
    return name.replace("_", ".")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=dotted, populate_by_name=True, frozen=True
    )


class WorkerConfig(_Model):
    """Settings of the worker process (``worker:`` in the deployment YAML)."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]."
    )
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible schema registry URL (Apicurio: .../apis/ccompat/v7).",
    )
    offset_storage_topic: str = Field("connect-offsets", description="The offsets topic.")
    offset_storage_partitions: int = Field(25, ge=1, description="Partitions when created.")
    offset_storage_replication_factor: int = Field(
        -1, description="Replication factor when created; -1 uses the broker default."
    )
    offset_flush_interval_ms: int = Field(
        60000, ge=1, description="How often each task commits its acked offsets."
    )
    offset_flush_timeout_ms: int = Field(
        5000, ge=1, description="How long an offsets write may take before it is retried."
    )
    task_shutdown_graceful_timeout_ms: int = Field(
        5000, ge=0, description="How long a stopping task may take to flush and commit."
    )
    task_restart_backoff_initial_ms: int = Field(
        1000, ge=1, description="First delay before restarting a failed task."
    )
    task_restart_backoff_max_ms: int = Field(
        60000, ge=1, description="Cap of the exponential delay between task restarts."
    )
    task_restart_max_retries: int = Field(
        -1, ge=-1, description="Restarts before a task stays FAILED; -1 means no limit."
    )
    exactly_once_source_support: Literal["disabled", "enabled"] = Field(
        "disabled",
        description=(
            "enabled: every source task writes its records, dead letters and offsets in Kafka "
            "transactions (KIP-618); consumers with isolation.level=read_committed see each "
            "record once."
        ),
    )
    group_id: str = Field(
        "connect-cluster",
        min_length=1,
        description=(
            "Names this worker's cluster: task transactional ids are "
            "<group.id>-<connector>-<task> (Connect's format), so two workers with the same "
            "group.id running the same connector fence each other's tasks."
        ),
    )
    rest_port: int | None = Field(
        None, ge=0, le=65535, description="Port of the Connect-style REST API; off when unset."
    )
    rest_host: str = Field("127.0.0.1", description="Address the REST API listens on.")
    listeners: str | None = Field(
        None,
        description="Connect's REST listener, e.g. http://0.0.0.0:8083 (http://:8083 binds every "
        "interface); overrides rest.host and rest.port when set.",
    )
    rest_basic_auth_user: str | None = Field(
        None,
        description="With rest.basic.auth.password: HTTP basic authentication required for every "
        "REST request that changes something (PUT, POST, PATCH, DELETE).",
    )
    rest_basic_auth_password: SecretStr | None = Field(
        None, description="Password of rest.basic.auth.user (use ${env:...} or ${file:...})."
    )
    producer: dict[str, Any] = Field(
        default_factory=dict,
        description="librdkafka producer settings (``producer.linger.ms`` ...), verbatim.",
    )
    schema_registry: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra schema registry client settings (``schema.registry.basic.auth...``).",
    )

    @model_validator(mode="after")
    def _check_rest(self) -> WorkerConfig:
        if (self.rest_basic_auth_user is None) != (self.rest_basic_auth_password is None):
            raise ValueError(
                "set both rest.basic.auth.user and rest.basic.auth.password, or neither"
            )
        if self.listeners is not None:
            listener_address(self.listeners)  # raises ValueError with the reason
        return self

    def rest_address(self) -> tuple[str, int] | None:
        """Where the REST API listens: ``listeners`` when set, else rest.host/rest.port."""
        if self.listeners is not None:
            return listener_address(self.listeners)
        if self.rest_port is None:
            return None
        return self.rest_host, self.rest_port


def listener_address(listeners: str) -> tuple[str, int]:
    """``http://host:port`` (the first of a comma list) -> (host, port); an empty host is
    every interface, as in Connect."""
    first = listeners.split(",")[0].strip()
    match = re.fullmatch(r"http://(\[[^\]]*\]|[^:/]*):(\d{1,5})/?", first)
    if match is None:
        raise ValueError(f"expected http://host:port, got {first!r} (https is not supported)")
    host, port = match.group(1).strip("[]") or "0.0.0.0", int(match.group(2))
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


class ConnectorConfig(_Model):
    """The runtime's part of one connector block."""

    name: str = Field(description="Unique connector name; part of every offsets-topic key.")
    plugin: str = Field(description="The plugin's registry name (see ``connector plugins``).")
    tasks_max: int = Field(1, ge=1, description="Upper bound on the number of tasks.")
    key_converter: str = Field("string", description="string | json | avro | bytes.")
    value_converter: str = Field("avro", description="avro | json | string | bytes.")
    errors_tolerance: Literal["none", "all"] = Field(
        "none", description="none: a bad record fails the task; all: it goes to the DLQ."
    )
    errors_retry_timeout: int = Field(
        -1,
        ge=-1,
        description="ms to retry a retriable failure (registry outage); -1 retries forever.",
    )
    errors_retry_delay_max_ms: int = Field(60000, ge=1, description="Cap between retries.")
    errors_log_enable: bool = Field(False, description="Log every tolerated failure at ERROR.")
    errors_log_include_messages: bool = Field(
        False, description="Include the record's key and value in those log lines."
    )
    errors_deadletterqueue_topic_name: str | None = Field(
        None, description="Dead-letter topic for records and input that cannot be converted."
    )
    errors_deadletterqueue_topic_replication_factor: int = Field(
        -1, description="Replication factor of the DLQ topic when created; -1: broker default."
    )
    topic_creation_default_partitions: int = Field(
        -1, description="Partitions of topics the connector creates; -1: broker default."
    )
    topic_creation_default_replication_factor: int = Field(
        -1, description="Replication factor of topics the connector creates; -1: broker default."
    )
    exactly_once_support: Literal["requested", "required"] = Field(
        "requested",
        description=(
            "required: validation fails unless the worker has exactly.once.source.support "
            "enabled and the plugin declares exactly-once support."
        ),
    )
    transaction_boundary: Literal["poll", "interval", "connector"] = Field(
        "poll",
        description=(
            "Under exactly-once: one transaction per poll() batch, per "
            "transaction.boundary.interval.ms, or where the task asks (connector)."
        ),
    )
    transaction_boundary_interval_ms: int | None = Field(
        None,
        ge=1,
        description="Transaction length with transaction.boundary=interval; default "
        "offset.flush.interval.ms.",
    )
    offsets_storage_topic: str | None = Field(
        None,
        description="This connector's own offsets topic (KIP-618); default: the worker's "
        "offset.storage.topic, which stays the fallback for reads.",
    )
    transforms: list[str] = Field(default_factory=list, description="Ordered SMT aliases.")
    predicates: list[str] = Field(default_factory=list, description="Predicate aliases.")
    key_converter_config: dict[str, Any] = Field(default_factory=dict, alias="key.converter.*")
    value_converter_config: dict[str, Any] = Field(default_factory=dict, alias="value.converter.*")
    producer_override: dict[str, Any] = Field(default_factory=dict, alias="producer.override.*")
    transforms_config: dict[str, Any] = Field(default_factory=dict, alias="transforms.*")
    predicates_config: dict[str, Any] = Field(default_factory=dict, alias="predicates.*")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '.', '_' and '-', starting with a letter/digit")
        return value

    @field_validator("offsets_storage_topic")
    @classmethod
    def _check_topic(cls, value: str | None) -> str | None:
        if value is not None and (not _NAME.match(value) or len(value) > 249):
            raise ValueError("a Kafka topic name: letters, digits, '.', '_' and '-', 1-249 long")
        return value

    @field_validator("key_converter", "value_converter")
    @classmethod
    def _check_converter(cls, value: str) -> str:
        if value not in CONVERTER_ALIASES:
            raise ValueError(
                f"expected one of {', '.join(sorted(set(CONVERTER_ALIASES.values())))}"
            )
        return CONVERTER_ALIASES[value]

    @field_validator("transforms", "predicates", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


CONNECTOR_CONFIG_KEYS: frozenset[str] = frozenset(
    field.alias or name
    for name, field in ConnectorConfig.model_fields.items()
    if not (field.alias or "").endswith(".*")
) | {"connector.class"}
