"""The `connector` command line: run | validate | status | plugins | offsets | tail | docs |
simulate | devstack | demo | examples.

Each area owns its sub-command in its own module (``register(subparsers)``); this module only
assembles them, so a slow import (the simulator, the registry client) is paid only when used.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from connector.logs import EXIT_USAGE, configure, parse_level

# (module, attribute) pairs; each module exposes ``register(subparsers) -> None``.
_COMMAND_MODULES: tuple[str, ...] = (
    "connector.runtime.cli",
    "connector.config.docs",
    "connector.simulator.cli",
    "connector.devstack.cli",
    "connector.demo",
    "connector.examples",
)


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with :data:`EXIT_USAGE`, distinct from an invalid deployment (2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _level(text: str) -> int:
    try:
        return parse_level(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _VersionAction(argparse.Action):
    """``--version``: the package version and the active record path (native or Python)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and record path")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        from connector import native

        try:
            installed = version("connector")
        except PackageNotFoundError:
            installed = "(not installed)"
        print(f"connector {installed}, record path: {native.describe()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="connector",
        description="Kafka Connect-style source connectors: Genesys Cloud notifications to Kafka.",
        epilog="exit codes: 0 ok, 1 unexpected error, 2 invalid deployment, 3 runtime failure "
        "(Kafka, registry or REST port unusable), 64 usage",
    )
    parser.add_argument(
        "--log-level",
        default=logging.INFO,
        type=_level,
        help="root log level (DEBUG, INFO, WARNING, ...)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON object a line, with the connector and task of the line",
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.log_level, args.log_format)
    # HTTP client request lines can carry credentials (a registry URL with user:password@) and
    # add nothing an operator needs at INFO.
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
