"""Genesys topic names: the family catalogue, expansion of the YAML subscriptions, validation and
routing to Kafka topics.

A *family* groups every concrete Genesys topic that shares one template and one eventBody model,
e.g. ``queue.conversations`` = ``v2.routing.queues.{id}.conversations``. The family decides the
default Kafka topic, the record key and the Avro schema. Topics outside the catalogue may still be
subscribed as raw names; they belong to the ``other`` family (generic envelope schema).

Rules enforced here (see ``genesys/NOTIFICATIONS_API.md``):

- ids are GUIDs (§5.1); a malformed id is refused offline instead of being rejected by Genesys;
- ``channel.metadata`` and ``v2.system.*`` are sent automatically and must never be subscribed
  (§3.1);
- combined topics (``prefix?a&b``) are refused: how they count against the 1,000-topic limit is
  unconfirmed (§3.1), and the planner must count exactly;
- Genesys' own client refuses topic names of 200 characters or more (§0).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

MAX_TOPIC_NAME_LENGTH = 199
"""Genesys' streaming client refuses topic ids of length >= 200 (NOTIFICATIONS_API.md §0)."""

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID = re.compile(f"^{UUID_PATTERN}$")
_UUID_ANYWHERE = re.compile(UUID_PATTERN)
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

KeySource = Literal["topic_id", "body_id", "body_user_id"]

DETAIL_EVENT_TYPES: tuple[str, ...] = (
    "customer.start",
    "customer.end",
    "acd.start",
    "acd.end",
    "user.start",
    "user.end",
    "acw",
    "wrapup",
    "flow.start",
    "flow.end",
    "flow.outcome",
    "attributes",
    "contact",
    "outbound",
    "voicemail.start",
    "voicemail.end",
)
"""Members of ``v2.detail.events.conversation.{id}.*`` (NOTIFICATIONS_API.md §5.2)."""


@dataclass(frozen=True, slots=True)
class TopicFamily:
    """One template of the catalogue.

    Attributes:
        name: the family name users type (``template:`` in YAML) and the ``{family}`` of routing.
        template: the Genesys template with ``{id}`` (and ``{event}`` for detail events).
        id_kind: what the ``{id}`` stands for, for messages (queue, user, conversation).
        key_source: how the record key is found: the id in the topic name, the body's ``id``
            (a conversation snapshot's conversation id) or the body's ``user.id``.
        schema: the name of the Avro schema in ``schemas/`` (``None``: generic envelope).
        timestamp_fields: dotted body paths holding the event's time, newest wins.
        sdk_model: the Genesys SDK model the schema is derived from (documentation).
    """

    name: str
    template: str
    id_kind: str
    key_source: KeySource
    schema: str | None
    timestamp_fields: tuple[str, ...] = ()
    sdk_model: str = ""


FAMILIES: tuple[TopicFamily, ...] = (
    TopicFamily(
        "queue.conversations",
        "v2.routing.queues.{id}.conversations",
        "queue",
        "body_id",
        "QueueConversation",
        (),
        "QueueConversationEventTopicConversation",
    ),
    TopicFamily(
        "queue.users",
        "v2.routing.queues.{id}.users",
        "queue",
        "body_user_id",
        "QueueMember",
        (),
        "QueueUserEventTopicQueueMember",
    ),
    TopicFamily(
        "queue.observations",
        "v2.analytics.queues.{id}.observations",
        "queue",
        "topic_id",
        "QueueObservations",
        (),
        "StatEventQueueTopicStatsNotification",
    ),
    TopicFamily(
        "user.conversations",
        "v2.users.{id}.conversations",
        "user",
        "body_id",
        "UserConversation",
        (),
        "ConversationEventTopicConversation",
    ),
    TopicFamily(
        "user.presence",
        "v2.users.{id}.presence",
        "user",
        "topic_id",
        "UserPresence",
        ("modifiedDate",),
        "PresenceEventUserPresence",
    ),
    TopicFamily(
        "user.routingStatus",
        "v2.users.{id}.routingStatus",
        "user",
        "topic_id",
        "UserRoutingStatus",
        ("routingStatus.startTime",),
        "UserRoutingStatusUserRoutingStatus",
    ),
    TopicFamily(
        "user.activity",
        "v2.users.{id}.activity",
        "user",
        "topic_id",
        "UserActivity",
        (
            "routingStatus.startTime",
            "presence.modifiedDate",
            "outOfOffice.modifiedDate",
            "dateActiveQueuesChanged",
        ),
        "AgentActivityChangedTopicAgentActivity",
    ),
    TopicFamily(
        "conversation.detail",
        "v2.detail.events.conversation.{id}.{event}",
        "conversation",
        "topic_id",
        "ConversationDetailEvent",
        ("eventTime",),
        "<Name>DetailEventTopic<Name>Event",
    ),
)
"""The typed families: every family the simulator produces (NOTIFICATIONS_API.md §5.2)."""

