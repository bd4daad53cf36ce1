"""Which record path runs: the native extension (Rust, ``connector._native``) or Python.

The extension is optional. ``pip install`` builds it when a Rust toolchain is present
(setuptools-rust, ``native/``); without one the package installs and runs the same records on
the Python path, slower. ``CONNECTOR_NATIVE`` chooses:

- unset or ``auto``: native when the extension is built, else Python;
- ``0``: Python, even when it is built (to compare the two);
- ``require``: native, and an error when it is not built (CI, benchmarks).

The path in use is logged once per process and shown by ``connector --version`` and
``connector plugins``.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from types import ModuleType

ENV = "CONNECTOR_NATIVE"

_lock = threading.Lock()
_logged = False


class NativeUnavailableError(RuntimeError):
    """``CONNECTOR_NATIVE=require`` and the extension is not built."""


def _load() -> tuple[ModuleType | None, str]:
    choice = os.environ.get(ENV, "auto").strip().lower()
    if choice in ("0", "off", "false", "python"):
        return None, f"python ({ENV}={choice})"
    try:
        module = importlib.import_module("connector._native")
    except ImportError as exc:
        if choice == "require":
            raise NativeUnavailableError(
                f"{ENV}=require but the native extension is not built ({exc}); install with a "
                "Rust toolchain (cargo) present"
            ) from exc
        return None, "python (the native extension is not built: install with Rust to build it)"
    return module, f"native (connector._native {module.__version__}, Rust)"


def extension() -> ModuleType | None:
    """The native module when the native path is on, else ``None``."""
    return _load()[0]


def describe() -> str:
    """One line saying which record path is active, and why."""
    return _load()[1]


def log_once(logger: logging.Logger | None = None) -> None:
    """Log the active record path, once per process."""
    global _logged
    with _lock:
        if _logged:
            return
        _logged = True
    (logger or logging.getLogger(__name__)).info("record path: %s", describe())
