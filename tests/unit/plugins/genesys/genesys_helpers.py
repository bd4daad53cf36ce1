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


class FakeGenesysHTTP:
    """A tiny scripted Genesys login + notifications REST server on 127.0.0.1 (stdlib only).

    Default behaviour follows NOTIFICATIONS_API.md; ``script(method, path_prefix, responses)``
    queues ``(status, headers, body)`` answers that win over the default, in order.
    ``requests`` records ``(method, path, headers, body)``.
    """

    def __init__(self, *, client_id: str = "demo-client", secret: str = "demo-secret") -> None:
        import base64
        import http.server
        import threading

        self.client_id = client_id
        self.secret = secret
        self.expires_in = 86399
        self.tokens_issued = 0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.scripts: list[tuple[str, str, list[tuple[int, dict[str, str], object]]]] = []
        self.channels: dict[str, list[str]] = {}
        self.denied: dict[str, list[str]] = {}  # topic -> missing permissions
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path
                with outer.lock:
                    outer.requests.append((self.command, path, dict(self.headers), body))
                    scripted = outer._scripted(self.command, path)
                if scripted is None:
                    scripted = outer._default(self.command, path, dict(self.headers), body, base64)
                status, headers, payload = scripted
                data = b"" if payload is None else orjson.dumps(payload)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def script(self, method: str, prefix: str, responses: list) -> None:
        with self.lock:
            self.scripts.append((method, prefix, list(responses)))

    def _scripted(self, method: str, path: str):
        for m, prefix, responses in self.scripts:
            if m == method and path.startswith(prefix) and responses:
                return responses.pop(0)
        return None

    def _default(self, method, path, headers, body, base64):
        if path == "/oauth/token" and method == "POST":
            auth = headers.get("Authorization", "")
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if user != self.client_id:
                return (
                    400,
                    {},
                    {
                        "error": "invalid_client",
                        "description": "client not found",
                        "error_description": "client not found",
                    },
                )
            if pw != self.secret or b"grant_type=client_credentials" not in body:
                return (
                    400,
                    {},
                    {
                        "error": "invalid_client",
                        "description": "authentication failed",
                        "error_description": "authentication failed",
                    },
                )
            self.tokens_issued += 1
            return (
                200,
                {},
                {
                    "access_token": f"token-{self.tokens_issued}",
                    "token_type": "bearer",
                    "expires_in": self.expires_in,
                },
            )
        if headers.get("Authorization") != f"Bearer token-{self.tokens_issued}":
            return 401, {}, {"message": "bad token", "code": "bad.credentials", "status": 401}
        if (
            path.startswith("/api/v2/notifications/channels")
            and method == "POST"
            and path.count("/") == 4
        ):
            cid = f"streaming-0-{len(self.channels):026d}"
            self.channels[cid] = []
            return (
                200,
                {},
                {
                    "id": cid,
                    "connectUri": f"ws://127.0.0.1:1/channels/{cid}",
                    "expires": "2030-01-01T00:00:00.000Z",
                },
            )
        if "/subscriptions" in path and method == "PUT":
            cid = path.split("/")[5]
            if cid not in self.channels:
                return 404, {}, {"message": "not found", "code": "not.found", "status": 404}
            topics = [t["id"] for t in orjson.loads(body)]
            self.channels[cid] = topics
            entities = []
            for topic in topics:
                if topic in self.denied:
                    entities.append(
                        {
                            "id": topic,
                            "state": "Rejected",
                            "rejectionReason": "missing permissions",
                            "missingPermissions": self.denied[topic],
                        }
                    )
                else:
                    entities.append({"id": topic, "state": "Permitted"})
            return 200, {}, {"entities": entities}
        if method == "HEAD" and path.startswith("/api/v2/notifications/channels/"):
            return (200 if path.split("/")[5] in self.channels else 404), {}, None
        if path.startswith("/api/v2/notifications/availabletopics"):
            return (
                200,
                {},
                {
                    "entities": [
                        {"id": "v2.users.{id}.presence", "requiresPermissions": []},
                        {
                            "id": "v2.routing.queues.{id}.conversations",
                            "requiresPermissions": ["conversation:communication:view"],
                        },
                    ]
                },
            )
        return 404, {}, {"message": "no route", "status": 404}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
