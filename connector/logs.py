"""Process logging: ``--log-format text|json`` and the exit codes every command shares.

JSON lines carry the connector and task of the line when known: from a task context's logger
adapter (``ctx.logger``), or from the task thread's name (``task-<connector>-<id>``) for the
runtime's own lines about a task.
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import orjson

EXIT_OK = 0
EXIT_INTERNAL = 1
"""An unexpected error (a bug): the traceback is printed."""
EXIT_INVALID = 2
"""The deployment files are invalid (``connector validate`` prints every problem)."""
EXIT_RUNTIME = 3
"""An expected runtime failure: Kafka, the registry or the REST port unusable at start, the
REST API of ``connector status`` unreachable. One line says why."""
EXIT_USAGE = 64
"""Bad command-line usage (an unknown option, a bad ``--log-level``): sysexits' EX_USAGE."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class TaskContextFilter(logging.Filter):
    """Adds ``connector`` and ``task`` to a record logged on a task thread without them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "connector"):
            name = threading.current_thread().name
            if name.startswith("task-"):
                connector, _, task = name[5:].rpartition("-")
                if connector and task.isdigit():
                    record.connector = connector
                    record.task = int(task)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, connector, task, thread, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        for key in ("connector", "task"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


def parse_level(text: str) -> int:
    """``--log-level``: a level name (Connect's ``WARN`` too) or number; ValueError if not."""
    upper = text.strip().upper()
    if upper == "WARN":
        upper = "WARNING"
    if upper.isdigit():
        return int(upper)
    level = logging.getLevelNamesMapping().get(upper)
    if level is None:
        raise ValueError(f"unknown log level {text!r} (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    return level


def configure(level: int, log_format: str = "text") -> None:
    """Root logging to stderr in ``log_format`` at ``level``. Like ``logging.basicConfig``, a
    root that already has someone else's handlers (an embedding application, pytest) keeps
    them; a handler installed by an earlier call is replaced."""
    root = logging.getLogger()
    root.setLevel(level)
    for old in list(root.handlers):
        if getattr(old, "_connector_handler", False):
            root.removeHandler(old)
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._connector_handler = True  # type: ignore[attr-defined]
    handler.addFilter(TaskContextFilter())
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root.addHandler(handler)
