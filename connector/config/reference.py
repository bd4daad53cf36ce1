"""Every config key's definition, read from the same pydantic models that validate deployments.

One source feeds the REST API (Connect's ``ConfigKeyInfo`` and ``ConfigInfos``, the flat
``/config`` map), ``connector docs`` (Markdown reference and JSON Schema) and validation, so the
reference cannot drift from what is checked. Types are Connect's ``ConfigDef.Type`` names.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from connector.config.models import ConnectorConfig, WorkerConfig
from connector.config.redaction import HIDDEN, is_secret_key, secret_fields

# Connect's groups for the runtime's connector keys (ConnectorConfig.java, SourceConnectorConfig).
_CONNECTOR_GROUPS: dict[str, str] = {
    "transforms": "Transforms",
    "predicates": "Predicates",
    "errors.": "Error Handling",
    "topic.creation.": "Topic Creation",
}
COMMON_GROUP = "Common"
WORKER_GROUP = "Worker"


@dataclass(frozen=True)
class ConfigKey:
    """One documented key: what ``GET /connector-plugins/{p}/config`` and the docs show."""

    name: str
    type: str
    required: bool
    default: Any
    documentation: str
    group: str
    allowed: tuple[str, ...] = ()
    """Allowed values when the type is an enumeration (Literal)."""
    secret: bool = False

    def default_text(self) -> str | None:
        """Connect's ``default_value``: the string form of the default, or null."""
        return None if self.required else to_connect_string(self.default)

    def key_info(self, order: int) -> dict[str, Any]:
        """Connect's ``ConfigKeyInfo`` JSON."""
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default_value": self.default_text(),
            "importance": "HIGH" if self.required else "MEDIUM",
            "documentation": self.documentation,
            "group": self.group,
            "order": order,
            "width": "NONE",
            "display_name": self.name,
            "dependents": [],
        }


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
        return annotation
    return annotation


def connect_type(annotation: Any) -> str:
    """Connect's ``ConfigDef.Type`` for a pydantic annotation."""
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if annotation in (SecretStr, SecretBytes):
        return "PASSWORD"
    if annotation is bool:
        return "BOOLEAN"
    if annotation is int:
        return "INT"
    if annotation is float:
        return "DOUBLE"
    if annotation is str or origin is Literal:
        return "STRING"
    if origin in (list, tuple, set, frozenset):
        (item,) = typing.get_args(annotation)[:1] or (str,)
        return "LIST" if item in (str, int) else "STRING"  # a list of mappings travels as JSON
    if origin in (typing.Union, types.UnionType):
        kinds = {connect_type(a) for a in typing.get_args(annotation)}
        return kinds.pop() if len(kinds) == 1 else "STRING"
    return "STRING"  # mappings and nested models: JSON text in a flat Connect map


