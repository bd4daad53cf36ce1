"""The topic catalogue: families the simulator serves, parsing, and permission checks.

Permission strings per topic are UNCONFIRMED in the spec (section 5.2); the ones below are
plausible Genesys permission names, used consistently by availabletopics and subscriptions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TopicFamily:
    template: str  # e.g. "v2.users.{id}.presence"
    description: str
    permissions: tuple[str, ...]
    parameters: tuple[str, ...]
    model: str  # SDK model name of the eventBody (PY-MAP)
    requires_current_user_or_permission: bool = False


DETAIL_KINDS: tuple[str, ...] = (
    "customer.start",
    "customer.end",
    "acd.start",
    "acd.end",
    "user.start",
    "user.end",
    "acw",
    "wrapup",
)

_DETAIL_MODELS = {
    "customer.start": "CustomerStartDetailEventTopicCustomerStartEvent",
    "customer.end": "CustomerEndDetailEventTopicCustomerEndEvent",
    "acd.start": "AcdStartDetailEventTopicAcdStartEvent",
    "acd.end": "AcdEndDetailEventTopicAcdEndEvent",
    "user.start": "UserStartDetailEventTopicUserStartEvent",
    "user.end": "UserEndDetailEventTopicUserEndEvent",
    "acw": "AcwDetailEventTopicAfterCallWorkEvent",
    "wrapup": "WrapupDetailEventTopicWrapupEvent",
}

FAMILIES: tuple[TopicFamily, ...] = (
    TopicFamily(
        "v2.routing.queues.{id}.conversations",
        "Conversations in a queue (full conversation snapshots)",
        ("routing:queue:view", "conversation:communication:view"),
        ("queueId",),
        "QueueConversationEventTopicConversation",
    ),
    TopicFamily(
        "v2.routing.queues.{id}.users",
        "Queue membership changes",
        ("routing:queueMember:view",),
        ("queueId",),
        "QueueUserEventTopicQueueMember",
    ),
    TopicFamily(
        "v2.analytics.queues.{id}.observations",
        "Real-time queue observation metrics",
        ("analytics:queueObservation:view",),
        ("queueId",),
        "StatEventQueueTopicStatsNotification",
    ),
    TopicFamily(
        "v2.users.{id}.conversations",
        "Conversations of a user (full conversation snapshots)",
        ("conversation:communication:view",),
        ("userId",),
        "ConversationEventTopicConversation",
        True,
    ),
    TopicFamily(
        "v2.users.{id}.presence",
        "Presence of a user",
        ("presence:userPresence:view",),
        ("userId",),
        "PresenceEventUserPresence",
        True,
    ),
    TopicFamily(
        "v2.users.{id}.routingStatus",
        "Routing status of a user",
        ("routing:agent:view",),
        ("userId",),
        "UserRoutingStatusUserRoutingStatus",
        True,
    ),
    TopicFamily(
        "v2.users.{id}.activity",
        "Routing status, presence, out-of-office and active queues of an agent",
        ("routing:agent:view", "presence:userPresence:view"),
        ("userId",),
        "AgentActivityChangedTopicAgentActivity",
        True,
    ),
    *(
        TopicFamily(
            "v2.detail.events.conversation.{id}." + kind,
            f"Conversation detail event {kind}",
            ("analytics:conversationDetail:view",),
            ("conversationId",),
            _DETAIL_MODELS[kind],
        )
        for kind in DETAIL_KINDS
    ),
)

SYSTEM_FAMILIES: tuple[TopicFamily, ...] = (
    TopicFamily(
        "v2.system.socket_closing",
        "Sent automatically about a minute before the server closes the WebSocket",
        (),
        (),
        "SystemMessageSystemMessage",
    ),
    TopicFamily(
        "v2.system.no_longer_subscribed.{id}",
        "Sent automatically when the channel lost its subscriptions",
        (),
        ("id",),
        "SystemMessageSystemMessage",
    ),
    TopicFamily(
        "v2.system.token_revoked.{id}",
        "Sent automatically when the token of the channel was revoked",
        (),
        ("id",),
        "SystemMessageSystemMessage",
    ),
)

_ID = r"([A-Za-z0-9_\-]{1,100})"


def _compile(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(template).replace(re.escape("{id}"), _ID) + "$")


_MATCHERS: tuple[tuple[re.Pattern[str], TopicFamily], ...] = tuple(
    (_compile(f.template), f) for f in FAMILIES
)
_BY_TEMPLATE: dict[str, TopicFamily] = {f.template: f for f in FAMILIES + SYSTEM_FAMILIES}


def family_of(topic: str) -> tuple[TopicFamily, str] | None:
    """The subscribable family of a concrete topic and its entity id, or None."""
    for pattern, fam in _MATCHERS:
        m = pattern.match(topic)
        if m:
            return fam, m.group(1)
    return None


def family(template: str) -> TopicFamily:
    return _BY_TEMPLATE[template]


def expand_combined(topic_id: str) -> list[str]:
    """``prefix?leaf1&leaf2`` -> ``[prefix.leaf1, prefix.leaf2]``; a plain id -> ``[id]``."""
    if "?" not in topic_id:
        return [topic_id]
    prefix, _, leaves = topic_id.partition("?")
    return [f"{prefix}.{leaf}" for leaf in leaves.split("&") if leaf]


def _perm_matches(granted: str, required: str) -> bool:
    if granted == "*":
        return True
    g, r = granted.split(":"), required.split(":")
    return len(g) == len(r) and all(a in ("*", b) for a, b in zip(g, r, strict=True))


def missing_permissions(granted: tuple[str, ...], fam: TopicFamily) -> list[str]:
    return [p for p in fam.permissions if not any(_perm_matches(g, p) for g in granted)]


def available_topic(fam: TopicFamily, expand: set[str]) -> dict[str, Any]:
    """An ``AvailableTopic`` entity; optional fields follow ``expand`` like the real API."""
    out: dict[str, Any] = {"id": fam.template}
    if "description" in expand:
        out["description"] = fam.description
    if "requiresPermissions" in expand:
        out["requiresPermissions"] = list(fam.permissions)
    if "permissionDetails" in expand:
        details: list[dict[str, Any]] = []
        if fam.requires_current_user_or_permission:
            details.append(
                {"type": "requiresCurrentUser", "permissions": [], "allowsCurrentUser": True}
            )
        if fam.permissions:
            details.append(
                {
                    "type": "requiresPermissions",
                    "permissions": list(fam.permissions),
                    "allowsCurrentUser": fam.requires_current_user_or_permission,
                    "enforced": True,
                }
            )
        out["permissionDetails"] = details
    if "enforced" in expand:
        out["enforced"] = True
    if "visibility" in expand:
        out["visibility"] = "Public"
    if "transports" in expand:
        out["transports"] = ["Websocket"]
    if "topicParameters" in expand:
        out["topicParameters"] = list(fam.parameters)
    if "schema" in expand:
        out["schema"] = {
            "id": "urn:jsonschema:com:inin:sim:" + fam.model,
            "type": "object",
            "title": fam.model,
        }
    out["requiresCurrentUser"] = False
    out["requiresCurrentUserOrPermission"] = fam.requires_current_user_or_permission
    return out


def catalogue(expand: set[str]) -> dict[str, Any]:
    """``AvailableTopicEntityListing`` for GET /api/v2/notifications/availabletopics."""
    return {"entities": [available_topic(f, expand) for f in FAMILIES]}
