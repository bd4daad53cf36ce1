"""``connector validate`` exit codes, and the shipped example deployments stay valid."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connector import examples
from connector.cli import main
from connector.config.validate import validate_paths

ROOT = Path(__file__).parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "config"
EXAMPLES = [examples.path(name) for name in examples.names()]
_ENV_PLACEHOLDER = re.compile(r"\$\{env:([^}:]+)\}")


def placeholder_environ(path: Path) -> dict[str, str]:
    """A plausible value for every ``${env:NAME}`` the file uses."""
    values = {}
    for name in _ENV_PLACEHOLDER.findall(path.read_text()):
        if "BOOTSTRAP" in name:
            values[name] = "127.0.0.1:9092"
        elif name.endswith("_URL"):
            values[name] = "http://127.0.0.1:1/apis/ccompat/v7"
        else:
            values[name] = f"example-{name.lower()}"
    return values


def test_there_are_examples_to_check() -> None:
    assert EXAMPLES, "connector.examples ships no example deployments"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_deployment_is_valid(example: Path) -> None:
    deployment, issues = validate_paths([example], environ=placeholder_environ(example))
    assert issues == []
    assert deployment is not None
    assert deployment.connectors


def test_validate_exits_0_on_a_valid_deployment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FIXTURE_BOOTSTRAP", "127.0.0.1:9092")
    assert main(["validate", str(FIXTURES / "valid_datagen.yaml")]) == 0
    assert capsys.readouterr().out == "valid: 1 connector(s) (orders)\n"


def test_validate_exits_2_and_prints_every_issue(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FIXTURE_UNSET_TOPIC", raising=False)
    path = FIXTURES / "many_problems.yaml"
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    # the vault plugin is not installed here, so that connector gets an unknown-plugin issue
    issues = [line for line in err if line.startswith(f"{path}:")]
    assert f"{path}:18: connectors[typo].plugin: unknown plugin 'datagenn'" in "\n".join(issues)
    assert err[-1] == f"invalid deployment: {len(issues)} problem(s)"
    assert len(issues) >= 15
    assert "hunter2" not in "\n".join(err)


def test_validate_as_a_subprocess_exit_codes(tmp_path: Path) -> None:
    env = {**os.environ, "FIXTURE_BOOTSTRAP": "127.0.0.1:9092"}
    valid = subprocess.run(
        [sys.executable, "-m", "connector", "validate", str(FIXTURES / "valid_datagen.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (valid.returncode, valid.stdout) == (0, "valid: 1 connector(s) (orders)\n")

    broken = tmp_path / "broken.yaml"
    broken.write_text("connectors:\n  - name: x\n    plugin: datagen\n    datagen.topik: t\n")
    invalid = subprocess.run(
        [sys.executable, "-m", "connector", "validate", str(broken)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert invalid.returncode == 2
    assert f"{broken}:4: connectors[x].datagen.topik: unknown key" in invalid.stderr
