"""The Genesys simulator as a subprocess (flood mode), and the topic mixes the benchmarks use."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from typing import Any

import requests

from connector.simulator.ledger import CorrelationIds

CLIENT_ID, CLIENT_SECRET = "demo-client", "demo-secret"
SEED = 1
FLOOD_FIRST_ID = 1 << 40
"""The simulator's first flood event id; flood ids are consecutive from there."""

_DETAIL_KINDS = ("acd.start", "user.end", "acw", "customer.end")


def conversation_topics(count: int) -> list[str]:
    """``count`` Genesys topics of the conversation families: 20 % queue conversation
    snapshots, 40 % user conversation snapshots, 40 % conversation detail events, which makes
    frames of 1.7 KB on average (snapshots 1.3-2.9 KB, detail events 0.6 KB). Ids are stable
    synthetic GUIDs, so a run with N topics always subscribes the same ones."""
    topics: list[str] = []
    for i in range(count):
        guid = str(uuid.UUID(int=(0xBE4C << 112) | (i << 16) | 0x4000))
        slot = i % 5
        if slot == 0:
            topics.append(f"v2.routing.queues.{guid}.conversations")
        elif slot in (1, 3):
            topics.append(f"v2.users.{guid}.conversations")
        else:
            topics.append(f"v2.detail.events.conversation.{guid}.{_DETAIL_KINDS[i % 4]}")
    return topics


class Simulator:
    """``connector simulate genesys --mode flood`` on an ephemeral loopback port."""

    def __init__(self, rate: float = 0.0, *, ledger: bool = True) -> None:
        cmd = [
            sys.executable,
            "-m",
            "connector",
            "--log-level",
            "WARNING",
            "simulate",
            "genesys",
            "--port",
            "0",
            "--mode",
            "flood",
            "--rate",
            str(rate),
            "--seed",
            str(SEED),
            "--heartbeat-s",
            "5",
        ]
        if not ledger:
            cmd.append("--no-ledger")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"(http://\S+)", line)
        if not found:
            self.stop()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.url = found.group(1)
        self.cids = CorrelationIds(SEED)
        self.http = requests.Session()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _get(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"{self.url}{path}", params=params, timeout=120)
        response.raise_for_status()
        return response.json()

    def status(self) -> dict[str, Any]:
        return self._get("/_sim")  # type: ignore[no-any-return]

    def set_rate(self, rate: float, mode: str = "flood") -> None:
        self.http.post(
            f"{self.url}/_sim/rate", json={"rate": rate, "mode": mode}, timeout=10
        ).raise_for_status()

    def pause(self) -> None:
        """Stop sending (model mode at rate 0); the ledger stays as it is."""
        self.set_rate(0, "model")

    def ledger_total(self) -> int:
        return int(self.status()["ledger"])

    def ledger_sent_ns(self, start: int, end: int, page: int = 100_000) -> dict[int, int]:
        """``{event id: sent_ns}`` of ledger entries ``[start, end)``."""
        out: dict[int, int] = {}
        while start < end:
            body = self._get("/_sim/ledger", **{"from": start, "limit": min(page, end - start)})
            entries = body["entries"]
            if not entries:
                break
            for entry in entries:
                out[entry["eventId"]] = entry["sentNs"]
            start = body["next"]
        return out

    def token(self) -> str:
        response = self.http.post(
            f"{self.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def channel(self, topics: list[str]) -> str:
        """Create a channel subscribed to ``topics``; return its connectUri."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        channel = self.http.post(
            f"{self.url}/api/v2/notifications/channels", headers=headers, timeout=10
        ).json()
        self.http.put(
            f"{self.url}/api/v2/notifications/channels/{channel['id']}/subscriptions",
            headers=headers,
            json=[{"id": t} for t in topics],
            timeout=30,
        ).raise_for_status()
        return str(channel["connectUri"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
