"""The Avro schemas and example deployments are package data: found through importlib.resources
inside the installed package (never a repository path) and listed in pyproject.toml, so that a
plain wheel install runs the flagship connector. ``.ci/wheel_smoke.sh`` checks a real wheel."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from importlib.resources import files
from pathlib import Path

import fastavro
import pytest

import connector
from connector import demo, examples
from connector.cli import main
from connector.plugins.genesys import schemas

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(connector.__file__).resolve().parent
AVRO = files("connector.plugins.genesys") / "avro"
EXAMPLES = files("connector.examples")


def _inside_package(resource: object) -> bool:
    return Path(str(resource)).resolve().is_relative_to(PACKAGE_DIR)


def _package_data() -> dict[str, list[str]]:
    document = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return document["tool"]["setuptools"]["package-data"]  # type: ignore[no-any-return]


def test_every_avsc_is_a_resource_the_loader_finds() -> None:
    shipped = sorted(e.name for e in AVRO.iterdir() if e.name.endswith(".avsc"))
    assert len(shipped) >= 3
    assert _inside_package(schemas.SCHEMAS_DIR)
    prefix = f"{schemas.NAMESPACE}."
    assert [f"{prefix}{name}.avsc" for name in schemas.schema_names()] == shipped
    for name in schemas.schema_names():
        schema = schemas.avro_schema(name)
        assert schema.definition == schemas.load_definition(name, AVRO)
        fastavro.parse_schema(dict(schema.definition), named_schemas={})


def test_every_example_is_a_resource_inside_the_package() -> None:
    shipped = sorted(e.name for e in EXAMPLES.iterdir() if e.name.endswith(".yaml"))
    assert sorted(f"{name}.yaml" for name in examples.names()) == shipped
    assert {"genesys", "genesys-demo"} <= set(examples.names())
    for name in examples.names():
        path = examples.path(name)
        assert _inside_package(path) and path.is_file()
        assert path.read_bytes() == (EXAMPLES / f"{name}.yaml").read_bytes()
    assert examples.path("genesys-demo") == demo.DEMO_CONFIG
    with pytest.raises(KeyError):
        examples.path("no-such-example")


@pytest.mark.parametrize(
    ("package", "folder", "suffix"),
    [("connector.plugins.genesys", AVRO, ".avsc"), ("connector.examples", EXAMPLES, ".yaml")],
)
def test_package_data_patterns_ship_every_data_file(
    package: str, folder: object, suffix: str
) -> None:
    patterns = _package_data()[package]
    base = Path(str(files(package)))
    data = [p for p in Path(str(folder)).iterdir() if p.is_file() and not p.name.endswith(".py")]
    assert data and all(p.name.endswith(suffix) for p in data)
    for path in data:
        relative = path.relative_to(base).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative


def test_examples_command_prints_the_installed_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["examples"]) == 0
    listed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert listed == {name: str(examples.path(name)) for name in examples.names()}

    assert main(["examples", "genesys-demo"]) == 0
    assert capsys.readouterr().out == f"{examples.path('genesys-demo')}\n"

    assert main(["examples", "nope"]) == 2
    assert "no example named 'nope'" in capsys.readouterr().err
