from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from genesys_helpers import QUEUE_1, USER_1, FakeGenesysHTTP

from connector.api import RetriableError
from connector.plugins.genesys import auth, channels
from connector.plugins.genesys.regions import REGIONS, hosts_for, resolve_region
from connector.testing import ManualClock


@pytest.fixture
def server() -> Iterator[FakeGenesysHTTP]:
    fake = FakeGenesysHTTP()
    yield fake
    fake.close()


def _client(server: FakeGenesysHTTP, **kwargs: object) -> tuple[channels.ChannelsClient, list]:
    waits: list[float] = []
    tokens = auth.TokenProvider(server.url, "demo-client", "demo-secret")
    client = channels.ChannelsClient(
        server.url, tokens, sleep=lambda s, stop: waits.append(s), **kwargs
    )
    return client, waits


def test_every_spec_region_resolves() -> None:
    assert len(REGIONS) == 17
    assert resolve_region("mypurecloud.com.au") == "mypurecloud.com.au"
    assert resolve_region("AP-SOUTHEAST-2") == "mypurecloud.com.au"
    assert hosts_for("usw2.pure.cloud", None, None).api == "https://api.usw2.pure.cloud"


def test_token_is_cached_and_renewed_before_expiry(server: FakeGenesysHTTP) -> None:
    clock = ManualClock(1000.0)
    server.expires_in = 3600
    provider = auth.TokenProvider(
        server.url, "demo-client", "demo-secret", margin_s=300, clock=clock
    )
    assert provider.token() == "token-1"
    assert provider.token() == "token-1"
    clock.advance(3600 - 301)
    assert provider.token() == "token-1"
    clock.advance(2)  # now inside the 300 s margin
    assert provider.token() == "token-2"
    assert server.tokens_issued == 2
    _method, _path, headers, body = server.requests[0]
    assert headers["Authorization"].startswith("Basic ")
    assert body == b"grant_type=client_credentials"


def test_short_tokens_renew_at_a_tenth_of_their_life(server: FakeGenesysHTTP) -> None:
    clock = ManualClock()
    server.expires_in = 300
    provider = auth.TokenProvider(
        server.url, "demo-client", "demo-secret", margin_s=300, clock=clock
    )
    token = provider.current()
    assert provider.renew_at(token) == pytest.approx(270.0)


