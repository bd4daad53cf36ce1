from __future__ import annotations

import pytest

from connector.ws.urls import redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("wss://h.example/a", "wss://h.example/a"),
        ("wss://h.example/a?token=abc&v=2", "wss://h.example/a?token=***&v=***"),
        ("wss://h.example/a?abc123", "wss://h.example/a?***"),
        ("wss://u:pw@h.example:8443/a", "wss://u:***@h.example:8443/a"),
        ("wss://h.example/a#access_token=abc", "wss://h.example/a"),
        ("ws://[::1]:80/a?t=1", "ws://[::1]:80/a?t=***"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redaction_is_stable_when_only_the_token_rotates() -> None:
    assert redact_url("wss://h/x?token=one") == redact_url("wss://h/x?token=two")


def test_unparseable_urls_are_fully_hidden() -> None:
    assert redact_url("ws://[::1/a?token=abc") == "***"
