"""The ``genesys_notifications`` config model: the single source for validation, docs and the CLI.

Every connector key that is not a runtime connector-config key lands here. Keys are dotted
(``genesys.client.id``); Python attributes are their snake_case twins. Limits from
``genesys/NOTIFICATIONS_API.md`` are named constants next to the fields they bound.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from connector.api import PluginSpec
from connector.plugins.genesys import regions, topics

MAX_TOPICS_PER_CHANNEL = 1000
"""More than 1,000 topics on one channel is refused with HTTP 400 (NOTIFICATIONS_API.md §0)."""

MAX_CHANNELS_PER_CLIENT = 20
"""The 21st channel of an OAuth client silently evicts the oldest one (NOTIFICATIONS_API.md §0)."""

CHANNEL_LIFETIME_S = 24 * 3600
"""A channel lives 24 h after its last subscription (NOTIFICATIONS_API.md §2.3)."""

HEARTBEAT_INTERVAL_S = 30
"""Genesys sends a heartbeat about every 30 s (NOTIFICATIONS_API.md §4.3)."""

DEFAULT_ROTATE_INTERVAL_MS = 20 * 3600 * 1000
"""Rotate a channel after 20 h: 4 h before the 24 h expiry leaves room for many backed-off,
rate-limited retries of the rotation (300 requests/min per token), and it is within the
12-23 h window the spec recommends (§8.1)."""


def dotted(name: str) -> str:
    """``genesys_client_id`` -> ``genesys.client.id``."""
    return name.replace("_", ".")


class Subscription(BaseModel):
    """One entry of ``genesys.subscriptions``: a template with ids, or raw topic names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str | list[str] | None = Field(
        None,
        description="Family name(s) from the catalogue, e.g. queue.conversations or "
        "[queue.conversations, queue.observations]; expanded once per id.",
    )
    ids: list[str] = Field(
        default_factory=list, description="GUIDs substituted for {id} in the template(s)."
    )
    events: list[str] | None = Field(
        None,
        description="For template conversation.detail: the detail events to subscribe "
        "(default: all of them).",
    )
    topic: str | None = Field(None, description="One raw Genesys topic name.")
    topics: list[str] | None = Field(None, description="Several raw Genesys topic names.")

    _expanded: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _expand(self) -> Subscription:
        has_template = self.template is not None
        has_raw = self.topic is not None or self.topics is not None
        if has_template == has_raw:
            raise ValueError("give either 'template' (with 'ids') or 'topic'/'topics', not both")
        if has_raw and (self.ids or self.events):
            raise ValueError("'ids' and 'events' only apply to 'template'")
        expanded: list[str] = []
        try:
            if has_template:
                names = [self.template] if isinstance(self.template, str) else self.template
                if not names:
                    raise topics.TopicError("'template' needs at least one family name")
                if self.events and "conversation.detail" not in names:
                    raise topics.TopicError("'events' only applies to template conversation.detail")
                for name in names:
                    if not isinstance(name, str):
                        raise topics.TopicError(f"Invalid template {name!r}: expected a name")
                    events = self.events if name == "conversation.detail" else None
                    expanded.extend(topics.expand_template(name, self.ids, events))
            else:
                raw = ([self.topic] if self.topic is not None else []) + list(self.topics or [])
                for name in raw:
                    topics.validate_topic(name)
                    expanded.append(name)
        except topics.TopicError as exc:
            raise ValueError(str(exc)) from None
        self._expanded = expanded
        return self

    def expanded(self) -> list[str]:
        """The concrete topic names of this entry."""
        return list(self._expanded)


