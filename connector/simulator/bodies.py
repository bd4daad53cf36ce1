"""eventBody builders, shaped like the Genesys SDK models named in spec section 5.3.

Conversation, presence, routing, activity, membership and observation bodies use ISO-8601
strings (``2024-05-01T10:00:00.000Z``); detail events use epoch milliseconds (``eventTime``).
Enum casing follows the spec: lower-case in conversation snapshots, upper-case in detail events.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.simulator.model import Agent, Conversation, Participant, Queue

MEDIA_ARRAY = {"voice": "calls", "chat": "chats", "email": "emails", "message": "messages"}
DETAIL_MEDIA = {"voice": "VOICE", "chat": "CHAT", "email": "EMAIL", "message": "MESSAGE"}
DIVISION_ID = "b7f6a1c0-3d2e-4f5a-9b8c-0d1e2f3a4b5c"


def iso(ts: float) -> str:
    ms = round(ts * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def ms(ts: float) -> int:
    return round(ts * 1000)


def _media(conv: Conversation, p: Participant) -> dict[str, Any]:
    m: dict[str, Any] = {
        "id": p.session_id,
        "state": p.state,
        "initialState": p.initial_state,
        "held": p.held,
    }
    if p.disconnect_type:
        m["disconnectType"] = p.disconnect_type
    if p.connected_time is not None:
        m["connectedTime"] = iso(p.connected_time)
    if p.end_time is not None:
        m["disconnectedTime"] = iso(p.end_time)
    if p.start_hold_time is not None and p.held:
        m["startHoldTime"] = iso(p.start_hold_time)
    if p.purpose == "agent":
        m["afterCallWorkRequired"] = True
        if p.acw_state:
            acw: dict[str, Any] = {"state": p.acw_state}
            if p.start_acw_time is not None:
                acw["startTime"] = iso(p.start_acw_time)
            if p.end_acw_time is not None:
                acw["endTime"] = iso(p.end_acw_time)
            m["afterCallWork"] = acw
        if p.wrapup_code:
            m["wrapup"] = _wrapup(p)
    media = conv.media
    if media == "voice":
        m.update(
            direction=conv.direction,
            recording=False,
            recordingState="none",
            muted=False,
            confined=False,
            self={"addressNormalized": p.address},
            other={"addressNormalized": conv.customer_address},
        )
    elif media == "chat":
        m.update(roomId=f"{conv.id}@conference.sim.pure.cloud", scriptId=conv.script_id)
    elif media == "email":
        m.update(
            direction=conv.direction,
            subject=conv.subject,
            messagesSent=1 if p.purpose == "agent" and p.state == "disconnected" else 0,
        )
    elif media == "message":
        m.update(
            direction=conv.direction,
            type="webmessaging",
            fromAddress={"addressNormalized": conv.customer_address},
        )
    return m


def _wrapup(p: Participant) -> dict[str, Any]:
    w: dict[str, Any] = {
        "code": p.wrapup_code,
        "notes": p.wrapup_notes,
        "tags": [],
        "durationSeconds": p.wrapup_duration_s,
    }
    if p.end_acw_time is not None:
        w["endTime"] = iso(p.end_acw_time)
    return w


def _participant(conv: Conversation, p: Participant) -> dict[str, Any]:
    d: dict[str, Any] = {"id": p.id, "purpose": p.purpose}
    if p.purpose != "acd":
        d["name"] = p.name
    if p.connected_time is not None:
        d["connectedTime"] = iso(p.connected_time)
    if p.end_time is not None:
        d["endTime"] = iso(p.end_time)
    if p.user_id:
        d["userId"] = p.user_id
    if p.queue_id:
        d["queueId"] = p.queue_id
    if p.purpose == "customer":
        d["externalContactId"] = conv.external_contact_id
    if p.purpose == "agent":
        d.update(
            wrapupRequired=True,
            wrapupPrompt="mandatoryTimeout",
            alertingTimeoutMs=conv.alerting_timeout_ms,
        )
        if p.start_acw_time is not None:
            d["startAcwTime"] = iso(p.start_acw_time)
        if p.end_acw_time is not None:
            d["endAcwTime"] = iso(p.end_acw_time)
        if p.wrapup_code:
            d["wrapup"] = _wrapup(p)
    if p.purpose == "acd" and p.queue_id:
        d["conversationRoutingData"] = {
            "queue": {"id": p.queue_id},
            "priority": conv.priority,
            "skills": [{"id": s} for s in conv.skill_ids],
        }
    if p.purpose == "customer":
        d["attributes"] = conv.attributes
    d[MEDIA_ARRAY[conv.media]] = [_media(conv, p)]
    return d


def conversation(conv: Conversation) -> dict[str, Any]:
    """``QueueConversationEventTopicConversation`` / ``ConversationEventTopicConversation``."""
    return {
        "id": conv.id,
        "maxParticipants": len(conv.participants),
        "participants": [_participant(conv, p) for p in conv.participants],
        "recordingState": "none",
        "externalTag": conv.external_tag,
        "divisions": [
            {"division": {"id": DIVISION_ID}, "entities": [{"id": q} for q in conv.queue_ids]}
        ],
    }


def presence(agent: Agent) -> dict[str, Any]:
    """``PresenceEventUserPresence``."""
    return {
        "source": "PURECLOUD",
        "presenceDefinition": {"id": agent.presence_id, "systemPresence": agent.presence},
        "primary": True,
        "message": "",
        "modifiedDate": iso(agent.presence_modified),
    }


def routing_status(agent: Agent) -> dict[str, Any]:
    """``UserRoutingStatusUserRoutingStatus``."""
    return {
        "id": agent.id,
        "routingStatus": {"status": agent.routing, "startTime": iso(agent.routing_start)},
    }


def activity(agent: Agent) -> dict[str, Any]:
    """``AgentActivityChangedTopicAgentActivity``."""
    return {
        "id": agent.id,
        "routingStatus": {"status": agent.routing, "startTime": iso(agent.routing_start)},
        "presence": {
            "presenceDefinition": {"id": agent.presence_id, "systemPresence": agent.presence},
            "presenceMessage": "",
            "modifiedDate": iso(agent.presence_modified),
        },
        "outOfOffice": {"active": False, "modifiedDate": iso(agent.created)},
        "activeQueueIds": list(agent.queue_ids) if agent.presence == "ON_QUEUE" else [],
        "dateActiveQueuesChanged": iso(agent.presence_modified),
    }


def queue_member(queue: Queue, agent: Agent, joined: bool) -> dict[str, Any]:
    """``QueueUserEventTopicQueueMember``."""
    return {"id": agent.id, "user": {"id": agent.id}, "queueId": queue.id, "joined": joined}


def observations(queue: Queue, ts: float, media: str) -> dict[str, Any]:
    """``StatEventQueueTopicStatsNotification``."""
    stamp = iso(ts)
    waiting = queue.counts["waiting", media]
    interacting = queue.counts["interacting", media]
    alerting = queue.counts["alerting", media]
    on_queue = sum(1 for a in queue.members if a.presence == "ON_QUEUE")
    idle = sum(1 for a in queue.members if a.presence == "ON_QUEUE" and a.routing == "IDLE")
    return {
        "group": {"queueId": queue.id, "mediaType": media},
        "data": [
            {
                "interval": f"{stamp}/{stamp}",
                "metrics": [
                    {"metric": "oWaiting", "stats": {"count": waiting}},
                    {"metric": "oInteracting", "stats": {"count": interacting}},
                    {"metric": "oAlerting", "stats": {"count": alerting}},
                    {"metric": "oOnQueueUsers", "qualifier": "IDLE", "stats": {"count": idle}},
                    {
                        "metric": "oOnQueueUsers",
                        "qualifier": "INTERACTING",
                        "stats": {"count": on_queue - idle},
                    },
                ],
            }
        ],
    }


def detail(
    kind: str, conv: Conversation, p: Participant, ts: float, **extra: Any
) -> dict[str, Any]:
    """A ``<Kind>DetailEventTopic<Kind>Event``: flat, epoch-millisecond ``eventTime``."""
    d: dict[str, Any] = {
        "eventTime": ms(ts),
        "conversationId": conv.id,
        "participantId": p.id,
        "sessionId": p.session_id,
        "mediaType": DETAIL_MEDIA[conv.media],
        "provider": "PureCloud",
        "direction": conv.direction.upper(),
        "conversationExternalContactIds": [conv.external_contact_id],
    }
    if kind not in ("acw", "wrapup"):  # the SDK models of these two have no divisionId
        d["divisionId"] = DIVISION_ID
    if conv.media == "voice":
        d["ani"] = conv.customer_address
        d["dnis"] = "tel:+18005550100"
    else:
        d["addressFrom"] = conv.customer_address
        d["addressTo"] = "sim-deployment"
    if conv.media == "email":
        d["subject"] = conv.subject
    if conv.media == "message":
        d["messageType"] = "WEBMESSAGING"
    if kind.startswith("customer."):
        d["externalContactId"] = conv.external_contact_id
    d.update(extra)
    return d


def system_message(
    topic_type: str | None, channel_id: str, client_id: str, message: str, reason: str | None
) -> dict[str, Any]:
    """``SystemMessageSystemMessage`` (fields populated for socket_closing are UNCONFIRMED)."""
    body: dict[str, Any] = {"channelId": channel_id, "oauthClientId": client_id, "message": message}
    if topic_type:
        body["systemTopicType"] = topic_type
    if reason:
        body["reason"] = reason
    return body
