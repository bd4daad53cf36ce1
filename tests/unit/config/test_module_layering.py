"""``config`` does not import ``runtime`` (ARCHITECTURE.md's module table; issue 8, "The shape").

Checked in a fresh interpreter, after a whole validation (which discovers and loads every
installed plugin), so that an import anywhere on the validation path is caught.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[3] / "config" / "genesys.yaml"

PROGRAM = """
import sys
from connector.config.validate import validate_paths
from connector.plugins.discovery import discover
assert discover(), "no plugins discovered: the check would prove nothing"
validate_paths([sys.argv[1]], environ={})
print(sorted(m for m in sys.modules if m.startswith("connector.runtime")))
"""


def test_validation_imports_nothing_from_runtime() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_old_discovery_module_is_gone() -> None:
    import importlib.util

    assert importlib.util.find_spec("connector.runtime.plugins") is None
