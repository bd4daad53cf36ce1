"""Config providers: ``${env:NAME}`` and ``${file:PATH:KEY}``, resolved before validation.

The placeholder grammar is Kafka Connect's (``${provider:[path:]key}``, several per value).
Unlike Connect, an unresolvable placeholder is an error rather than left verbatim: a deployment
that silently runs with the literal text ``${env:GENESYS_CLIENT_SECRET}`` as its secret is worse
than one that refuses to start. ``${file:...}`` reads a Java-properties style file
(``key=value`` or ``key: value`` lines); a relative path is relative to the YAML file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from connector.config.loader import KeyPath

_PLACEHOLDER = re.compile(r"\$\{([^}]*?):(?:([^}]*?):)?([^}]*?)\}")


class UnresolvedPlaceholderError(Exception):
    """A placeholder could not be resolved; the message never contains a resolved value."""


def read_properties(path: Path) -> dict[str, str]:
    """Parse a Java-properties style file (comments with # or !, ``=`` or ``:`` separators)."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


class ProviderResolver:
    """Resolves placeholders in every string of a document, recording which paths held one
    (those values are treated as secrets when shown)."""

    def __init__(self, base_dir: Path, environ: Mapping[str, str] | None = None) -> None:
        self._base_dir = base_dir
        self._environ = os.environ if environ is None else environ
        self._file_cache: dict[Path, dict[str, str]] = {}
        self.placeholder_paths: set[KeyPath] = set()
        """Paths whose value held a placeholder: its resolved value is never shown."""
        self._providers: dict[str, Callable[[str | None, str], str]] = {
            "env": self._env,
            "file": self._file,
        }

    def resolve(self, value: Any, path: KeyPath, on_error: Callable[[KeyPath, str], None]) -> Any:
        if isinstance(value, str):
            return self._resolve_string(value, path, on_error)
        if isinstance(value, dict):
            return {k: self.resolve(v, path + (str(k),), on_error) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, path + (i,), on_error) for i, v in enumerate(value)]
        return value

    def _resolve_string(
        self, text: str, path: KeyPath, on_error: Callable[[KeyPath, str], None]
    ) -> str:
        def replace(match: re.Match[str]) -> str:
            provider, provider_path, key = match.group(1), match.group(2), match.group(3)
            self.placeholder_paths.add(path)
            resolve = self._providers.get(provider)
            if resolve is None:
                on_error(path, f"unknown config provider '{provider}' (known: env, file)")
                return match.group(0)
            try:
                return resolve(provider_path, key)
            except UnresolvedPlaceholderError as exc:
                on_error(path, str(exc))
                return match.group(0)

        return _PLACEHOLDER.sub(replace, text)

    def _env(self, path: str | None, key: str) -> str:
        if path:
            raise UnresolvedPlaceholderError(
                f"${{env:...}} takes a variable name, not a path: '{path}:{key}'"
            )
        if key not in self._environ:
            raise UnresolvedPlaceholderError(f"environment variable {key} is not set")
        return self._environ[key]

    def _file(self, path: str | None, key: str) -> str:
        if not path:
            raise UnresolvedPlaceholderError(
                f"${{file:PATH:KEY}} needs a path and a key, got '{key}'"
            )
        file_path = Path(path)
        if not file_path.is_absolute():
            file_path = self._base_dir / file_path
        if file_path not in self._file_cache:
            try:
                self._file_cache[file_path] = read_properties(file_path)
            except OSError as exc:
                raise UnresolvedPlaceholderError(
                    f"cannot read {file_path}: {exc.strerror}"
                ) from exc
        values = self._file_cache[file_path]
        if key not in values:
            raise UnresolvedPlaceholderError(f"key '{key}' not found in {file_path}")
        return values[key]
