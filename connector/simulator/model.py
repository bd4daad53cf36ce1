"""A seeded, deterministic contact centre: queues, agents and customers producing events.

A discrete-event simulation on a virtual clock that starts at ``start_time`` and advances with
each scheduled action (arrivals, alerting, answer, hold, transfer, abandon, disconnect, after-call
work, wrap-up, presence changes). Event bodies carry virtual timestamps, so a fixed seed and
start time give byte-identical bodies. The pacing against the wall clock is the hub's job.

Each action appends ``(topic, body-builder)`` pairs; bodies are only built and encoded when the
``wanted(topic)`` predicate says someone is subscribed, but every event consumes an event id,
so ids are stable whatever the subscriptions.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from connector.simulator import bodies

MEDIA = ("voice", "chat", "email", "message")
QUEUE_NAMES = ("Sales", "Support", "Billing", "Retention", "Claims", "Bookings", "Tech", "VIP")
FIRST = ("Ada", "Ben", "Chloe", "Dev", "Eva", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kai", "Lea")
LAST = ("Ng", "Smith", "Garcia", "Okafor", "Rossi", "Kim", "Novak", "Silva", "Berg", "Haddad")
PRESENCE_IDS = {
    "ON_QUEUE": "e08eaf1b-ee47-4fa9-a231-1200e284798f",
    "AVAILABLE": "6a3af858-942f-489d-9700-5f9bcdcdae9b",
    "BREAK": "5e5d8a5d-6f6c-4c2d-9d3a-0b2f1f1e3c4d",
    "MEAL": "3fd96123-badb-4f69-bc03-1b1ccc6d8014",
    "AWAY": "5e5c5c66-ea97-4e7f-ac41-6424784829f2",
}
WRAPUP_CODES = ("7fb334b0-0e9e-11e4-9191-0800200c9a66", "e2a1c2d3-0001-4f00-8000-0000000000a1")


class Event(NamedTuple):
    event_id: int
    topic: str
    body: bytes


@dataclass(eq=False)
class Agent:
    id: str
    name: str
    queue_ids: list[str]
    created: float
    presence: str = "ON_QUEUE"
    presence_id: str = PRESENCE_IDS["ON_QUEUE"]
    presence_modified: float = 0.0
    routing: str = "IDLE"
    routing_start: float = 0.0
    idle_since: float = 0.0
    conversation: Conversation | None = None


@dataclass(eq=False)
class Queue:
    id: str
    name: str
    members: list[Agent] = field(default_factory=list)
    waiting: list[Conversation] = field(default_factory=list)
    alerting: list[Conversation] = field(default_factory=list)
    interacting: list[Conversation] = field(default_factory=list)


@dataclass(eq=False)
class Participant:
    id: str
    purpose: str
    name: str
    address: str
    session_id: str
    peer_id: str
    state: str
    initial_state: str
    user_id: str | None = None
    queue_id: str | None = None
    connected_time: float | None = None
    end_time: float | None = None
    held: bool = False
    start_hold_time: float | None = None
    disconnect_type: str | None = None
    acw_state: str | None = None
    start_acw_time: float | None = None
    end_acw_time: float | None = None
    wrapup_code: str | None = None
    wrapup_notes: str = ""
    wrapup_duration_s: int = 0


@dataclass(eq=False)
class Conversation:
    id: str
    media: str
    direction: str
    customer_name: str
    customer_address: str
    external_contact_id: str
    external_tag: str
    language_id: str
    skill_ids: list[str]
    priority: int
    subject: str
    script_id: str
    attributes: dict[str, str]
    start: float
    queue: Queue
    participants: list[Participant] = field(default_factory=list)
    queue_ids: list[str] = field(default_factory=list)
    ended: bool = False


Builder = Callable[[], dict[str, Any]]


class ContactCentre:
    """The state machine. Single-threaded: the owner calls ``take`` from one thread."""

    def __init__(
        self,
        seed: int,
        queues: int,
        agents: int,
        start_time: float,
        wanted: Callable[[str], bool] = lambda _t: True,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = start_time
        self.wanted = wanted
        self.next_event_id = 1
        self._heap: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._seq = 0
        self._pending: deque[Event] = deque()
        self.language_id = self.uuid()
        self.skill_ids = [self.uuid() for _ in range(3)]
        self.queues = [
            Queue(self.uuid(), QUEUE_NAMES[i % len(QUEUE_NAMES)] + ("" if i < 8 else f" {i}"))
            for i in range(max(1, queues))
        ]
        self.agents: list[Agent] = []
        for i in range(max(1, agents)):
            qs = self.rng.sample(self.queues, k=min(len(self.queues), self.rng.randint(1, 3)))
            a = Agent(
                self.uuid(),
                f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}",
                [q.id for q in qs],
                start_time - 86400 * 3,
                presence_modified=start_time,
                routing_start=start_time,
                idle_since=start_time - i,
            )
            self.agents.append(a)
            for q in qs:
                q.members.append(a)
            self._schedule(self.rng.expovariate(1 / 900.0), "presence", (a,))
        # ~85% occupancy: handle time ~250 s, ~80% of agents on queue.
        self.interarrival_s = len(self.queues) * 250.0 / (0.85 * 0.8 * len(self.agents))
        for q in self.queues:
            self._schedule(self.rng.expovariate(1 / self.interarrival_s), "arrive", (q,))

    # -- plumbing ------------------------------------------------------------------------
    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _schedule(self, delay: float, kind: str, args: tuple[Any, ...]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (self.now + delay, self._seq, kind, args))

    def _emit(self, topic: str, build: Builder) -> None:
        eid = self.next_event_id
        self.next_event_id += 1
        if self.wanted(topic):
            self._pending.append(Event(eid, topic, orjson.dumps(build())))

    def advance(self, n: int) -> list[Event]:
        """Run until ``n`` more events were generated; return those that were wanted."""
        target = self.next_event_id + n
        while self.next_event_id < target:
            self.step()
        out = list(self._pending)
        self._pending.clear()
        return out

    def step(self) -> None:
        when, _, kind, args = heapq.heappop(self._heap)
        self.now = max(self.now, when)
        getattr(self, "_on_" + kind)(*args)

    # -- emitters ------------------------------------------------------------------------
    def _snapshot(self, conv: Conversation) -> None:
        cache: list[dict[str, Any]] = []

        def build() -> dict[str, Any]:
            if not cache:
                cache.append(bodies.conversation(conv))
            return cache[0]

        for qid in dict.fromkeys(conv.queue_ids):
            self._emit(f"v2.routing.queues.{qid}.conversations", build)
        for uid in dict.fromkeys(p.user_id for p in conv.participants if p.user_id):
            self._emit(f"v2.users.{uid}.conversations", build)

    def _detail(self, kind: str, conv: Conversation, p: Participant, **extra: Any) -> None:
        now = self.now
        self._emit(
            f"v2.detail.events.conversation.{conv.id}.{kind}",
            lambda: bodies.detail(kind, conv, p, now, **extra),
        )

    def _agent_changed(self, a: Agent, presence: bool = False) -> None:
        if presence:
            self._emit(f"v2.users.{a.id}.presence", lambda: bodies.presence(a))
        self._emit(f"v2.users.{a.id}.routingStatus", lambda: bodies.routing_status(a))
        self._emit(f"v2.users.{a.id}.activity", lambda: bodies.activity(a))

    def _observe(self, q: Queue, media: str) -> None:
        now = self.now
        self._emit(
            f"v2.analytics.queues.{q.id}.observations", lambda: bodies.observations(q, now, media)
        )

    def _set_routing(self, a: Agent, status: str) -> None:
        a.routing, a.routing_start = status, self.now
        if status == "IDLE":
            a.idle_since = self.now
        self._agent_changed(a)

    # -- actions -------------------------------------------------------------------------
    def _on_arrive(self, q: Queue) -> None:
        self._schedule(self.rng.expovariate(1 / self.interarrival_s), "arrive", (q,))
        rng = self.rng
        media = rng.choices(MEDIA, weights=(5, 2, 2, 2))[0]
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        if media == "voice":
            address = f"tel:+1555{rng.randrange(10**7):07d}"
        elif media == "email":
            address = f"{name.replace(' ', '.').lower()}@example.com"
        else:
            address = name
        conv = Conversation(
            id=self.uuid(),
            media=media,
            direction="inbound",
            customer_name=name,
            customer_address=address,
            external_contact_id=self.uuid(),
            external_tag=f"SIM-{rng.randrange(10**6):06d}",
            language_id=self.language_id,
            skill_ids=rng.sample(self.skill_ids, k=rng.randint(0, 2)),
            priority=rng.choice((0, 0, 0, 5, 10)),
            subject=rng.choice(("Order status", "Invoice question", "Cannot log in", "Refund")),
            script_id=self.uuid(),
            attributes={
                "customerTier": rng.choice(("gold", "silver", "bronze")),
                "accountNumber": f"{rng.randrange(10**8):08d}",
                "ivrSelection": q.name.lower(),
                "crmCaseId": f"CASE-{rng.randrange(10**7):07d}",
            },
            start=self.now,
            queue=q,
        )
        cust = Participant(
            self.uuid(),
            "customer",
            name,
            address,
            self.uuid(),
            self.uuid(),
            "connected",
            "connected" if media == "voice" else "alerting",
            connected_time=self.now,
        )
        conv.participants.append(cust)
        self._detail("customer.start", conv, cust)
        self._enqueue(conv, q)
        self._schedule(rng.expovariate(1 / 120.0) + 10, "abandon", (conv, q))

    def _enqueue(self, conv: Conversation, q: Queue) -> None:
        conv.queue = q
        if q.id not in conv.queue_ids:
            conv.queue_ids.append(q.id)
        acd = Participant(
            self.uuid(),
            "acd",
            q.name,
            f"sip:{q.id}@sim",
            self.uuid(),
            self.uuid(),
            "connected",
            "offering" if conv.media in ("voice", "chat") else "alerting",
            queue_id=q.id,
            connected_time=self.now,
        )
        conv.participants.append(acd)
        q.waiting.append(conv)
        self._detail(
            "acd.start",
            conv,
            acd,
            queueId=q.id,
            routingPriority=conv.priority,
            requestedRoutingSkillIds=list(conv.skill_ids),
        )
        self._snapshot(conv)
        self._observe(q, conv.media)
        self._route(q)

    def _acd(self, conv: Conversation) -> Participant:
        return next(p for p in reversed(conv.participants) if p.purpose == "acd")

    def _agent_participant(self, conv: Conversation) -> Participant:
        return next(p for p in reversed(conv.participants) if p.purpose == "agent")

    def _route(self, q: Queue) -> None:
        while q.waiting:
            idle = [a for a in q.members if a.presence == "ON_QUEUE" and a.routing == "IDLE"]
            if not idle:
                return
            agent = min(idle, key=lambda a: a.idle_since)
            conv = q.waiting.pop(0)
            q.alerting.append(conv)
            agent.conversation = conv
            ap = Participant(
                self.uuid(),
                "agent",
                agent.name,
                f"sip:{agent.id}@sim",
                self.uuid(),
                self.uuid(),
                "alerting",
                "alerting",
                user_id=agent.id,
                queue_id=q.id,
            )
            conv.participants.append(ap)
            self._set_routing(agent, "INTERACTING")
            self._snapshot(conv)
            self._observe(q, conv.media)
            if self.rng.random() < 0.05:
                self._schedule(8.0, "no_answer", (conv, q, agent, ap))
            else:
                self._schedule(self.rng.uniform(2, 7), "answer", (conv, q, agent, ap))

    def _on_no_answer(self, conv: Conversation, q: Queue, agent: Agent, ap: Participant) -> None:
        if conv.ended:
            return
        ap.state, ap.disconnect_type, ap.end_time = "disconnected", "transfer.noanswer", self.now
        self._detail(
            "user.end",
            conv,
            ap,
            userId=agent.id,
            queueId=q.id,
            disconnectType="NO_ANSWER_TRANSFER",
            alertingDurationMs=8000,
            interactingDurationMs=0,
        )
        q.alerting.remove(conv)
        q.waiting.insert(0, conv)
        agent.conversation = None
        self._set_routing(agent, "NOT_RESPONDING")
        self._snapshot(conv)
        self._observe(q, conv.media)
        self._schedule(30.0, "recover", (agent,))

    def _on_recover(self, agent: Agent) -> None:
        if agent.routing == "NOT_RESPONDING":
            self._set_routing(agent, "IDLE" if agent.presence == "ON_QUEUE" else "OFF_QUEUE")
            for qid in agent.queue_ids:
                self._route(self._queue(qid))

    def _queue(self, qid: str) -> Queue:
        return next(q for q in self.queues if q.id == qid)

    def _on_answer(self, conv: Conversation, q: Queue, agent: Agent, ap: Participant) -> None:
        if conv.ended or ap.state != "alerting":
            return
        acd = self._acd(conv)
        acd.state, acd.disconnect_type, acd.end_time = "disconnected", "transfer", self.now
        ap.state, ap.connected_time = "connected", self.now
        q.alerting.remove(conv)
        q.interacting.append(conv)
        self._detail(
            "acd.end",
            conv,
            acd,
            queueId=q.id,
            disconnectType="TRANSFER",
            acdOutcome="ANSWERED",
            answeredUserId=agent.id,
            usedRouting="STANDARD",
            requestedRoutings=["Standard"],
            routingPriority=conv.priority,
            connectedDurationMs=int((self.now - (acd.connected_time or self.now)) * 1000),
        )
        self._detail("user.start", conv, ap, userId=agent.id, queueId=q.id)
        self._snapshot(conv)
        self._observe(q, conv.media)
        r = self.rng.random()
        if conv.media == "voice" and r < 0.3:
            self._schedule(self.rng.uniform(20, 90), "hold", (conv, ap))
        elif 0.3 <= r < 0.38 and len(self.queues) > 1:
            self._schedule(self.rng.uniform(30, 120), "transfer", (conv, q, agent, ap))
        else:
            self._schedule(self.rng.expovariate(1 / 150.0) + 15, "disconnect", (conv, q, agent, ap))

    def _on_hold(self, conv: Conversation, ap: Participant) -> None:
        if conv.ended or ap.state != "connected":
            return
        ap.held, ap.start_hold_time = True, self.now
        self._snapshot(conv)
        self._schedule(self.rng.uniform(10, 60), "unhold", (conv, ap))

    def _on_unhold(self, conv: Conversation, ap: Participant) -> None:
        if conv.ended or ap.state != "connected":
            return
        ap.held = False
        self._snapshot(conv)
        agent = next(a for a in self.agents if a.id == ap.user_id)
        self._schedule(
            self.rng.expovariate(1 / 120.0) + 10, "disconnect", (conv, conv.queue, agent, ap)
        )

    def _on_transfer(self, conv: Conversation, q: Queue, agent: Agent, ap: Participant) -> None:
        if conv.ended or ap.state != "connected":
            return
        target = self.rng.choice([x for x in self.queues if x is not q])
        self._end_agent_leg(conv, q, agent, ap, "transfer", "TRANSFER")
        self._enqueue(conv, target)

    def _on_abandon(self, conv: Conversation, q: Queue) -> None:
        if conv.ended or conv not in conv.queue.waiting:
            return
        q = conv.queue
        q.waiting.remove(conv)
        conv.ended = True
        acd = self._acd(conv)
        cust = conv.participants[0]
        for p in (cust, acd):
            p.state, p.end_time = "disconnected", self.now
        cust.disconnect_type, acd.disconnect_type = "endpoint", "peer"
        self._detail(
            "acd.end",
            conv,
            acd,
            queueId=q.id,
            disconnectType="PEER",
            acdOutcome="ABANDON",
            usedRouting="STANDARD",
            routingPriority=conv.priority,
        )
        self._detail(
            "customer.end",
            conv,
            cust,
            disconnectType="ENDPOINT",
            interactingDurationMs=int((self.now - conv.start) * 1000),
        )
        self._snapshot(conv)
        self._observe(q, conv.media)

    def _end_agent_leg(
        self, conv: Conversation, q: Queue, agent: Agent, ap: Participant, snap: str, det: str
    ) -> None:
        ap.state, ap.disconnect_type, ap.end_time = "disconnected", snap, self.now
        ap.held = False
        ap.acw_state, ap.start_acw_time = "pending", self.now
        if conv in q.interacting:
            q.interacting.remove(conv)
        self._detail(
            "user.end",
            conv,
            ap,
            userId=agent.id,
            queueId=q.id,
            disconnectType=det,
            interactingDurationMs=int((self.now - (ap.connected_time or self.now)) * 1000),
            heldDurationMs=0,
            alertingDurationMs=3000,
        )
        self._snapshot(conv)
        self._observe(q, conv.media)
        self._schedule(self.rng.uniform(10, 60), "wrapup", (conv, q, agent, ap))

    def _on_disconnect(self, conv: Conversation, q: Queue, agent: Agent, ap: Participant) -> None:
        if conv.ended or ap.state != "connected":
            return
        conv.ended = True
        cust = conv.participants[0]
        by_customer = self.rng.random() < 0.6
        cust.state, cust.end_time = "disconnected", self.now
        cust.disconnect_type = "endpoint" if by_customer else "peer"
        self._detail(
            "customer.end",
            conv,
            cust,
            disconnectType="ENDPOINT" if by_customer else "PEER",
            interactingDurationMs=int((self.now - conv.start) * 1000),
        )
        self._end_agent_leg(
            conv,
            q,
            agent,
            ap,
            "peer" if by_customer else "client",
            "PEER" if by_customer else "CLIENT",
        )

    def _on_wrapup(self, conv: Conversation, q: Queue, agent: Agent, ap: Participant) -> None:
        ap.acw_state, ap.end_acw_time = "complete", self.now
        ap.wrapup_code = self.rng.choice(WRAPUP_CODES)
        ap.wrapup_notes = self.rng.choice(("", "resolved", "follow-up needed"))
        ap.wrapup_duration_s = int(self.now - (ap.start_acw_time or self.now))
        extra = dict(
            queueId=q.id,
            wrapupCode=ap.wrapup_code,
            wrapupNotes=ap.wrapup_notes,
            wrapupDurationMs=ap.wrapup_duration_s * 1000,
        )
        self._detail("acw", conv, ap, userId=agent.id, **extra)
        self._detail("wrapup", conv, ap, **extra)
        self._snapshot(conv)
        agent.conversation = None
        self._set_routing(agent, "IDLE" if agent.presence == "ON_QUEUE" else "OFF_QUEUE")
        for qid in agent.queue_ids:
            self._route(self._queue(qid))

    def _on_presence(self, a: Agent) -> None:
        if a.presence == "ON_QUEUE":
            if a.routing != "IDLE":
                self._schedule(60.0, "presence", (a,))
                return
            new = self.rng.choice(("BREAK", "MEAL", "AWAY", "AVAILABLE"))
            back_in = self.rng.uniform(120, 900)
        else:
            new, back_in = "ON_QUEUE", self.rng.expovariate(1 / 1800.0) + 300
        a.presence, a.presence_id, a.presence_modified = new, PRESENCE_IDS[new], self.now
        a.routing, a.routing_start = ("IDLE" if new == "ON_QUEUE" else "OFF_QUEUE"), self.now
        a.idle_since = self.now
        self._agent_changed(a, presence=True)
        joined = new == "ON_QUEUE"
        for qid in a.queue_ids:
            q = self._queue(qid)
            self._emit(
                f"v2.routing.queues.{qid}.users", lambda q=q: bodies.queue_member(q, a, joined)
            )
        self._schedule(back_in, "presence", (a,))
        if joined:
            for qid in a.queue_ids:
                self._route(self._queue(qid))
