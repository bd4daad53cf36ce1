"""OAuth client-credentials tokens and the per-token request rate limit (spec sections 1, 6).

Owned by the server's event-loop thread; the Python API reaches it through the loop.
"""

from __future__ import annotations

import base64
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from connector.simulator.config import ClientConfig, SimulatorConfig


@dataclass
class Token:
    value: str
    client: ClientConfig
    issued: float  # monotonic
    expires: float  # monotonic
    revoked: bool = False
    window_start: float = 0.0
    window_count: int = 0

    def is_valid(self, now: float) -> bool:
        return not self.revoked and now < self.expires


@dataclass
class OAuthError:
    status: int
    body: dict[str, Any]


def _invalid_client(description: str) -> OAuthError:
    # Bodies as observed from login.mypurecloud.com (spec 1.4); status 400 for both cases.
    return OAuthError(
        400,
        {"error": "invalid_client", "description": description, "error_description": description},
    )


@dataclass
class RateDecision:
    allowed: bool
    count: int
    reset_s: float


@dataclass
class Authority:
    """Issues and checks tokens; counts requests per token in fixed windows."""

    config: SimulatorConfig
    tokens: dict[str, Token] = field(default_factory=dict)

    def issue(self, authorization: str | None, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Handle POST /oauth/token; returns (status, JSON body)."""
        if form.get("grant_type") != "client_credentials":
            return 400, {
                "error": "unsupported_grant_type",
                "description": "grant type is not supported",
                "error_description": "grant type is not supported",
            }
        creds = _basic(authorization)
        if creds is None:
            err = _invalid_client("client not found")
            return err.status, err.body
        client_id, secret = creds
        client = self.config.client(client_id)
        if client is None:
            err = _invalid_client("client not found")
            return err.status, err.body
        if not secrets.compare_digest(client.client_secret, secret):
            err = _invalid_client("authentication failed")
            return err.status, err.body
        now = time.monotonic()
        ttl = self.config.token_ttl(client)
        value = secrets.token_urlsafe(48)
        self.tokens[value] = Token(value, client, now, now + ttl, window_start=now)
        return 200, {
            "access_token": value,
            "token_type": "bearer",
            "expires_in": max(1, round(ttl)),
        }

    def check(self, authorization: str | None) -> Token | None:
        """The valid token of a ``Bearer`` header, or None (-> 401)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        token = self.tokens.get(authorization[7:].strip())
        if token is None or not token.is_valid(time.monotonic()):
            return None
        return token

    def count_request(self, token: Token) -> RateDecision:
        now = time.monotonic()
        window = self.config.rate_window
        if now - token.window_start >= window:
            token.window_start, token.window_count = now, 0
        token.window_count += 1
        reset = token.window_start + window - now
        return RateDecision(
            token.window_count <= self.config.rate_limit_requests, token.window_count, reset
        )

    def revoke(self, value: str) -> bool:
        token = self.tokens.get(value)
        if token is None:
            return False
        token.revoked = True
        return True

    def expire(self, value: str) -> bool:
        token = self.tokens.get(value)
        if token is None:
            return False
        token.expires = time.monotonic()
        return True

    def expired_tokens(self, now: float) -> list[Token]:
        return [t for t in self.tokens.values() if not t.is_valid(now)]

    def forget(self, value: str) -> None:
        self.tokens.pop(value, None)


def retry_after_s(reset_s: float) -> int:
    return max(1, math.ceil(reset_s))


def _basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, secret = raw.partition(":")
    return (client_id, secret) if sep else None
