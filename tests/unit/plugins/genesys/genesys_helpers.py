"""Shared constants and helpers for the Genesys plugin tests (imported by name, not a conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "genesys"

QUEUE_1 = "0e185c02-aca1-4a72-82ea-2e78684e2c89"
QUEUE_2 = "8b6f2d8a-1c3e-4f5a-9b7c-2d4e6f8a0b1c"
USER_1 = "e40f28ea-fa86-493f-a5b8-d559c8533c96"
USER_2 = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
CONV_1 = "6a8e057a-d340-4d9f-aabb-66ed9ffc2d8b"


def load_fixture(name: str) -> Any:
    """A JSON fixture from ``tests/fixtures/genesys``."""
    return orjson.loads((FIXTURES / name).read_bytes())


def fixture_bytes(name: str) -> bytes:
    """A fixture file's raw bytes (frames are fed as bytes, as the socket delivers them)."""
    return (FIXTURES / name).read_bytes()


def base_config(**overrides: Any) -> dict[str, Any]:
    """A minimal valid connector block for the simulator-style explicit hosts."""
    config: dict[str, Any] = {
        "genesys.login.url": "http://127.0.0.1:1",
        "genesys.api.url": "http://127.0.0.1:1",
        "genesys.client.id": "demo-client",
        "genesys.client.secret": "demo-secret",
        "genesys.subscriptions": [
            {"template": ["queue.conversations", "queue.observations"], "ids": [QUEUE_1]},
            {"template": "user.presence", "ids": [USER_1]},
        ],
    }
    config.update(overrides)
    return config
