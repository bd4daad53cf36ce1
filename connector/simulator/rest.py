"""The Genesys REST surface: ``POST /oauth/token`` and ``/api/v2/notifications/...``."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs

from connector.simulator import topics
from connector.simulator.auth import Token, retry_after_s
from connector.simulator.channels import SubscriptionError
from connector.simulator.http import Request, Response, error_body, json_response
from connector.simulator.hub import Hub

_CHANNEL = re.compile(r"^/api/v2/notifications/channels/([^/]+)$")
_SUBS = re.compile(r"^/api/v2/notifications/channels/([^/]+)/subscriptions$")


def oauth_token(hub: Hub, req: Request) -> Response:
    if req.method != "POST":
        return error_body(405, "method.not.allowed", "Use POST")
    form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items() if v}
    status, body = hub.authority.issue(req.headers.get("authorization"), form)
    return json_response(status, body)


def api(hub: Hub, req: Request) -> Response:
    """Every ``/api/v2`` request: fault bursts, Bearer auth, rate limit, then the route."""
    if hub.http_bursts:
        status = hub.http_bursts.pop(0)
        if status == 429:
            return _too_many(1)
        return error_body(status, "service.unavailable", "The service is temporarily unavailable")
    token = hub.authority.check(req.headers.get("authorization"))
    if token is None:
        return error_body(401, "bad.credentials", "Invalid login credentials.")
    decision = hub.authority.count_request(token)
    if not decision.allowed:
        return _too_many(retry_after_s(decision.reset_s))
    resp = _route(hub, req, token)
    resp.headers.setdefault("ININ-Correlation-Id", str(uuid.uuid4()))
    resp.headers["inin-ratelimit-count"] = str(decision.count)
    resp.headers["inin-ratelimit-allowed"] = str(hub.config.rate_limit_requests)
    resp.headers["inin-ratelimit-reset"] = str(retry_after_s(decision.reset_s))
    return resp


def _too_many(retry_after: int) -> Response:
    resp = error_body(
        429,
        "too.many.requests.retry.after",
        f"Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds",
    )
    resp.headers["Retry-After"] = str(retry_after)
    return resp


def _route(hub: Hub, req: Request, token: Token) -> Response:
    path, method = req.path.rstrip("/"), req.method
    reg = hub.registry
    if path == "/api/v2/notifications/channels":
        if method == "POST":
            ch = reg.create(token)
            return json_response(200, ch.to_json(reg.ws_base))
        if method == "GET":
            include = (req.param("includechannels") or "token").lower()
            return json_response(200, {"entities": reg.list_for(token, include)})
        return error_body(405, "method.not.allowed", f"{method} is not allowed here")
    if path == "/api/v2/notifications/availabletopics":
        if method != "GET":
            return error_body(405, "method.not.allowed", f"{method} is not allowed here")
        expand: set[str] = set()
        for value in req.query.get("expand", []):
            expand.update(v for v in value.split(",") if v)
        return json_response(200, topics.catalogue(expand))
    m = _CHANNEL.match(path)
    if m:
        if method != "HEAD":
            return error_body(405, "method.not.allowed", f"{method} is not allowed here")
        ch = reg.get(m.group(1))
        visible = ch is not None and ch.client_id == token.client.client_id
        return _empty(200 if visible else 404)
    m = _SUBS.match(path)
    if m:
        ch = reg.get(m.group(1))
        if ch is None or ch.client_id != token.client.client_id:
            return error_body(404, "not.found", f"Channel {m.group(1)} not found")
        if method == "GET":
            return json_response(200, {"entities": list(ch.subscriptions.values())})
        if method == "DELETE":
            reg.clear(ch)
            return _empty(200)
        if method in ("POST", "PUT"):
            try:
                payload = req.json()
            except ValueError:
                return error_body(400, "bad.request", "The request body is not valid JSON")
            if not isinstance(payload, list) or not all(
                isinstance(t, dict) and isinstance(t.get("id"), str) for t in payload
            ):
                return error_body(400, "bad.request", 'Expected a JSON array of {"id": topic}')
            ignore = (req.param("ignoreErrors") or "false").lower() == "true"
            try:
                entities = reg.subscribe(
                    ch,
                    token.client.permissions,
                    [t["id"] for t in payload],
                    method == "PUT",
                    ignore,
                )
            except SubscriptionError as exc:
                return error_body(exc.status, exc.code, exc.message)
            hub.wake()
            return json_response(200, {"entities": entities})
        return error_body(405, "method.not.allowed", f"{method} is not allowed here")
    return error_body(404, "not.found", f"No resource at {req.path}")


def _empty(status: int) -> Response:
    return Response(status, b"", {}, "application/json")
