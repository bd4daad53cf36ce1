"""Helpers for the simulator tests: an authenticated REST client and WebSocket polling with
deadlines (no sleeps as synchronisation)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests
import websocket

from connector.simulator import GenesysSimulator


class Api:
    """requests against the simulator with a client-credentials token."""

    def __init__(
        self, sim: GenesysSimulator, client: str = "demo-client", secret: str = "demo-secret"
    ) -> None:
        self.sim = sim
        self.s = requests.Session()
        r = self.s.post(
            f"{sim.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client, secret),
            timeout=5,
        )
        r.raise_for_status()
        self.token = r.json()["access_token"]
        self.s.headers["Authorization"] = f"Bearer {self.token}"

    def req(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.s.request(method, f"{self.sim.base_url}{path}", timeout=5, **kw)

    def channel(self) -> dict[str, Any]:
        r = self.req("POST", "/api/v2/notifications/channels")
        assert r.status_code == 200, r.text
        return r.json()

    def subscribe(
        self, channel_id: str, topics: list[str], method: str = "PUT", ignore_errors: bool = False
    ) -> requests.Response:
        params = {"ignoreErrors": "true"} if ignore_errors else {}
        return self.req(
            method,
            f"/api/v2/notifications/channels/{channel_id}/subscriptions",
            json=[{"id": t} for t in topics],
            params=params,
        )


def connect(uri: str, timeout: float = 3.0) -> websocket.WebSocket:
    ws = websocket.create_connection(uri, timeout=timeout)
    return ws


def recv_json(ws: websocket.WebSocket) -> dict[str, Any]:
    return json.loads(ws.recv())


def recv_until(
    ws: websocket.WebSocket, pred: Callable[[dict[str, Any]], bool], timeout: float = 3.0
) -> list[dict[str, Any]]:
    """Messages up to and including the first matching ``pred``; fails at the deadline."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ws.settimeout(max(0.01, deadline - time.monotonic()))
        msg = recv_json(ws)
        seen.append(msg)
        if pred(msg):
            return seen
    raise AssertionError(f"no matching message within {timeout}s; got {seen[-5:]}")


def wait_for(cond: Callable[[], Any], timeout: float = 3.0, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def is_heartbeat(m: dict[str, Any]) -> bool:
    return (
        m.get("topicName") == "channel.metadata"
        and m["eventBody"]["message"] == "WebSocket Heartbeat"
    )