OTHER_FAMILY = TopicFamily(
    "other", "<any other topic>", "entity", "topic_id", None, (), "(generic envelope)"
)
"""Raw topics outside the catalogue: generic envelope schema, key = first GUID in the name."""

FAMILIES_BY_NAME: dict[str, TopicFamily] = {f.name: f for f in (*FAMILIES, OTHER_FAMILY)}

# Loose matchers (any id segment) so that a well-shaped topic with a malformed id is reported as
# such instead of silently falling into the "other" family.
_DETAIL_EVENTS = "|".join(re.escape(e) for e in DETAIL_EVENT_TYPES)
_MATCHERS: tuple[tuple[re.Pattern[str], TopicFamily], ...] = (
    *(
        (
            re.compile(
                "^" + re.escape(f.template).replace(r"\{id\}", "([^.?&]+)") + "$",
            ),
            f,
        )
        for f in FAMILIES
        if f.name != "conversation.detail"
    ),
    (
        re.compile(r"^v2\.detail\.events\.conversation\.([^.?&]+)\.(" + _DETAIL_EVENTS + ")$"),
        FAMILIES_BY_NAME["conversation.detail"],
    ),
)


class TopicError(ValueError):
    """A subscription entry cannot be turned into valid Genesys topic names."""


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """What the catalogue knows about one concrete topic name."""

    family: TopicFamily
    entity_id: str | None
    detail_event: str | None = None


def match_topic(topic: str) -> TopicMatch:
    """Find the family of a concrete topic name (hot path: a few regex tries, then cached).

    Topics outside the catalogue map to :data:`OTHER_FAMILY`, whose entity id is the first GUID
    found in the name (``None`` if there is none). The id is not validated here; use
    :func:`validate_topic` for user input.
    """
    found = _match_cache.get(topic)
    if found is None:
        found = _match_uncached(topic)
        if len(_match_cache) < _MATCH_CACHE_MAX:
            _match_cache[topic] = found
    return found


_MATCH_CACHE_MAX = 200_000
_match_cache: dict[str, TopicMatch] = {}


def _match_uncached(topic: str) -> TopicMatch:
    for pattern, family in _MATCHERS:
        m = pattern.match(topic)
        if m:
            detail = m.group(2) if family.name == "conversation.detail" else None
            return TopicMatch(family, m.group(1), detail)
    uuid = _UUID_ANYWHERE.search(topic)
    return TopicMatch(OTHER_FAMILY, uuid.group(0) if uuid else None)


def is_system_topic(topic: str) -> bool:
    """``channel.metadata`` and ``v2.system.*``: sent automatically, never subscribed (§3.1)."""
    return topic == "channel.metadata" or topic.startswith("v2.system.") or topic == "v2.system"


def validate_topic(topic: str) -> TopicMatch:
    """Check one concrete topic name a user asked for; raise :class:`TopicError` with the fix."""
    if not topic:
        raise TopicError("empty topic name")
    if is_system_topic(topic):
        raise TopicError(
            f"Invalid value '{topic}': system topics (channel.metadata, v2.system.*) are sent "
            "automatically on every channel and must not be subscribed"
        )
    if "?" in topic or "&" in topic:
        raise TopicError(
            f"Invalid value '{topic}': combined topics (prefix?a&b) are not supported; list each "
            "topic separately so the 1,000-topics-per-channel limit can be counted exactly"
        )
    if "{" in topic or "}" in topic:
        raise TopicError(
            f"Invalid value '{topic}': a raw topic must be concrete; use 'template:' with 'ids:' "
            "to expand a template"
        )
    if not _TOPIC_CHARS.match(topic):
        raise TopicError(
            f"Invalid value '{topic}': topic names contain only letters, digits, '.', '_', '-'"
        )
    if len(topic) > MAX_TOPIC_NAME_LENGTH:
        raise TopicError(
            f"Invalid value '{topic[:40]}...': topic names must be shorter than 200 characters"
        )
    if not topic.startswith("v2."):
        raise TopicError(f"Invalid value '{topic}': Genesys notification topics start with 'v2.'")
    found = _match_uncached(topic)
    if found.family is not OTHER_FAMILY and not _UUID.match(found.entity_id or ""):
        raise TopicError(
            f"Invalid value '{topic}': '{found.entity_id}' is not a valid {found.family.id_kind} "
            "id (Genesys ids are GUIDs like 0e185c02-aca1-4a72-82ea-2e78684e2c89)"
        )
    return found


