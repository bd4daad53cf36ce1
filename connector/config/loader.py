"""YAML files and directories -> raw documents that remember where each key was written.

Every later error message names ``file:line``, so the loader keeps a map from a key path
(a tuple of mapping keys and list indices) to its line, and reports YAML syntax errors and
duplicate keys (which PyYAML would silently overwrite) as :class:`ConfigIssue`.

It also bounds what it accepts, before anything is built from the file: its size, its nesting
depth, and the number of values it expands to through aliases. An alias is a reference, so a
few lines of ``&anchor``/``*alias`` ("billion laughs") describe a billion values, and every
later step (line index, providers, validation) walks the expanded tree.
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

MAX_FILE_BYTES = 4 * 1024 * 1024
"""A deployment file is a few kilobytes; even 20,000 subscription ids fit in well under 4 MiB."""

MAX_DEPTH = 64
"""Nesting levels of mappings and lists, counting what aliases expand to. A deployment needs
about eight; the limit stops recursion (in the YAML composer and every later walk) early."""

MAX_VALUES = 500_000
"""Mappings, lists and scalars a file may expand to, counting each alias as the values it
stands for (a ``*alias`` repeated shares memory when built, but every later walk visits it)."""


class LimitExceededError(yaml.MarkedYAMLError):
    """The file is legal YAML but larger, deeper or more aliased than a deployment can be."""


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` refusing nesting beyond :data:`MAX_DEPTH` and recursive aliases while it
    composes, before the composer's own recursion can overflow the stack."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open_anchors: list[str] = []

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise LimitExceededError(
                    problem=f"the alias *{event.anchor} is inside the node it refers to "
                    "(a recursive structure)",
                    problem_mark=event.start_mark,
                )
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise LimitExceededError(
                problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark
            )
        anchor = getattr(event, "anchor", None)
        self._depth += 1
        if anchor is not None:
            self._open_anchors.append(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.pop()


def _check_expansion(root: yaml.Node) -> None:
    """Raise at the first node whose expanded size or depth passes the limits.

    Aliases make the node graph a DAG; sizes are memoised per node, so this is linear in the
    file, not in the expansion. Recursion follows the file's own nesting (aliases point at
    nodes already measured), which :class:`_BoundedLoader` has bounded.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth)

    def measure(node: yaml.Node) -> tuple[int, int]:
        known = measured.get(id(node))
        if known is not None:
            return known
        values, depth = 1, 0
        if isinstance(node, yaml.MappingNode):
            children: list[yaml.Node] = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        for child in children:
            child_values, child_depth = measure(child)
            values += child_values
            depth = max(depth, child_depth)
        depth += 1
        if values > MAX_VALUES:
            raise LimitExceededError(
                problem=f"this node expands to more than {MAX_VALUES:,} values through aliases "
                "(*name); a deployment needs far fewer",
                problem_mark=node.start_mark,
            )
        if depth > MAX_DEPTH:
            raise LimitExceededError(
                problem=f"this node is nested more than {MAX_DEPTH} levels deep once its "
                "aliases are expanded",
                problem_mark=node.start_mark,
            )
        measured[id(node)] = (values, depth)
        return values, depth

    measure(root)


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
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)  # never more, whatever the file is
    except FileNotFoundError:
        return None, [ConfigIssue("", "file not found", file=file)]
    except OSError as exc:
        return None, [ConfigIssue("", f"cannot read file: {exc}", file=file)]
    if len(raw) > MAX_FILE_BYTES:
        line = raw[:MAX_FILE_BYTES].count(b"\n") + 1  # where the limit is passed
        message = f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
        return None, [ConfigIssue("", message, file=file, line=line)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [ConfigIssue("", f"cannot read file: {exc}", file=file)]
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node)
        data = loader.construct_document(node) if node is not None else None
    except LimitExceededError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        return None, [ConfigIssue("", str(exc.problem), file=file, line=line)]
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
