"""REST client for notification channels and subscriptions (NOTIFICATIONS_API.md §2, §3, §6).

Endpoints used (all under ``https://api.<domain>``, Bearer token):

- ``POST /api/v2/notifications/channels`` -> ``{"connectUri", "id", "expires"}``
- ``PUT /api/v2/notifications/channels/{id}/subscriptions?ignoreErrors=true`` with
  ``[{"id": topic}, ...]`` -> ``{"entities": [{"id", "state", "rejectionReason",
  "missingPermissions"}]}``: a permission failure rejects only that topic
- ``HEAD /api/v2/notifications/channels/{id}`` -> 200 / 404
- ``GET /api/v2/notifications/availabletopics`` -> ``{"entities": [AvailableTopic]}``

Failure policy, decided here once for every call:

- **401**: the token is invalidated and the call retried once with a fresh token; a second 401
  is backed off like any transient failure.
- **429**: wait ``Retry-After`` seconds (the header, else the ``[N] seconds`` of the normalized
  body), at least the current backoff; the 300 requests/min budget is per token, so hammering
  only extends the penalty.
- **5xx / network errors**: exponential backoff with jitter, up to ``max_attempts``.
- **other 4xx**: :class:`ChannelApiError` at once (the request itself is wrong).

``create_channel`` is the one call whose retries are restricted: a channel counts against the
20-channel limit as soon as Genesys created it, so it is retried only when the failure proves
nothing was created (401, 429, 5xx answers). A timeout or dropped connection raises instead of
creating a second channel; the caller backs off and decides (never a channel per retry).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from connector.api import ConnectorError, RetriableError
from connector.backoff import ExponentialBackoff
from connector.plugins.genesys.auth import (
    AuthError,
    TokenProvider,
    TokenUnavailableError,
    parse_retry_after,
)

logger = logging.getLogger(__name__)

CHANNELS_PATH = "/api/v2/notifications/channels"
AVAILABLE_TOPICS_PATH = "/api/v2/notifications/availabletopics"
_RETRY_IN = re.compile(r"\[(\d+(?:\.\d+)?)\]\s*seconds")


class ChannelApiError(ConnectorError):
    """Genesys refused a notifications REST call for a reason a retry will not fix.

    Attributes:
        status: the HTTP status.
        code: Genesys' ``code`` from the error body, when there is one.
    """

    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class ChannelApiUnavailableError(RetriableError):
    """The notifications API failed transiently and the retries ran out (or were not safe)."""


class ChannelNotFoundError(ChannelApiError):
    """The channel no longer exists (expired, evicted by a 21st channel, or its token died)."""


@dataclass(frozen=True, slots=True)
class Channel:
    """A notification channel: ``connect_uri`` is the WebSocket URL (the channel id acts as the
    capability, so it is logged only as the id)."""

    id: str
    connect_uri: str
    expires: str | None = None


@dataclass(frozen=True, slots=True)
class RejectedTopic:
    """A topic Genesys did not subscribe, with its reason and missing permissions."""

    topic: str
    reason: str | None
    missing_permissions: tuple[str, ...] = ()

    def as_status(self) -> dict[str, Any]:
        """JSON-friendly form for the connector status."""
        return {
            "topic": self.topic,
            "reason": self.reason,
            "missing_permissions": list(self.missing_permissions),
        }


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """Per-topic outcome of a subscription call with ``ignoreErrors=true``."""

    permitted: tuple[str, ...]
    rejected: tuple[RejectedTopic, ...] = field(default_factory=tuple)


class ChannelsClient:
    """Calls the notifications REST API for one OAuth client.

    Args:
        api_url: base URL of the API host.
        tokens: the OAuth client's token provider.
        timeout_s: HTTP timeout per request.
        backoff_initial_s, backoff_max_s: the retry schedule (jittered).
        max_attempts: attempts per call before giving up with a retriable error.
        stop: set it to abort waits at once (task shutdown).
        sleep: ``sleep(seconds, stop)``; injected by tests to record waits.

    Thread-safe: each call uses its own backoff; the ``requests.Session`` is shared.
    """

    def __init__(
        self,
        api_url: str,
        tokens: TokenProvider,
        *,
        timeout_s: float = 10.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        max_attempts: int = 6,
        stop: threading.Event | None = None,
        sleep: Callable[[float, threading.Event], None] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.tokens = tokens
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_attempts = max_attempts
        self.stop = stop or threading.Event()
        self._sleep = sleep or (lambda seconds, stop: stop.wait(seconds) and None)
        self._http = session or requests.Session()
        self.requests_sent = 0

    def close(self) -> None:
        """Close pooled HTTP connections."""
        self._http.close()

    # --- calls ---------------------------------------------------------------------------------
    def create_channel(self) -> Channel:
        """``POST /channels``: a new channel (counts against the 20-channel limit)."""
        body = self._call("POST", CHANNELS_PATH, json_body={}, idempotent=False)
        if not isinstance(body, dict) or not body.get("id") or not body.get("connectUri"):
            raise ChannelApiUnavailableError("channel creation answered without id/connectUri")
        channel = Channel(str(body["id"]), str(body["connectUri"]), body.get("expires"))
        logger.info("created Genesys channel %s (expires %s)", channel.id, channel.expires)
        return channel

    def subscribe(self, channel_id: str, topics: Sequence[str]) -> SubscribeResult:
        """``PUT /channels/{id}/subscriptions?ignoreErrors=true``: replace the channel's topics.

        Also extends the channel's life by 24 h. Raises :class:`ChannelNotFoundError` if the
        channel is gone.
        """
        body = self._call(
            "PUT",
            f"{CHANNELS_PATH}/{channel_id}/subscriptions",
            params={"ignoreErrors": "true"},
            json_body=[{"id": topic} for topic in topics],
            not_found=channel_id,
        )
        return parse_subscriptions(body, topics)

    def channel_exists(self, channel_id: str) -> bool:
        """``HEAD /channels/{id}``: whether the channel still exists."""
        try:
            self._call("HEAD", f"{CHANNELS_PATH}/{channel_id}", not_found=channel_id)
        except ChannelNotFoundError:
            return False
        return True

    def available_topics(self, expand: Sequence[str] = ("requiresPermissions",)) -> list[Any]:
        """``GET /availabletopics``: the topic catalogue (call rarely; it shares the budget)."""
        params: list[tuple[str, str]] = [("expand", e) for e in expand]
        body = self._call("GET", AVAILABLE_TOPICS_PATH, params=params)
        entities = body.get("entities") if isinstance(body, dict) else None
        return list(entities or [])

    # --- the retry loop ------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json_body: Any = None,
        idempotent: bool = True,
        not_found: str | None = None,
    ) -> Any:
        backoff = ExponentialBackoff(self.backoff_initial_s, self.backoff_max_s, jitter=0.2)
        reauthenticated = False
        last_problem = ""
        for _attempt in range(self.max_attempts):
            if self.stop.is_set():
                raise ChannelApiUnavailableError(f"{method} {path} aborted: stopping")
            retry_after: float | None = None
            try:
                token = self.tokens.token()
            except TokenUnavailableError as exc:
                last_problem = str(exc)
                self._wait(backoff.next_delay(at_least=exc.retry_after_s), method, path, exc)
                continue
            try:
                self.requests_sent += 1
                response = self._http.request(
                    method,
                    self.api_url + path,
                    params=params,
                    json=json_body,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                    timeout=self.timeout_s,
                )
            except requests.RequestException as exc:
                last_problem = f"{type(exc).__name__}"
                if not idempotent:
                    raise ChannelApiUnavailableError(
                        f"{method} {path} failed ({last_problem}); not retried because Genesys "
                        "may have created the channel anyway"
                    ) from None
                self._wait(backoff.next_delay(), method, path, last_problem)
                continue
            status = response.status_code
            if status < 300:
                if method == "HEAD" or not response.content:
                    return None
                try:
                    return response.json()
                except ValueError:
                    raise ChannelApiUnavailableError(
                        f"{method} {path} answered HTTP {status} with a body that is not JSON"
                    ) from None
            code, message = _error_of(response)
            last_problem = f"HTTP {status} {code or ''} {message or ''}".strip()
            if status == 401:
                self.tokens.invalidate(token)
                if not reauthenticated:
                    reauthenticated = True
                    logger.info("%s %s: HTTP 401, re-authenticating once", method, path)
                    continue
                self._wait(backoff.next_delay(), method, path, last_problem)
                continue
            if status == 429:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is None and message:
                    found = _RETRY_IN.search(message)
                    retry_after = float(found.group(1)) if found else None
                self._wait(backoff.next_delay(at_least=retry_after), method, path, last_problem)
                continue
            if status >= 500:
                self._wait(backoff.next_delay(), method, path, last_problem)
                continue
            if status == 404 and not_found is not None:
                raise ChannelNotFoundError(
                    f"Genesys channel {not_found} no longer exists", status=404, code=code
                )
            raise ChannelApiError(
                f"{method} {path} refused: {last_problem}", status=status, code=code
            )
        raise ChannelApiUnavailableError(
            f"{method} {path} failed {self.max_attempts} times; last: {last_problem}"
        )

    def _wait(self, delay_s: float, method: str, path: str, why: object) -> None:
        logger.warning("%s %s failed (%s); retrying in %.1f s", method, path, why, delay_s)
        self._sleep(delay_s, self.stop)


def _error_of(response: requests.Response) -> tuple[str | None, str | None]:
    """``(code, message)`` of a Genesys ``ErrorBody`` (§6.3), tolerant of any body."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("code")
    message = body.get("message")
    return (str(code) if code is not None else None, str(message) if message else None)