def test_bad_secret_is_an_auth_error_without_the_secret(
    server: FakeGenesysHTTP, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = auth.TokenProvider(server.url, "demo-client", "wrong-secret-value")
    with pytest.raises(auth.AuthError) as info:
        provider.token()
    assert info.value.error == "invalid_client"
    assert "authentication failed" in str(info.value)
    assert "wrong-secret-value" not in str(info.value) + repr(provider) + caplog.text


def test_unknown_client_is_an_auth_error(server: FakeGenesysHTTP) -> None:
    with pytest.raises(auth.AuthError, match="client not found"):
        auth.TokenProvider(server.url, "nobody", "x").token()


def test_login_5xx_and_429_are_retriable(server: FakeGenesysHTTP) -> None:
    server.script("POST", "/oauth/token", [(503, {}, {}), (429, {"Retry-After": "7"}, {})])
    provider = auth.TokenProvider(server.url, "demo-client", "demo-secret")
    with pytest.raises(auth.TokenUnavailableError):
        provider.token()
    with pytest.raises(auth.TokenUnavailableError) as info:
        provider.token()
    assert info.value.retry_after_s == 7.0
    assert isinstance(info.value, RetriableError)
    assert provider.token() == "token-1"


def test_unreachable_login_is_retriable() -> None:
    provider = auth.TokenProvider("http://127.0.0.1:9", "demo-client", "s3cr3t", timeout_s=1)
    with pytest.raises(auth.TokenUnavailableError) as info:
        provider.token()
    assert "s3cr3t" not in str(info.value)


def test_tokens_are_never_printed(
    server: FakeGenesysHTTP, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = auth.TokenProvider(server.url, "demo-client", "demo-secret")
    token = provider.current()
    assert "token-1" not in repr(token) + caplog.text
    assert "demo-secret" not in caplog.text


def test_shared_provider_is_one_per_client() -> None:
    a = auth.shared_provider("http://h", "c1", "s")
    assert auth.shared_provider("http://h/", "c1", "s") is a
    assert auth.shared_provider("http://h", "c2", "s") is not a


def test_create_subscribe_and_head(server: FakeGenesysHTTP) -> None:
    client, _ = _client(server)
    channel = client.create_channel()
    assert channel.id.startswith("streaming-0-")
    topic_ok = f"v2.users.{USER_1}.presence"
    topic_denied = f"v2.routing.queues.{QUEUE_1}.conversations"
    server.denied[topic_denied] = ["routing:queue:view", "conversation:communication:view"]
    result = client.subscribe(channel.id, [topic_ok, topic_denied])
    assert result.permitted == (topic_ok,)
    assert result.rejected == (
        channels.RejectedTopic(
            topic_denied,
            "missing permissions",
            ("routing:queue:view", "conversation:communication:view"),
        ),
    )
    put = next(r for r in server.requests if r[0] == "PUT")
    assert put[1].endswith("/subscriptions?ignoreErrors=true")
    assert client.channel_exists(channel.id)
    assert not client.channel_exists("streaming-0-gone")
    with pytest.raises(channels.ChannelNotFoundError):
        client.subscribe("streaming-0-gone", [topic_ok])


def test_401_reauthenticates_once_then_backs_off(server: FakeGenesysHTTP) -> None:
    client, waits = _client(server)
    client.tokens.token()
    unauthorized = (401, {}, {"message": "expired", "status": 401})
    server.script("POST", "/api/v2/notifications/channels", [unauthorized])
    client.create_channel()
    assert server.tokens_issued == 2 and waits == []
    server.script("POST", "/api/v2/notifications/channels", [unauthorized, unauthorized])
    client.create_channel()
    assert len(waits) == 1  # the second 401 in a row is backed off, not hammered


def test_429_honours_retry_after(server: FakeGenesysHTTP) -> None:
    client, waits = _client(server, backoff_initial_s=0.5)
    body = {
        "message": "Rate limit exceeded the maximum. Retry the request in [42] seconds",
        "code": "too.many.requests.retry.after",
        "status": 429,
    }
    server.script(
        "GET", "/api/v2/notifications/availabletopics", [(429, {"Retry-After": "42"}, body)]
    )
    server.script("GET", "/api/v2/notifications/availabletopics", [(429, {}, body)])
    topics = client.available_topics()
    assert len(topics) == 2
    assert waits == [42.0, 42.0]


def test_5xx_retries_are_bounded(server: FakeGenesysHTTP) -> None:
    client, waits = _client(server, max_attempts=3)
    server.script("GET", "/api/v2/notifications/availabletopics", [(503, {}, {})] * 3)
    with pytest.raises(channels.ChannelApiUnavailableError, match="failed 3 times"):
        client.available_topics()
    assert len(waits) == 3


def test_other_4xx_fail_at_once(server: FakeGenesysHTTP) -> None:
    client, waits = _client(server)
    channel = client.create_channel()
    server.script(
        "PUT",
        "/api/v2/notifications/channels/",
        [(400, {}, {"code": "bad.request", "message": "too many topics"})],
    )
    with pytest.raises(channels.ChannelApiError, match="too many topics") as info:
        client.subscribe(channel.id, ["v2.users.x.presence"])
    assert info.value.status == 400 and info.value.code == "bad.request" and waits == []


def test_channel_creation_is_not_retried_after_an_ambiguous_failure(
    server: FakeGenesysHTTP,
) -> None:
    tokens = auth.TokenProvider(server.url, "demo-client", "demo-secret")
    client = channels.ChannelsClient(
        "http://127.0.0.1:9", tokens, sleep=lambda s, stop: None, timeout_s=1
    )
    tokens.token()
    with pytest.raises(channels.ChannelApiUnavailableError, match="not retried"):
        client.create_channel()


def test_stop_aborts_retries(server: FakeGenesysHTTP) -> None:
    stop = threading.Event()
    stop.set()
    client, _ = _client(server, stop=stop)
    with pytest.raises(channels.ChannelApiUnavailableError, match="stopping"):
        client.create_channel()


def test_parse_subscriptions_reports_unacknowledged_topics() -> None:
    result = channels.parse_subscriptions(
        {"entities": [{"id": "a", "state": "Permitted"}]}, ["a", "b"]
    )
    assert result.permitted == ("a",)
    assert result.rejected[0].topic == "b"
