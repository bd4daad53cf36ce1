"""Minimal HTTP/1.1 request and response types shared by the REST and control handlers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.target.partition("?")[2])

    def param(self, name: str, default: str | None = None) -> str | None:
        for key, values in self.query.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return default

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body.strip() else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self, head_only: bool = False) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}"]
        headers = {"Content-Type": self.content_type, "Content-Length": str(len(self.body))}
        headers.update(self.headers)
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(body), dict(headers or {}))


def error_body(status: int, code: str, message: str, context_id: str | None = None) -> Response:
    """A Genesys ``ErrorBody`` (spec 6.3), with the context id echoed in ININ-Correlation-Id."""
    cid = context_id or str(uuid.uuid4())
    body = {
        "message": message,
        "code": code,
        "status": status,
        "contextId": cid,
        "details": [],
        "errors": [],
    }
    return json_response(status, body, {"ININ-Correlation-Id": cid})
