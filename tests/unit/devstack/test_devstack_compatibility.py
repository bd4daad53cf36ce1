"""The devstack sets its registry's global compatibility to BACKWARD: at start (a config
property) and through the ccompat API on every ``up``/``acquire``, so a registry started by an
older version is corrected too. Here against a minimal fake of ``GET``/``PUT /config``; the real
Apicurio is checked in tests/integration/test_devstack.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connector.devstack import services
from connector.devstack.errors import DevstackError


class FakeRegistry(ThreadingHTTPServer):
    """Answers ``/config`` like Confluent's API; ``refuse`` makes every PUT a 422."""

    def __init__(self, level: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.level = level
        self.refuse = False
        self.puts: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/apis/ccompat/v7"


class _Handler(BaseHTTPRequestHandler):
    server: FakeRegistry

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(200, {"compatibilityLevel": self.server.level})

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.puts.append(body)
        if self.server.refuse:
            self._answer(422, {"error_code": 42203, "message": "invalid compatibility level"})
            return
        self.server.level = body["compatibility"]
        self._answer(200, {"compatibility": self.server.level})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    server = FakeRegistry("NONE")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_registry_at_none_is_set_to_backward_once(fake: FakeRegistry) -> None:
    assert services.ensure_compatibility(fake.url) is True
    assert fake.level == "BACKWARD"
    assert services.ensure_compatibility(fake.url) is False  # idempotent: no second PUT
    assert fake.puts == [{"compatibility": "BACKWARD"}]


def test_a_refused_change_is_a_devstack_error(fake: FakeRegistry) -> None:
    fake.refuse = True
    with pytest.raises(DevstackError, match="global compatibility to BACKWARD"):
        services.ensure_compatibility(fake.url)


def test_an_unreachable_registry_is_a_devstack_error() -> None:
    with pytest.raises(DevstackError, match="could not set"):
        services.ensure_compatibility("http://127.0.0.1:9/apis/ccompat/v7", timeout_s=2)


def test_the_registry_starts_with_the_backward_default_rule(tmp_path: Path) -> None:
    spec = services.registry_spec(
        services.StateLayout(tmp_path), tmp_path / "apicurio", Path("/usr/bin/java"), 18081
    )
    assert "-Dapicurio.rules.global.compatibility=BACKWARD" in spec.argv
