"""YAML files and directories -> raw documents that remember where each key was written.

Every later error message names ``file:line``, so the loader keeps a map from a key path
(a tuple of mapping keys and list indices) to its line, and reports YAML syntax errors and
duplicate keys (which PyYAML would silently overwrite) as :class:`ConfigIssue`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connector.api.errors import ConfigIssue

KeyPath = tuple[str | int, ...]
DUPLICATE_KEY = "duplicate key (a later value would silently replace the earlier one)"


@dataclass
class SourceDocument:
    """One YAML file's content plus the line of every key path in it."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: list[tuple[KeyPath, int]] = field(default_factory=list)
    """Each repeated key's path and the line where it is repeated."""

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories expand to their ``*.yaml``/``*.yml`` files, sorted."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    return files


def load_document(path: Path) -> tuple[SourceDocument | None, list[ConfigIssue]]:
    """Parse one YAML file; on failure return the issues instead of raising."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [ConfigIssue("", "file not found", file=file)]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [ConfigIssue("", f"cannot read file: {exc}", file=file)]
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if mark is not None and mark.index >= len(text) and exc.context_mark is not None:
            # "unexpected end of stream" points past the last line; where the unclosed
            # quote or bracket was opened is what the user has to fix.
            mark = exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        return None, [ConfigIssue("", f"invalid YAML: {problem}", file=file, line=line)]
    except yaml.YAMLError as exc:
        return None, [ConfigIssue("", f"invalid YAML: {exc}", file=file)]
    finally:
        loader.dispose()
    document = SourceDocument(file=file, data=data)
    issues: list[ConfigIssue] = []
    if node is not None:
        _index_lines(node, (), document, issues)
    return document, issues


def _index_lines(
    node: yaml.Node, path: KeyPath, document: SourceDocument, issues: list[ConfigIssue]
) -> None:
    document.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line = key_node.start_mark.line + 1
                document.duplicates.append((path + (key,), line))
                issues.append(
                    ConfigIssue(
                        _display(path + (key,)), DUPLICATE_KEY, file=document.file, line=line
                    )
                )
            seen.add(key)
            document.lines[path + (key,)] = key_node.start_mark.line + 1
            _index_lines(value_node, path + (key,), document, issues)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, path + (index,), document, issues)


def _display(path: KeyPath) -> str:
    text = ""
    for position, part in enumerate(path):
        if isinstance(part, int) or (position == 1 and path[0] == "connectors"):
            text += f"[{part}]"  # connectors are addressed as connectors[<name>]
        else:
            text += f".{part}" if text else part
    return text