def _allowed(annotation: Any) -> tuple[str, ...]:
    annotation = _strip_optional(annotation)
    if typing.get_origin(annotation) is Literal:
        return tuple(str(v) for v in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return tuple(str(m.value) for m in annotation)
    return ()


def _default(info: FieldInfo) -> Any:
    if info.default is not PydanticUndefined:
        return info.default
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return None


def model_keys(
    model: type[BaseModel], group: str, *, exclude: frozenset[str] = frozenset()
) -> list[ConfigKey]:
    """The keys of ``model`` (by alias), in declaration order."""
    secrets = secret_fields(model)
    keys = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key in exclude:
            continue
        keys.append(
            ConfigKey(
                name=key,
                type=connect_type(info.annotation),
                required=info.is_required(),
                default=_default(info),
                documentation=info.description or "",
                group=group,
                allowed=_allowed(info.annotation),
                secret=key in secrets,
            )
        )
    return keys


def connector_keys() -> list[ConfigKey]:
    """The runtime's connector keys, in Connect's groups; ``plugin`` is shown as Connect's
    ``connector.class`` (both are accepted)."""
    keys = []
    for key in model_keys(ConnectorConfig, COMMON_GROUP):
        if key.name.endswith(".*"):
            continue  # the maps handed on verbatim (key.converter.* ...): documented as prefixes
        group = next((g for p, g in _CONNECTOR_GROUPS.items() if key.name.startswith(p)), None)
        if key.name == "plugin":
            key = ConfigKey(
                "connector.class",
                key.type,
                True,
                None,
                "The plugin: its registry name (``connector plugins``) or its class as listed "
                "by GET /connector-plugins. ``plugin`` is accepted as a synonym.",
                COMMON_GROUP,
            )
        elif group is not None:
            key = ConfigKey(**{**key.__dict__, "group": group})
        keys.append(key)
    return keys


def worker_keys() -> list[ConfigKey]:
    """The worker's keys; its ``producer.*`` and ``schema.registry.*`` maps are documented as
    prefixes."""
    maps = frozenset({"producer", "schema.registry"})
    return model_keys(WorkerConfig, WORKER_GROUP, exclude=maps)


def to_connect_string(value: Any) -> str | None:
    """A value the way Connect shows it in a flat string map: booleans lowercase, lists of
    scalars comma-separated, mappings and lists of mappings as JSON, None as null."""
    if value is None:
        return None
    if isinstance(value, SecretStr | SecretBytes):
        return HIDDEN
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(by_alias=True, mode="json", exclude_none=True))
    if isinstance(value, list | tuple):
        if all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
            return ",".join(str(v) for v in value)
        return json.dumps([_jsonable(v) for v in value])
    if isinstance(value, Mapping):
        return json.dumps({str(k): _jsonable(v) for k, v in value.items()})
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, mode="json", exclude_none=True)
    if isinstance(value, SecretStr | SecretBytes):
        return HIDDEN
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _flatten_prefixed(prefix: str, values: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        yield f"{prefix}{key}", value


def flat_config(
    connector_config: ConnectorConfig, plugin_config: BaseModel, connector_class: str
) -> dict[str, str]:
    """Connect's ``GET /connectors/{c}/config``: every key of the connector (defaults included,
    unset optional keys left out) as strings, secret values as ``[hidden]``."""
    flat: dict[str, Any] = {"connector.class": connector_class, "name": connector_config.name}
    for name, info in ConnectorConfig.model_fields.items():
        alias = info.alias or name
        value = getattr(connector_config, name)
        if alias == "plugin" or alias == "name":
            continue
        if alias.endswith(".*"):
            flat.update(_flatten_prefixed(alias[:-1], value))
        else:
            flat[alias] = value
    for converter in ("key.converter", "value.converter"):
        flat[converter] = CONNECT_CONVERTER_CLASSES.get(flat[converter], flat[converter])
    result = {}
    for key, value in flat.items():  # the runtime's keys and the maps it hands on verbatim
        text = to_connect_string(value)
        if text is not None:
            result[key] = HIDDEN if is_secret_key(key) else text
    secrets = secret_fields(type(plugin_config))  # the plugin's model types its secrets
    for name, info in type(plugin_config).model_fields.items():
        alias = info.alias or name
        text = to_connect_string(getattr(plugin_config, name))
        if text is not None:
            result[alias] = HIDDEN if alias in secrets else text
    return result


CONNECT_CONVERTER_CLASSES: dict[str, str] = {
    "avro": "io.confluent.connect.avro.AvroConverter",
    "json": "org.apache.kafka.connect.json.JsonConverter",
    "string": "org.apache.kafka.connect.storage.StringConverter",
    "bytes": "org.apache.kafka.connect.converters.ByteArrayConverter",
}


def parse_flat_value(model: type[BaseModel], key: str, value: Any) -> Any:
    """Undo :func:`to_connect_string` for a key of ``model``: a flat map's ``"[...]"`` or
    ``"{...}"`` text becomes JSON again, a comma list a list, so that ``GET .../config`` can be
    sent back to validation as it is."""
    if not isinstance(value, str):
        return value
    info = next((f for n, f in model.model_fields.items() if (f.alias or n) == key), None)
    if info is None:
        return value
    kind = connect_type(info.annotation)
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    if kind == "LIST":
        return [part.strip() for part in value.split(",") if part.strip()]
    return value
