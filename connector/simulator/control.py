"""The control API under ``/_sim`` (no auth; loopback only): status, ledger, rate, faults.

Endpoints (JSON bodies use the Python keyword names, snake_case or camelCase):

- ``GET /_sim`` status; ``GET /_sim/entities`` queue and user ids; ``GET /_sim/channels``
- ``GET /_sim/ledger?from=0&limit=1000`` entries; ``GET /_sim/ledger/summary``;
  ``DELETE /_sim/ledger`` clears it
- ``POST /_sim/rate`` ``{"rate": 100, "mode": "model"|"flood"}``
- ``POST /_sim/faults/<name>`` with the keyword arguments of ``Faults.<name>``; bad frames are
  ``/_sim/faults/<kind>`` for every kind of ``faults.BAD_FRAME_KINDS``
"""

from __future__ import annotations

import re
from typing import Any

from connector.simulator.faults import BAD_FRAME_KINDS, FaultError, Faults
from connector.simulator.http import Request, Response, error_body, json_response
from connector.simulator.hub import Hub

PREFIX = "/_sim"
BAD_FRAMES = BAD_FRAME_KINDS
FAULTS = (
    "drop",
    "close",
    "socket_closing",
    "stall",
    "unstall",
    "expire_channel",
    "evict_channel",
    "no_longer_subscribed",
    "revoke_token",
    "expire_token",
    "duplicate",
    "reorder",
    "http_errors",
    "raw_frame",
)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def status(hub: Hub) -> dict[str, Any]:
    return {
        "mode": hub.mode,
        "rate": hub.rate,
        "channels": len(hub.registry.by_id),
        "sockets": len(hub.sockets),
        "tokens": len(hub.authority.tokens),
        "ledger": len(hub.ledger),
        "sent": hub.sent_counter,
        "modelTime": hub.model.now,
        "nextEventId": hub.model.next_event_id,
    }


def entities(hub: Hub) -> dict[str, Any]:
    m = hub.model
    return {
        "queues": [{"id": q.id, "name": q.name} for q in m.queues],
        "users": [{"id": a.id, "name": a.name, "queueIds": a.queue_ids} for a in m.agents],
    }


def channels(hub: Hub) -> list[dict[str, Any]]:
    out = []
    for ch in hub.registry.by_id.values():
        sock = ch.socket
        out.append(
            {
                **ch.to_json(hub.registry.ws_base),
                "clientId": ch.client_id,
                "topics": len(ch.leaves),
                "connected": sock is not None and sock.open,
                "stalled": sock is not None and sock.is_stalled(),
                "heartbeatsSent": sock.heartbeats_sent if sock else 0,
                "pongsSent": sock.pongs_sent if sock else 0,
                "lost": hub.ledger.lost.get(ch.id, 0),
            }
        )
    return out


def handle(hub: Hub, faults: Faults, req: Request) -> Response:
    path = req.path[len(PREFIX) :].rstrip("/")
    method = req.method
    if path == "" and method == "GET":
        return json_response(200, status(hub))
    if path == "/entities" and method == "GET":
        return json_response(200, entities(hub))
    if path == "/channels" and method == "GET":
        return json_response(200, {"entities": channels(hub)})
    if path == "/ledger":
        if method == "DELETE":
            hub.ledger.clear()
            return json_response(200, {"total": 0})
        start = int(req.param("from", "0") or 0)
        limit = int(req.param("limit", "1000") or 1000)
        rows = hub.ledger.entries(start, limit)
        return json_response(
            200,
            {
                "entries": [e.to_json(start + i) for i, e in enumerate(rows)],
                "next": start + len(rows),
                "total": len(hub.ledger),
            },
        )
    if path == "/ledger/summary" and method == "GET":
        return json_response(200, hub.ledger.summary())
    try:
        kwargs = {_snake(k): v for k, v in (req.json() or {}).items()}
    except (ValueError, AttributeError):
        return error_body(400, "bad.request", "expected a JSON object")
    if path == "/rate" and method == "POST":
        try:
            hub.set_rate(kwargs.get("rate"), kwargs.get("mode"))
        except ValueError as exc:
            return error_body(400, "bad.request", str(exc))
        return json_response(200, status(hub))
    m = re.match(r"^/faults/([a-z_]+)$", path)
    if m and method == "POST":
        name = m.group(1)
        try:
            if name in BAD_FRAMES:
                result = faults.bad_frame(name, **kwargs)
            elif name in FAULTS:
                result = getattr(faults, name)(**kwargs)
            else:
                return error_body(404, "not.found", f"unknown fault {name}")
        except FaultError as exc:
            return error_body(404, "not.found", str(exc))
        except TypeError as exc:
            return error_body(400, "bad.request", str(exc))
        return json_response(200, result)
    return error_body(404, "not.found", f"no control endpoint {method} {req.path}")
