"""Secrets out of every message: the deployment's secret values and credentials inside URLs.

Validation messages quote input values, plugins write their own messages, and client libraries
(the schema registry's, httpx's) put URLs with their userinfo into exception text. Rather than
trusting every producer of a message, whatever is shown to a user passes through one
:class:`Redactor` that knows the deployment's secret values: the values of secret keys (by name,
like Connect's PASSWORD type, or typed ``SecretStr`` in a plugin's model), every value that came
from a ``${...}`` provider, and the passwords and token-like query values of every URL in the
deployment.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import BaseModel, SecretBytes, SecretStr

HIDDEN = "[hidden]"
"""What a secret value is replaced with."""

URL_REDACTED = "***"
"""What a password, query value or fragment of a URL is replaced with."""

MIN_SECRET_LENGTH = 4
"""Known secrets shorter than this are not searched for inside text (a two-character secret
would hide unrelated words); they are still hidden wherever they are shown as a value."""

_SECRET_WORDS = (
    "secret",
    "password",
    "passwd",
    "token",
    "credential",
    "sasl",
    "authorization",
    "apikey",
    "api.key",
    "api-key",
    "api_key",
    "user.info",  # schema.registry.basic.auth.user.info is user:password
    "userinfo",
    "private.key",
)

# Query parameters whose values are taken for credentials (besides the secret key words).
_TOKEN_PARAM_WORDS = ("key", "sig", "auth", "jwt", "session", "code", "pass", "pwd")

# A URL inside free text: scheme://, then anything up to whitespace, a quote, a bracket or a
# comma (registry and bootstrap settings are comma-separated lists).
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{},]+")


def is_secret_key(key: str) -> bool:
    """Keys whose values are never shown (Connect's PASSWORD type, decided by name here)."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def secret_fields(model: type[BaseModel]) -> frozenset[str]:
    """The keys (aliases and names) of ``model`` whose type holds a ``SecretStr`` anywhere,
    e.g. ``genesys.client.secret`` or ``websocket.headers: dict[str, SecretStr]``."""
    found: set[str] = set()
    for name, info in model.model_fields.items():
        if _holds_secret(info.annotation, {model}):
            found.add(name)
            if info.alias:
                found.add(info.alias)
    return frozenset(found)


def _holds_secret(annotation: Any, seen: set[type]) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:  # a recursive model
            return False
        seen.add(annotation)
        return any(_holds_secret(f.annotation, seen) for f in annotation.model_fields.values())
    if typing.get_origin(annotation) is None and not isinstance(annotation, types.UnionType):
        return False
    return any(_holds_secret(arg, seen) for arg in typing.get_args(annotation))


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be credentials: password (or a lone user name, often a
    token), token-like query values and the fragment, each as written and percent-decoded.

    (:func:`scrub_url` hides every query value of a URL shown whole; these are the values
    searched for elsewhere in text, so harmless ones like ``v=2`` are left out.)"""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        found.append(password if colon else user)
    for pair in parts.query.split("&") if parts.query else ():
        name, _, value = pair.partition("=")
        if _is_token_param(unquote(name)):
            found.append(value)
    if parts.fragment:
        found.append(parts.fragment)
    return [variant for value in found if value for variant in {value, unquote(value)}]


def _credentials_in(value: str) -> list[str]:
    if "://" in value:
        return url_secrets(value)
    userinfo, at, _ = value.partition("@")
    if at and ":" in userinfo and " " not in userinfo:  # user:password@host without a scheme
        return url_secrets("//" + value)
    return []


def _is_token_param(name: str) -> bool:
    lowered = name.lower()
    return is_secret_key(lowered) or any(word in lowered for word in _TOKEN_PARAM_WORDS)


def scrub_url(url: str) -> str:
    """``url`` with its password (or lone user name), query values and fragment replaced.

    For messages. Unlike :func:`connector.ws.urls.redact_url`, whose result names a source
    partition and so must keep its shape, this hides a lone user name too (often a token).

    >>> scrub_url("https://user:pw@h.example/x?access_token=abc&v=2")
    'https://user:***@h.example/x?access_token=***&v=***'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return URL_REDACTED
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{URL_REDACTED}@{host}" if colon else f"{URL_REDACTED}@{host}"
    query = "&".join(
        f"{pair.partition('=')[0]}={URL_REDACTED}" if "=" in pair else URL_REDACTED
        for pair in (parts.query.split("&") if parts.query else ())
    )
    fragment = URL_REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def scrub_urls(text: str) -> str:
    """Every URL inside ``text`` passed through :func:`scrub_url`."""

    def one(match: re.Match[str]) -> str:
        url = match.group(0)
        bare = url.rstrip(".:;!?")  # sentence punctuation after a URL is not part of it
        return scrub_url(bare) + url[len(bare) :]

    return _URL_IN_TEXT.sub(one, text)


class Redactor:
    """Scrubs known secret values, and credentials in any URL, from text shown to users."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, value: Any) -> None:
        """Remember ``value`` (and the forms it takes when quoted in text) as a secret."""
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, SecretStr | SecretBytes):
            value = value.get_secret_value()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        text = str(value)
        forms = {text, repr(text)[1:-1], json.dumps(text)[1:-1], quote(text, safe="")}
        new = {form for form in forms if len(form) >= MIN_SECRET_LENGTH} - self._secrets
        if new:
            self._secrets |= new
            self._pattern = None

    def add_values(self, value: Any, secret: bool = False) -> None:
        """Walk a config value: every leaf is a secret when ``secret``; in any case every URL's
        password and query values are."""
        if isinstance(value, dict):
            for key, item in value.items():
                self.add_values(item, secret or is_secret_key(str(key)))
        elif isinstance(value, list | tuple):
            for item in value:
                self.add_values(item, secret)
        elif isinstance(value, BaseModel):
            self.add_values(value.model_dump(by_alias=True), secret)
        else:
            if secret or isinstance(value, SecretStr | SecretBytes):
                self.add(value)
            if isinstance(value, str):
                for part in _credentials_in(value):
                    self.add(part)

    def __call__(self, text: str) -> str:
        """``text`` with URLs redacted and every known secret replaced by ``[hidden]``."""
        text = scrub_urls(text)
        if self._secrets:
            if self._pattern is None:
                ordered = sorted(self._secrets, key=len, reverse=True)  # longest first
                self._pattern = re.compile("|".join(map(re.escape, ordered)))
            text = self._pattern.sub(HIDDEN, text)
        return text


class RedactingFilter(logging.Filter):
    """A handler filter that scrubs a log record's message and traceback before formatting."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = self._redact(record.getMessage())
        except Exception:  # a malformed call: logging reports it while formatting
            return True
        record.args = None
        if record.exc_info:
            formatted = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = self._redact(formatted)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


def redact_logging(redact: Callable[[str], str]) -> None:
    """Install :class:`RedactingFilter` on every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(redact))
