"""URL redaction: WebSocket URLs often carry an access token in the query string."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"


def redact_url(url: str) -> str:
    """Return ``url`` safe to log or store: query values and any password replaced by ``***``.

    Parameter *names* are kept so that the result still tells URLs apart by shape and stays
    stable when only a token rotates (it is used as a source partition, which must not change).

    >>> redact_url("wss://h.example/ch/1?access_token=s3cret&v=2")
    'wss://h.example/ch/1?access_token=***&v=***'
    >>> redact_url("wss://user:pw@h.example/x")
    'wss://user:***@h.example/x'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + REDACTED
        netloc = f"{userinfo}@{host}"
    query = parts.query
    if query:
        query = "&".join(
            f"{pair.split('=', 1)[0]}={REDACTED}" if "=" in pair else REDACTED
            for pair in query.split("&")
        )
    # Fragments never reach the server but may hold tokens (implicit OAuth flows): drop them.
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
