"""``connector docs``: the committed reference and JSON Schema are what the models generate,
the schema accepts the shipped examples and rejects mistyped values; ``validate --format
json`` reports for machines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml

from connector.config.docs import REFERENCE_FILE, SCHEMA_FILE, render

DOCS = Path(__file__).resolve().parents[3] / "docs"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "config"


def test_the_committed_reference_is_up_to_date() -> None:
    for name, text in render().items():
        committed = (DOCS / name).read_text()
        assert committed == text, (
            f"docs/{name} is stale: run `python -m connector docs --output-dir docs`"
        )


def test_the_reference_documents_every_key_with_type_default_and_allowed_values() -> None:
    reference = render()[REFERENCE_FILE]
    for line in (
        "| `errors.tolerance` | STRING | `none` | `none`, `all` |",
        "| `datagen.topic` | STRING | **required** |",
        "| `genesys.client.secret` | PASSWORD | **required** |",
        "| `rest.basic.auth.password` | PASSWORD | (none) |",
        "| `value.converter.*` | map |",
    ):
        assert line in reference, line


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(render()[SCHEMA_FILE])
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_schema_accepts_the_shipped_examples_and_fixtures(
    validator: jsonschema.Draft202012Validator,
) -> None:
    documents = [
        yaml.safe_load(entry.read_text())
        for entry in files("connector.examples").iterdir()
        if entry.name.endswith(".yaml")
    ]
    documents.append(yaml.safe_load((FIXTURES / "valid_datagen.yaml").read_text()))
    assert len(documents) >= 3
    for document in documents:
        assert [e.message for e in validator.iter_errors(document)] == []


def test_the_schema_rejects_mistyped_and_missing_values(
    validator: jsonschema.Draft202012Validator,
) -> None:
    bad = {
        "worker": {"rest.port": "eighty", "no.such.key": 1},
        "connectors": [{"name": "x", "plugin": "datagen", "datagen.count": "many"}],
    }
    messages = [e.message for e in validator.iter_errors(bad)]
    assert any("'eighty'" in m for m in messages)
    assert any("'many'" in m for m in messages)
    assert any("'datagen.topic' is a required property" in m for m in messages)
    assert any("no.such.key" in m for m in messages)


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", "validate", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FIXTURE_BOOTSTRAP": "127.0.0.1:9092"},
    )


def test_validate_format_json_reports_every_issue_with_its_location() -> None:
    invalid = _validate(str(FIXTURES / "many_problems.yaml"))
    assert invalid.returncode == 2
    report = json.loads(invalid.stdout)
    assert report["valid"] is False and report["connectors"] == []
    assert len(report["issues"]) > 3
    assert all(set(i) == {"file", "line", "path", "message"} for i in report["issues"])
    assert all(i["line"] for i in report["issues"] if i["file"])
    valid = _validate(str(FIXTURES / "valid_datagen.yaml"))
    assert valid.returncode == 0, valid.stderr
    assert json.loads(valid.stdout) == {
        "valid": True,
        "connectors": ["orders"],
        "issues": [],
        "warnings": [],
    }
