"""What a plugin declares about itself: one object feeds validation, docs and the CLI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """A plugin's identity and config model.

    Args:
        name: the registry name: the YAML ``plugin:`` value and the entry-point name.
        summary: one line for ``connector plugins``.
        version: the plugin's version.
        config_model: a pydantic model with ``extra="forbid"``; its field aliases are the dotted
            keys users type (``genesys.client.id``).
        status: maturity shown to users.
        examples: example connector blocks, validated by the test suite.
    """

    name: str
    summary: str
    version: str
    config_model: type[BaseModel]
    status: Literal["stable", "beta", "experimental"] = "beta"
    examples: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
