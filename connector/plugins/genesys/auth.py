"""OAuth 2.0 client credentials for Genesys Cloud, with authlib (NOTIFICATIONS_API.md §1).

``POST https://login.<domain>/oauth/token`` with HTTP Basic ``client_id:client_secret`` and
``grant_type=client_credentials``; the answer is ``{"access_token", "token_type", "expires_in"}``.
No refresh token is issued, so renewing means running the grant again.

:class:`TokenProvider` caches the token and renews it ``margin`` before expiry (the margin is
capped at a tenth of the token's lifetime, because Genesys allows lifetimes down to 300 s). It
is thread-safe and shared per (login URL, client id) in the process (:func:`shared_provider`),
so every channel of one OAuth client is created with the same token.

Secrets: the client secret and tokens are never logged, never put in exception messages, and
never in a URL (config validation refuses ``user:pass@`` in URLs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from pydantic import SecretStr

from connector.api import ConnectorError, RetriableError

logger = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"


class AuthError(ConnectorError):
    """Genesys refused the client credentials (``invalid_client`` and friends). Not retried:
    the configuration must change. ``error`` is the OAuth error code."""

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None):
        self.status = status
        self.error = error
        super().__init__(message)


class TokenUnavailableError(RetriableError):
    """The login service could not be reached or was overloaded; ``retry_after_s`` is the
    server's ``Retry-After`` when it sent one."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and its lifetime on the provider's monotonic clock."""

    access_token: str
    obtained_at: float
    expires_at: float

    @property
    def lifetime_s(self) -> float:
        """Seconds between issue and expiry."""
        return self.expires_at - self.obtained_at

    def __repr__(self) -> str:  # never print the token itself
        return f"Token(obtained_at={self.obtained_at:.1f}, expires_at={self.expires_at:.1f})"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form, as Genesys sends it)."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


class TokenProvider:
    """Caches a client-credentials token and renews it before expiry.

    Args:
        login_url: base URL of the login host (``https://login.mypurecloud.com``, or the
            simulator's ``http://127.0.0.1:PORT``).
        client_id: the OAuth client id.
        client_secret: the OAuth client secret.
        margin_s: renew this long before expiry (capped at a tenth of the lifetime).
        timeout_s: HTTP timeout of the token request.
        clock: monotonic seconds (injected in tests).

    Thread-safe: :meth:`token` may be called from any thread; only one grant runs at a time.
    """

    def __init__(
        self,
        login_url: str,
        client_id: str,
        client_secret: SecretStr | str,
        *,
        margin_s: float = 300.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.login_url = login_url.rstrip("/")
        self.client_id = client_id
        self._secret = (
            client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        )
        self.margin_s = margin_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._session: OAuth2Session | None = None
        self.grants = 0
        """How many token grants were run (for tests and status)."""

    def __repr__(self) -> str:
        return f"TokenProvider(login_url={self.login_url!r}, client_id={self.client_id!r})"

    def _oauth_session(self) -> OAuth2Session:
        if self._session is None:
            session = OAuth2Session(
                client_id=self.client_id,
                client_secret=self._secret.get_secret_value(),
                token_endpoint_auth_method="client_secret_basic",
            )
            session.register_compliance_hook("access_token_response", self._check_response)
            self._session = session
        return self._session

    def _check_response(self, response: requests.Response) -> requests.Response:
        """Turn non-OAuth failures into typed errors before authlib parses the body."""
        status = response.status_code
        if status == 429 or status >= 500:
            raise TokenUnavailableError(
                f"Genesys login answered HTTP {status}",
                retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            error = body.get("error") if isinstance(body, dict) else None
            description = (
                (body.get("error_description") or body.get("description"))
                if isinstance(body, dict)
                else None
            )
            raise AuthError(
                f"Genesys refused the client credentials of client {self.client_id}: "
                f"HTTP {status} {error or ''} {description or ''}".strip(),
                status=status,
                error=error,
            )
        return response

    def token(self) -> str:
        """A valid access token, running the grant when there is none or it is about to expire.

        Raises:
            AuthError: the credentials were refused.
            TokenUnavailableError: the login host failed or throttled (retriable).
        """
        return self.current().access_token

    def current(self) -> Token:
        """Like :meth:`token`, with the token's lifetime (to schedule channel rotations)."""
        with self._lock:
            token = self._token
            if token is None or self._clock() >= self.renew_at(token):
                token = self._grant()
                self._token = token
            return token

    def renew_at(self, token: Token) -> float:
        """When ``token`` is renewed: ``margin`` before expiry, at most a tenth of its life."""
        margin = min(self.margin_s, token.lifetime_s / 10.0)
        return token.expires_at - margin

    def renew_in(self, token: Token) -> float:
        """Seconds until :meth:`renew_at`, so callers on another clock can schedule it."""
        return self.renew_at(token) - self._clock()

    def invalidate(self, access_token: str | None = None) -> None:
        """Forget the cached token after a 401, so the next :meth:`token` runs the grant.

        With ``access_token``, only that token is forgotten: when several threads hit a 401 with
        the same token, the first one renews it and the others reuse the new one.
        """
        with self._lock:
            if self._token is not None and (
                access_token is None or self._token.access_token == access_token
            ):
                self._token = None

    def _grant(self) -> Token:
        started = self._clock()
        try:
            raw: dict[str, Any] = self._oauth_session().fetch_token(
                url=self.login_url + TOKEN_PATH,
                grant_type="client_credentials",
                timeout=self.timeout_s,
            )
        except (AuthError, TokenUnavailableError):
            raise
        except OAuthError as exc:
            raise AuthError(
                f"Genesys refused the client credentials of client {self.client_id}: "
                f"{exc.error} {exc.description or ''}".strip(),
                error=exc.error,
            ) from None
        except requests.RequestException as exc:
            # The exception text may hold the request; keep only its type.
            raise TokenUnavailableError(
                f"Genesys login {self.login_url} unreachable: {type(exc).__name__}"
            ) from None
        except ValueError as exc:
            raise TokenUnavailableError(
                f"Genesys login {self.login_url} sent an unreadable token response: "
                f"{type(exc).__name__}"
            ) from None
        access_token = raw.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise TokenUnavailableError("Genesys login answered without an access_token")
        expires_in = raw.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        self.grants += 1
        logger.info(
            "obtained a Genesys token for client %s from %s (expires in %.0f s)",
            self.client_id,
            self.login_url,
            lifetime,
        )
        return Token(access_token, started, started + lifetime)


_SHARED: dict[tuple[str, str], TokenProvider] = {}
_SHARED_LOCK = threading.Lock()


def shared_provider(
    login_url: str,
    client_id: str,
    client_secret: SecretStr | str,
    *,
    margin_s: float = 300.0,
    timeout_s: float = 10.0,
) -> TokenProvider:
    """The process-wide provider of one OAuth client (one token, renewed once, for every task).

    A changed secret replaces the provider (the old token was granted to other credentials).
    """
    key = (login_url.rstrip("/"), client_id)
    secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
    with _SHARED_LOCK:
        provider = _SHARED.get(key)
        if provider is None or provider._secret.get_secret_value() != secret.get_secret_value():
            provider = TokenProvider(
                login_url, client_id, secret, margin_s=margin_s, timeout_s=timeout_s
            )
            _SHARED[key] = provider
        return provider