def validate_id(entity_id: str, kind: str) -> str:
    """Return the id if it is a GUID, else raise :class:`TopicError` naming the kind."""
    if not isinstance(entity_id, str) or not _UUID.match(entity_id):
        raise TopicError(
            f"Invalid value '{entity_id}': not a valid {kind} id "
            "(Genesys ids are GUIDs like 0e185c02-aca1-4a72-82ea-2e78684e2c89)"
        )
    return entity_id


def expand_template(
    family_name: str, ids: Sequence[str], events: Sequence[str] | None = None
) -> list[str]:
    """Expand one ``template:`` entry into concrete topic names.

    ``events`` selects detail-event members for ``conversation.detail`` (default: all of them)
    and must be absent for other families.
    """
    family = FAMILIES_BY_NAME.get(family_name)
    if family is None or family is OTHER_FAMILY:
        known = ", ".join(f.name for f in FAMILIES)
        raise TopicError(f"Invalid value '{family_name}' for template: expected one of {known}")
    if not ids:
        raise TopicError(f"template '{family_name}' needs at least one id in 'ids'")
    if family.name == "conversation.detail":
        members = list(events) if events else list(DETAIL_EVENT_TYPES)
        for event in members:
            if event not in DETAIL_EVENT_TYPES:
                raise TopicError(
                    f"Invalid value '{event}' for events: expected one of "
                    + ", ".join(DETAIL_EVENT_TYPES)
                )
    elif events:
        raise TopicError(
            f"'events' only applies to template conversation.detail, not {family_name}"
        )
    else:
        members = []
    topics: list[str] = []
    for entity_id in ids:
        validate_id(entity_id, family.id_kind)
        base = family.template.replace("{id}", entity_id)
        if members:
            topics.extend(base.replace("{event}", event) for event in members)
        else:
            topics.append(base)
    return topics


def dedupe(topics: Iterable[str]) -> list[str]:
    """Drop repeated names, keeping first-seen order (stable plans across restarts)."""
    return list(dict.fromkeys(topics))


# ---------------------------------------------------------------------------------------------
# Routing: family -> Kafka topic

DEFAULT_ROUTING = "genesys.{family}"
"""Default rule: one Kafka topic per family, e.g. ``genesys.queue.conversations``."""


@dataclass(frozen=True, slots=True)
class Router:
    """Maps a family to its Kafka topic, resolved once per family (not per record).

    ``rule`` is a template with ``{family}`` and ``{connector}`` placeholders, applied to every
    family without an entry in ``overrides`` (family -> template or plain topic name).
    """

    rule: str = DEFAULT_ROUTING
    overrides: Mapping[str, str] | None = None
    connector: str = ""

    def topic_for(self, family: str) -> str:
        """The Kafka topic for ``family``."""
        template = (self.overrides or {}).get(family, self.rule)
        return template.replace("{family}", family).replace("{connector}", self.connector)

    def table(self) -> dict[str, str]:
        """Every family's Kafka topic (for start-up logs and validation)."""
        return {name: self.topic_for(name) for name in FAMILIES_BY_NAME}


def validate_routing(rule: str, overrides: Mapping[str, str] | None) -> list[str]:
    """Problems with a routing rule: unknown families or invalid resulting Kafka topic names."""
    problems: list[str] = []
    for family in overrides or {}:
        if family not in FAMILIES_BY_NAME:
            problems.append(
                f"Invalid family '{family}' in topic.routing: expected one of "
                + ", ".join(FAMILIES_BY_NAME)
            )
    router = Router(
        rule, {k: v for k, v in (overrides or {}).items() if k in FAMILIES_BY_NAME}, "c"
    )
    for family, topic in router.table().items():
        if "{" in topic or "}" in topic:
            problems.append(
                f"Invalid routing '{topic}' for family {family}: only {{family}} and {{connector}} "
                "placeholders are supported"
            )
        elif not _KAFKA_TOPIC.match(topic):
            problems.append(
                f"Invalid Kafka topic '{topic}' for family {family}: use 1-249 characters from "
                "letters, digits, '.', '_', '-'"
            )
    return problems


def is_valid_kafka_topic(name: str) -> bool:
    """Whether ``name`` is a legal Kafka topic name."""
    return bool(_KAFKA_TOPIC.match(name)) and name not in (".", "..")
