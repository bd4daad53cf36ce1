"""Fixtures for the Genesys plugin tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _fresh_channel_registry() -> Any:
    """Every test starts with an empty process-wide channel registry."""
    try:
        from connector.plugins.genesys import plan
    except ImportError:  # pragma: no cover - before plan.py exists
        yield
        return
    plan.CHANNEL_BUDGET.clear()
    yield
    plan.CHANNEL_BUDGET.clear()