def parse_subscriptions(body: Any, requested: Sequence[str]) -> SubscribeResult:
    """Split a ``ChannelTopicEntityListing`` into permitted and rejected topics.

    A requested topic missing from the answer is reported as rejected ("not acknowledged"):
    it will not deliver, and saying so is better than assuming it will.
    """
    entities = body.get("entities") if isinstance(body, dict) else None
    permitted: list[str] = []
    rejected: list[RejectedTopic] = []
    seen: set[str] = set()
    for entity in entities or []:
        if not isinstance(entity, dict) or not isinstance(entity.get("id"), str):
            continue
        topic = entity["id"]
        seen.add(topic)
        state = entity.get("state")
        if state is None or str(state).lower() == "permitted":
            permitted.append(topic)
        else:
            missing = entity.get("missingPermissions") or []
            rejected.append(
                RejectedTopic(
                    topic,
                    entity.get("rejectionReason") or str(state),
                    tuple(str(p) for p in missing if p is not None),
                )
            )
    for topic in requested:
        if topic not in seen:
            rejected.append(RejectedTopic(topic, "not acknowledged by Genesys"))
    return SubscribeResult(tuple(permitted), tuple(rejected))


__all__ = [
    "AuthError",
    "Channel",
    "ChannelApiError",
    "ChannelApiUnavailableError",
    "ChannelNotFoundError",
    "ChannelsClient",
    "RejectedTopic",
    "SubscribeResult",
    "parse_subscriptions",
]
