"""Example deployments shipped with the package, and ``connector examples`` to find them.

The YAML files beside this module are package data, so an installed wheel has them too: a user
runs ``connector validate "$(connector examples genesys)"`` or copies the file to edit it, without
a source checkout. ``genesys-demo`` is what ``connector demo`` runs.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

SUFFIX = ".yaml"


def names() -> list[str]:
    """The name (file stem) of every shipped example deployment."""
    return sorted(
        entry.name[: -len(SUFFIX)]
        for entry in files(__name__).iterdir()
        if entry.is_file() and entry.name.endswith(SUFFIX)
    )


def path(name: str) -> Path:
    """The installed file of example ``name``; a plain file, as pip installs wheels unzipped.

    Raises ``KeyError`` for a name that is not shipped.
    """
    if name not in names():
        raise KeyError(name)
    return Path(str(files(__name__) / f"{name}{SUFFIX}"))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "examples",
        help="print the paths of the shipped example deployments",
        description="Without NAME: every example as NAME<TAB>PATH. With NAME: only its path, "
        'for `connector validate "$(connector examples genesys)"` or `cp` to edit it.',
    )
    parser.add_argument("name", nargs="?", help=f"one example: {', '.join(names())}")
    parser.set_defaults(handler=_examples)


def _examples(args: argparse.Namespace) -> int:
    if args.name is None:
        for name in names():
            print(f"{name}\t{path(name)}")
        return 0
    try:
        print(path(args.name))
    except KeyError:
        print(f"no example named {args.name!r}; shipped: {', '.join(names())}", file=sys.stderr)
        return 2
    return 0
