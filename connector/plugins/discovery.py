"""Plugin discovery through the ``connector.plugins`` entry-point group.

It lives beside the plugins rather than in ``runtime`` because both ``config`` (validation needs
each plugin's config model) and ``runtime`` (hosting) use it, and ``config`` must not import
``runtime``.

A third-party package adds a connector by declaring, in its own ``pyproject.toml``::

    [project.entry-points."connector.plugins"]
    my_source = "my_package.connector:MySourceConnector"
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from connector.api import SourceConnector

ENTRY_POINT_GROUP = "connector.plugins"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginEntry:
    """A discovered plugin: its class, or why it could not be loaded."""

    name: str
    target: str
    connector_class: type[SourceConnector] | None
    error: str | None = None


@cache
def discover() -> dict[str, PluginEntry]:
    """Load every registered plugin once. A broken plugin is reported, not fatal for others."""
    found: dict[str, PluginEntry] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken third-party plugin must not break the others
            logger.warning("plugin %s (%s) failed to load: %s", entry.name, entry.value, exc)
            found[entry.name] = PluginEntry(entry.name, entry.value, None, f"{exc!r}")
            continue
        if not (isinstance(loaded, type) and issubclass(loaded, SourceConnector)):
            found[entry.name] = PluginEntry(
                entry.name, entry.value, None, "entry point is not a SourceConnector subclass"
            )
            continue
        found[entry.name] = PluginEntry(entry.name, entry.value, loaded)
    return found


def class_name(entry: PluginEntry) -> str:
    """The plugin's class as Connect names it (``package.module.ClassName``): what
    ``GET /connector-plugins`` lists and ``connector.class`` accepts."""
    return entry.target.replace(":", ".")


def find_plugin(plugins: Mapping[str, PluginEntry], name: str) -> PluginEntry | None:
    """The plugin called ``name``: its registry name (``datagen``), or its class the way
    Connect accepts one in ``connector.class``: fully qualified (``pkg.mod.Class`` or the
    entry point's ``pkg.mod:Class``), the simple class name, or that without ``Connector``."""
    entry = plugins.get(name)
    if entry is not None:
        return entry
    for candidate in plugins.values():
        qualified = class_name(candidate)
        simple = qualified.rsplit(".", 1)[-1]
        if name in (qualified, candidate.target, simple, simple.removesuffix("Connector")):
            return candidate
    return None