class GenesysNotificationsConfig(BaseModel):
    """Config of the ``genesys_notifications`` source connector."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=dotted, populate_by_name=True, frozen=True
    )

    # --- connecting to Genesys -----------------------------------------------------------------
    genesys_region: str | None = Field(
        None,
        description="Genesys Cloud region: a domain (mypurecloud.com, mypurecloud.de, ...) or an "
        "AWS region name (us-east-1). Mutually exclusive with genesys.login.url/genesys.api.url.",
        examples=["mypurecloud.com", "eu-central-1"],
    )
    genesys_login_url: str | None = Field(
        None,
        description="Explicit login base URL (serves /oauth/token), e.g. the simulator's "
        "http://127.0.0.1:PORT. Needs genesys.api.url.",
    )
    genesys_api_url: str | None = Field(
        None, description="Explicit API base URL (serves /api/v2/...). Needs genesys.login.url."
    )
    genesys_client_id: str = Field(
        ..., min_length=1, description="OAuth client id (client-credentials grant)."
    )
    genesys_client_secret: SecretStr = Field(..., description="OAuth client secret.")
    genesys_subscriptions: list[Subscription] = Field(
        ...,
        min_length=1,
        description="What to subscribe: templates with ids and/or raw topic names.",
    )

    # --- records -------------------------------------------------------------------------------
    topic_routing: str | dict[str, str] = Field(
        topics.DEFAULT_ROUTING,
        description="Kafka topic per family: a template with {family} and {connector}, or a map "
        "family -> topic (families not in the map use genesys.{family}).",
        examples=["genesys.{family}", {"queue.conversations": "cc.conversations"}],
    )
    gaps_topic: str = Field(
        "genesys.gaps",
        description="Kafka topic for gap records: windows in which events may have been lost.",
    )

    # --- channels ------------------------------------------------------------------------------
    channel_max_topics: int = Field(
        MAX_TOPICS_PER_CHANNEL,
        ge=1,
        le=MAX_TOPICS_PER_CHANNEL,
        description="Topics per channel (Genesys allows at most 1,000).",
    )
    channels_max: int = Field(
        MAX_CHANNELS_PER_CLIENT,
        ge=1,
        le=MAX_CHANNELS_PER_CLIENT,
        description="Channels this process may use per OAuth client, shared by every connector "
        "of the process with the same client. Lower it when other processes use the client.",
    )
    channels_rotation_headroom: int = Field(
        1,
        ge=0,
        le=MAX_CHANNELS_PER_CLIENT - 1,
        description="Channels kept free per OAuth client for make-before-break rotations; "
        "rotations queue for these slots. 0 forces break-before-make (reported gaps).",
    )
    channel_rotate_interval_ms: int = Field(
        DEFAULT_ROTATE_INTERVAL_MS,
        ge=60_000,
        lt=CHANNEL_LIFETIME_S * 1000,
        description="Rotate each channel (make-before-break) after this long, well before the "
        "24 h channel lifetime.",
    )
    channel_rotate_on_token_expiry: bool = Field(
        True,
        description="Rotate a channel before the token that created it expires (a channel may "
        "die with its token).",
    )
    token_refresh_margin_ms: int = Field(
        300_000,
        ge=0,
        description="Renew the OAuth token this long before it expires (capped at a tenth of "
        "the token's lifetime).",
    )

    # --- liveness and reconnects ---------------------------------------------------------------
    ping_interval_ms: int = Field(
        30_000, ge=100, description='Send an application ping {"message":"ping"} this often.'
    )
    liveness_timeout_ms: int = Field(
        90_000,
        ge=200,
        description="No heartbeat, pong or event for this long means the socket is dead and is "
        "replaced (Genesys heartbeats every ~30 s).",
    )
    reconnect_backoff_initial_ms: int = Field(
        1_000, ge=1, description="First delay before a reconnect or REST retry."
    )
    reconnect_backoff_max_ms: int = Field(
        60_000, ge=1, description="Cap of the exponential, jittered reconnect delay."
    )
    http_timeout_ms: int = Field(10_000, ge=100, description="Timeout of each REST call.")

    # --- task internals ------------------------------------------------------------------------
    buffer_capacity: int = Field(
        20_000, ge=1, description="Frames buffered per task between the sockets and poll()."
    )
    poll_max_records: int = Field(2_000, ge=1, description="Records returned per poll() at most.")
    dedupe_window_ms: int = Field(
        30_000,
        ge=0,
        description="After a channel overlap (make-before-break), keep suppressing duplicate "
        "frames for this long.",
    )
    dedupe_max_entries: int = Field(
        200_000, ge=1, description="Bound of the duplicate-suppression memory."
    )

    _topics: list[str] = PrivateAttr(default_factory=list)

    @field_validator("genesys_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is not None:
            regions.resolve_region(value)
        return value

    @field_validator("gaps_topic")
    @classmethod
    def _valid_gaps_topic(cls, value: str) -> str:
        if not topics.is_valid_kafka_topic(value):
            raise ValueError(f"Invalid value '{value}' for gaps.topic: not a legal Kafka topic")
        return value

    @field_validator("genesys_login_url", "genesys_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"Invalid value '{value}': expected an http:// or https:// URL")
        if value is not None and "@" in value.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError("credentials in the URL are not allowed; use genesys.client.*")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> GenesysNotificationsConfig:
        explicit = self.genesys_login_url is not None or self.genesys_api_url is not None
        if self.genesys_region and explicit:
            raise ValueError(
                "set either genesys.region or genesys.login.url + genesys.api.url, not both"
            )
        if not self.genesys_region and not (self.genesys_login_url and self.genesys_api_url):
            raise ValueError(
                "set genesys.region (e.g. mypurecloud.com), or both genesys.login.url and "
                "genesys.api.url"
            )
        if self.liveness_timeout_ms <= self.ping_interval_ms:
            raise ValueError(
                f"liveness.timeout.ms ({self.liveness_timeout_ms}) must be greater than "
                f"ping.interval.ms ({self.ping_interval_ms}) or every socket looks dead"
            )
        if self.reconnect_backoff_max_ms < self.reconnect_backoff_initial_ms:
            raise ValueError("reconnect.backoff.max.ms must be >= reconnect.backoff.initial.ms")
        if self.channels_rotation_headroom >= self.channels_max:
            raise ValueError(
                f"channels.rotation.headroom ({self.channels_rotation_headroom}) must be below "
                f"channels.max ({self.channels_max})"
            )
        rule, overrides = self.routing()
        problems = topics.validate_routing(rule, overrides)
        if problems:
            raise ValueError("; ".join(problems))
        self._topics = topics.dedupe(t for s in self.genesys_subscriptions for t in s.expanded())
        return self

    # --- derived values ------------------------------------------------------------------------
    def topics(self) -> list[str]:
        """Every concrete Genesys topic to subscribe, deduplicated, in declaration order."""
        return list(self._topics)

    def routing(self) -> tuple[str, dict[str, str]]:
        """``(rule, overrides)`` for :class:`~connector.plugins.genesys.topics.Router`."""
        if isinstance(self.topic_routing, str):
            return self.topic_routing, {}
        return topics.DEFAULT_ROUTING, dict(self.topic_routing)

    def hosts(self) -> regions.Hosts:
        """Login and API base URLs."""
        return regions.hosts_for(self.genesys_region, self.genesys_login_url, self.genesys_api_url)

    def usable_channels(self) -> int:
        """Channels a plan may use: the budget minus the make-before-break headroom."""
        return self.channels_max - self.channels_rotation_headroom


EXAMPLE: dict[str, Any] = {
    "genesys.region": "mypurecloud.com",
    "genesys.client.id": "${env:GENESYS_CLIENT_ID}",
    "genesys.client.secret": "${env:GENESYS_CLIENT_SECRET}",
    "genesys.subscriptions": [
        {
            "template": ["queue.conversations", "queue.observations"],
            "ids": ["0e185c02-aca1-4a72-82ea-2e78684e2c89"],
        },
        {
            "template": ["user.presence", "user.routingStatus"],
            "ids": ["e40f28ea-fa86-493f-a5b8-d559c8533c96"],
        },
        {"topic": "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.station"},
    ],
}

SPEC = PluginSpec(
    name="genesys_notifications",
    summary="Genesys Cloud notification events (WebSocket channels) as typed Avro records.",
    version="0.1.0",
    config_model=GenesysNotificationsConfig,
    status="beta",
    examples=(EXAMPLE,),
)
