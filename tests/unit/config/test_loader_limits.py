"""The loader bounds what it accepts (issue 8, defect 11).

A few lines of YAML aliases describe a billion values, and deep nesting overflows every
recursive walk. Each case runs the real CLI as a subprocess under an address-space and CPU
limit (so the old behaviour fails the test instead of exhausting the machine) and checks the
exit code, a ``file:line`` message, the time taken and the peak memory.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.config import loader
from connector.config.loader import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, load_document

ADDRESS_SPACE_LIMIT = 2 * 1024**3
CPU_LIMIT_S = 60
WALL_LIMIT_S = 20.0  # a refused file takes about a second; the old code took minutes or died
RSS_LIMIT_KB = 300 * 1024


def billion_laughs() -> str:
    lines = ['lol0: &lol0 "lol"']
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join([*lines, "connectors: *lol9", ""])


def merge_key_bomb() -> str:
    lines = ["m0: &m0 {k: v}"]
    lines += [
        f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}], x{i}: 1}}" for i in range(1, 12)
    ]
    return "\n".join([*lines, ""])


def deep_flow() -> str:
    return "worker: " + "[" * 10_000 + "]" * 10_000 + "\n"


def deep_block() -> str:
    return "".join(" " * i + f"k{i}:\n" for i in range(1_000)) + " " * 1_000 + "k: v\n"


def deep_through_aliases() -> str:
    """42 levels at most as written; ``b`` is 81 deep once ``*a`` is expanded."""
    nested = "[" * 40 + "x" + "]" * 40
    return f"a: &a {nested}\nb: [{'[' * 39}*a{']' * 39}]\n"


CASES: dict[str, tuple[Callable[[], str], int, str]] = {
    # name: (file text, line of the message, message fragment)
    "billion-laughs": (billion_laughs, 7, f"expands to more than {MAX_VALUES:,} values"),
    "merge-key-bomb": (merge_key_bomb, 7, f"expands to more than {MAX_VALUES:,} values"),
    "deep-flow": (deep_flow, 1, f"nested more than {MAX_DEPTH} levels deep"),
    "deep-block": (deep_block, MAX_DEPTH, f"nested more than {MAX_DEPTH} levels deep"),
    "deep-aliases": (deep_through_aliases, 2, f"more than {MAX_DEPTH} levels deep once its"),
    "recursive-alias": (lambda: "a: &a [1, [2, *a]]\n", 1, "the alias *a is inside the node"),
    "too-large": (lambda: "# padding\n" * (MAX_FILE_BYTES // 10 + 1), None, "larger than 4 MiB"),
}


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))


# The CLI, writing its own peak RSS (VmHWM of the exec'd process) at exit: the child's
# ru_maxrss would also count the pytest process it was forked from, which grows over a session.
_CLI_WITH_PEAK_RSS = """
import atexit, os, sys
def _peak():
    with open("/proc/self/status") as status, open(os.environ["PEAK_RSS_FILE"], "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(_peak)
from connector.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_bounded(args: list[str], tmp_path: Path) -> tuple[int, str, float, int]:
    """Run the CLI; return exit status, stdout + stderr, wall seconds and peak RSS (KiB)."""
    out_path = tmp_path / "output.txt"
    peak_path = tmp_path / "peak_rss_kb.txt"
    with out_path.open("wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-c", _CLI_WITH_PEAK_RSS, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_limits,
            env={**os.environ, "PEAK_RSS_FILE": str(peak_path)},
        )
        _, status, _ = os.wait4(process.pid, 0)  # ends within CPU_LIMIT_S
        elapsed = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # already reaped
    peak_kb = int(peak_path.read_text()) if peak_path.exists() else 2**31  # killed: no report
    return process.returncode, out_path.read_text(errors="replace"), elapsed, peak_kb


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_refuses_the_file_quickly_with_a_located_message(
    tmp_path: Path, case: str
) -> None:
    make, line, fragment = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(make())
    code, output, elapsed, rss_kb = run_bounded(["validate", str(path)], tmp_path)

    assert "Traceback" not in output, output[-2000:]
    assert code == 2, output[-2000:]
    located = re.search(rf"^{re.escape(str(path))}:(\d+): (.*)$", output, re.MULTILINE)
    assert located, output[-2000:]
    assert fragment in located.group(2)
    if line is not None:
        assert int(located.group(1)) == line
    assert output.rstrip().endswith("invalid deployment: 1 problem(s)")
    assert elapsed < WALL_LIMIT_S
    assert rss_kb < RSS_LIMIT_KB


def test_run_refuses_an_alias_bomb_too(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    code, output, elapsed, rss_kb = run_bounded(["run", str(path)], tmp_path)
    assert (code, "Traceback" in output) == (2, False), output[-2000:]
    assert f"{path}:7: this node expands to more than" in output
    assert elapsed < WALL_LIMIT_S and rss_kb < RSS_LIMIT_KB


# --- the limits' edges, in process ------------------------------------------------------------


def nested(depth: int) -> str:
    """A document ``depth`` levels deep: the root mapping, then lists."""
    return "k: " + "[" * (depth - 2) + "x" + "]" * (depth - 2) + "\n"


def test_nesting_up_to_the_limit_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(nested(MAX_DEPTH))
    document, issues = load_document(path)
    assert issues == [] and document is not None

    path.write_text(nested(MAX_DEPTH + 1))
    document, issues = load_document(path)
    assert document is None
    assert [(i.line, i.message) for i in issues] == [
        (1, f"nested more than {MAX_DEPTH} levels deep")
    ]


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "defaults: &defaults {tasks.max: 1, value.converter: string}\n"
        "connectors:\n"
        "  - {<<: *defaults, name: a}\n"
        "  - {<<: *defaults, name: b}\n"
    )
    document, issues = load_document(path)
    assert issues == [] and document is not None
    assert document.data["connectors"][1] == {
        "tasks.max": 1,
        "value.converter": "string",
        "name": "b",
    }


def test_the_value_count_includes_what_aliases_expand_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "MAX_VALUES", 100)
    path = tmp_path / "aliases.yaml"
    # 1 root + 2 keys + the list (1 + 10) + a list of 8 aliases of it (1 + 8 * 11) = 103
    path.write_text("a: &a [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a, *a, *a, *a, *a, *a]\n")
    document, issues = load_document(path)
    assert document is None
    assert [i.line for i in issues] == [1]  # the root, the first node over the limit

    path.write_text("a: &a [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a, *a, *a, *a, *a]\n")
    document, issues = load_document(path)
    assert issues == [] and document is not None


def test_a_file_of_exactly_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * (MAX_FILE_BYTES - 3) + b"\n")
    assert path.stat().st_size == MAX_FILE_BYTES
    document, issues = load_document(path)
    assert issues == [] and document is not None
