"""``errors.tolerance: none`` with a dead-letter topic is legal but never uses the topic: warn.

As in Kafka Connect, ``none`` fails the task on the first bad record, so a configured DLQ topic
suggests ``all`` was meant. It is a warning (exit 0), not an error (issue 8, defect 4).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connector.config.validate import format_warning, validate_paths

BLOCK = """
connectors:
  - name: orders
    plugin: datagen
    value.converter: string
    datagen.topic: orders
{extra}
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "deployment.yaml"
    path.write_text(BLOCK.format(extra=textwrap.indent(extra, "    ")).lstrip())
    return path


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ("errors.tolerance: none\nerrors.deadletterqueue.topic.name: orders.dlq", "is none"),
        ("errors.deadletterqueue.topic.name: orders.dlq", "defaults to none"),
    ],
    ids=["explicit", "default"],
)
def test_a_dlq_topic_with_tolerance_none_is_a_located_warning(
    tmp_path: Path, extra: str, said: str
) -> None:
    path = write(tmp_path, extra)
    deployment, issues = validate_paths([path], environ={})
    assert issues == [] and deployment is not None
    line = 1 + path.read_text().splitlines().index(
        "    errors.deadletterqueue.topic.name: orders.dlq"
    )
    assert [format_warning(w) for w in deployment.warnings] == [
        f"{path}:{line}: warning: connectors[orders].errors.deadletterqueue.topic.name: "
        f"errors.tolerance {said}, so the dead-letter topic is never used: the first bad record "
        "fails the task (set errors.tolerance: all to send bad records to it)"
    ]


@pytest.mark.parametrize(
    "extra",
    [
        "errors.tolerance: all\nerrors.deadletterqueue.topic.name: orders.dlq",
        "errors.tolerance: none",
    ],
    ids=["all-with-dlq", "none-without-dlq"],
)
def test_no_warning_when_the_settings_agree(tmp_path: Path, extra: str) -> None:
    deployment, issues = validate_paths([write(tmp_path, extra)], environ={})
    assert issues == [] and deployment is not None
    assert deployment.warnings == ()


def test_validate_prints_the_warning_and_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, "errors.tolerance: none\nerrors.deadletterqueue.topic.name: orders.dlq")
    done = subprocess.run(
        [sys.executable, "-m", "connector", "validate", str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout == "valid: 1 connector(s) (orders)\n"
    assert (
        f"{path}:7: warning: connectors[orders].errors.deadletterqueue.topic.name:" in done.stderr
    )
