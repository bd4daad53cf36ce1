"""The native extension for the identity tests (imported by name, like ``fuzz_json``).

Without a Rust toolchain the extension is not built and the Python path is the whole product,
so these tests skip; with ``CONNECTOR_NATIVE=require`` (what ``.ci/run`` sets) a missing
extension fails them instead, so CI cannot pass without testing both paths.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def extension() -> ModuleType:
    """``connector._native``, or a skip (a failure under ``CONNECTOR_NATIVE=require``)."""
    try:
        return importlib.import_module("connector._native")
    except ImportError as exc:
        if os.environ.get("CONNECTOR_NATIVE", "").strip().lower() == "require":
            pytest.fail(f"CONNECTOR_NATIVE=require but connector._native is not built: {exc}")
        pytest.skip(f"the native extension is not built ({exc})")
