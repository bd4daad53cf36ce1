"""A seeded, deterministic contact centre: queues, agents and customers producing events.

A discrete-event simulation on a virtual clock that starts at ``start_time`` and advances with
each scheduled action (arrivals, alerting, answer, hold, transfer, abandon, disconnect, after-call
work, wrap-up, presence changes). Event bodies carry virtual timestamps. The pacing against the
wall clock is the hub's job; two ways to drive the model:

- deterministic (``advance(n)``): the clock runs as fast as the events are asked for, so a
  fixed seed and start time give byte-identical bodies whatever the pacing.
- live (``set_load(k)`` then ``advance(n, until=wall_clock)``): the clock never passes ``until``
  and never lags it by more than ``LIVE_SLACK_S`` (actions that fell further behind run at
  ``until - LIVE_SLACK_S``), so every timestamp is within that of the wall clock and never
  ahead of it. To produce ``n`` events per tick without running ahead, the load ``k`` (the
  hub sets ``rate / natural_rate``) multiplies the arrival rate and lets each agent handle up
  to ``ceil(k * LIVE_HEADROOM)`` conversations at once: more conversations in parallel, every
  duration as at load 1. Beyond ``max_concurrency`` the rest of the factor compresses every
  delay instead (shorter conversations), which bounds the live conversations (memory, CPU).
  If nothing is due before ``until``, extra customers arrive now; while the model lags more
  than ``LIVE_MAX_BEHIND_S``, scheduled arrivals are skipped.

Times only ever come from the one clock, so a conversation's times stay ordered and the
durations in detail events are the differences of its times.

Each action appends ``(topic, body-builder)`` pairs; bodies are only built and encoded when the
``wanted(topic)`` predicate says someone is subscribed, but every event consumes an event id,
so ids are stable whatever the subscriptions.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections import Counter, OrderedDict, deque
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
ALERTING_TIMEOUT_S = 8.0
LIVE_SLACK_S = 0.05  # live mode: due actions older than this are stamped at until - slack
LIVE_MAX_BEHIND_S = 1.0  # live mode: skip scheduled arrivals while lagging more than this
LIVE_HEADROOM = 1.5  # live mode: agent capacity beyond the load (breaks, uneven queues)
LIVE_CONVERSATIONS = 20_000  # live mode: bound on concurrent conversations (memory, CPU)


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
    active: int = 0  # conversations alerting, connected or in after-call work


@dataclass(eq=False)
class Queue:
    """Conversations by state as insertion-ordered sets (O(1) at any concurrency); ``counts``
    keeps ``(state, media) -> n`` for the observation bodies."""

    id: str
    name: str
    members: list[Agent] = field(default_factory=list)
    waiting: OrderedDict[Conversation, None] = field(default_factory=OrderedDict)
    alerting: dict[Conversation, None] = field(default_factory=dict)
    interacting: dict[Conversation, None] = field(default_factory=dict)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, state: str, conv: Conversation, front: bool = False) -> None:
        members = getattr(self, state)
        members[conv] = None
        if front:
            members.move_to_end(conv, last=False)
        self.counts[state, conv.media] += 1

    def discard(self, state: str, conv: Conversation) -> None:
        members = getattr(self, state)
        if conv in members:
            del members[conv]
            self.counts[state, conv.media] -= 1


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
    alert_time: float | None = None
    held: bool = False
    start_hold_time: float | None = None
    held_s: float = 0.0
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
    alerting_timeout_ms: int = round(ALERTING_TIMEOUT_S * 1000)


Builder = Callable[[], dict[str, Any]]


class ContactCentre:
    """The state machine. Single-threaded: the owner calls ``advance`` from one thread."""

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
        # Load (live mode only, see set_load): deterministic runs keep these at 1.
        self.capacity = 1  # concurrent conversations per agent
        self.speed = 1.0  # every delay is divided by this
        self.arrival_scale = 1.0  # multiplies the arrival rate (in model time)
        self._behind = 0.0  # live mode: how far the action being run lags the wall clock
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
        self._agent_by_id = {a.id: a for a in self.agents}
        self._queue_by_id = {q.id: q for q in self.queues}
        # ~85% occupancy: handle time ~250 s, ~80% of agents on queue.
        self.interarrival_s = len(self.queues) * 250.0 / (0.85 * 0.8 * len(self.agents))
        self.max_concurrency = max(1, LIVE_CONVERSATIONS // len(self.agents))
        for q in self.queues:
            self._schedule(self.rng.expovariate(1 / self.interarrival_s), "arrive", (q,))

    @classmethod
    def natural_rate(cls, seed: int, queues: int, agents: int, events: int = 10_000) -> float:
        """Events per virtual second at load 1 (a private run that builds no bodies)."""
        model = cls(seed, queues, agents, 0.0, wanted=lambda _t: False)
        model.advance(events)
        return events / max(model.now, 1e-9)

    def set_load(self, load: float) -> None:
        """Live mode: about ``load`` times the activity per wall second of the load-1 model.

        Up to ``max_concurrency`` the extra activity runs in parallel (more arrivals, agents
        handling several conversations at once, every duration as at load 1); beyond it the
        rest of the factor compresses every delay (shorter conversations). Below 1, fewer
        customers arrive. Only affects actions scheduled from now on.
        """
        load = max(float(load), 1e-6)
        parallel = min(load, float(self.max_concurrency))
        self.capacity = max(1, math.ceil(parallel * LIVE_HEADROOM)) if parallel > 1 else 1
        self.speed = max(1.0, load / max(parallel, 1.0))
        self.arrival_scale = load / self.speed

    # -- plumbing ------------------------------------------------------------------------
    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _schedule(self, delay: float, kind: str, args: tuple[Any, ...]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (self.now + delay / self.speed, self._seq, kind, args))

    def _emit(self, topic: str, build: Builder) -> None:
        eid = self.next_event_id
        self.next_event_id += 1
        if self.wanted(topic):
            self._pending.append(Event(eid, topic, orjson.dumps(build())))

    def advance(self, n: int, until: float | None = None) -> list[Event]:
        """Run until ``n`` more events were generated; return those that were wanted.

        ``until`` (live mode, the wall clock): never run an action scheduled after it; stamp
        actions due before ``until - LIVE_SLACK_S`` at that time; when nothing is due, extra
        customers arrive now until ``n`` events were generated.
        """
        target = self.next_event_id + n
        if until is None:
            while self.next_event_id < target:
                self.step()
        else:
            self.now = max(self.now, until - LIVE_SLACK_S)
            heap = self._heap
            while self.next_event_id < target:
                if heap and heap[0][0] <= until:
                    self._behind = until - heap[0][0]
                    self.step()
                else:
                    self._behind = 0.0
                    self._arrive(self._top_up_queue())
            self._behind = 0.0
        out = list(self._pending)
        self._pending.clear()
        return out

    def _top_up_queue(self) -> Queue:
        """A random queue, preferring one with nobody waiting and an agent free."""
        cap = self.capacity
        ready = [
            q for q in self.queues if not q.waiting and any(self._free(a, cap) for a in q.members)
        ]
        return self.rng.choice(ready or self.queues)

    @staticmethod
    def _free(a: Agent, cap: int) -> bool:
        return a.presence == "ON_QUEUE" and a.routing in ("IDLE", "INTERACTING") and a.active < cap

    def advance_timed(self, n: int) -> list[tuple[float, Event]]:
        """Like ``advance(n)``, each event with the virtual time it was generated at."""
        target = self.next_event_id + n
        out: list[tuple[float, Event]] = []
        while self.next_event_id < target:
            self.step()
            out += [(self.now, ev) for ev in self._pending]
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

    @staticmethod
    def _status(a: Agent) -> str:
        if a.presence != "ON_QUEUE":
            return "OFF_QUEUE"
        return "INTERACTING" if a.active else "IDLE"

    def _settle(self, a: Agent) -> None:
        """Routing status from presence and load; offer freed capacity to the agent's queues."""
        status = self._status(a)
        if status != a.routing:
            self._set_routing(a, status)
        if status != "OFF_QUEUE":
            for qid in a.queue_ids:
                self._route(self._queue_by_id[qid])

    # -- actions -------------------------------------------------------------------------
    def _on_arrive(self, q: Queue) -> None:
        self._schedule(
            self.rng.expovariate(self.arrival_scale / self.interarrival_s), "arrive", (q,)
        )
        if self._behind <= LIVE_MAX_BEHIND_S:  # live mode: shed load while lagging
            self._arrive(q)

    def _arrive(self, q: Queue) -> None:
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
            alerting_timeout_ms=round(ALERTING_TIMEOUT_S * 1000 / self.speed),
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
        q.add("waiting", conv)
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

    def _route(self, q: Queue) -> None:
        cap = self.capacity
        while q.waiting:
            free = [a for a in q.members if self._free(a, cap)]
            if not free:
                return
            agent = min(free, key=lambda a: (a.active, a.idle_since))
            conv = next(iter(q.waiting))
            q.discard("waiting", conv)
            q.add("alerting", conv)
            agent.active += 1
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
                alert_time=self.now,
            )
            conv.participants.append(ap)
            if agent.routing != "INTERACTING":
                self._set_routing(agent, "INTERACTING")
            self._snapshot(conv)
            self._observe(q, conv.media)
            if self.rng.random() < 0.05 / cap:  # as often per agent as at capacity 1
                self._schedule(ALERTING_TIMEOUT_S, "no_answer", (conv, q, agent, ap))
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
            alertingDurationMs=bodies.ms(self.now - (ap.alert_time or self.now)),
            interactingDurationMs=0,
        )
        q.discard("alerting", conv)
        q.add("waiting", conv, front=True)
        agent.active -= 1
        self._set_routing(agent, "NOT_RESPONDING")
        self._snapshot(conv)
        self._observe(q, conv.media)
        self._schedule(30.0, "recover", (agent,))
        self._route(q)  # another agent may take it

    def _on_recover(self, agent: Agent) -> None:
        if agent.routing == "NOT_RESPONDING":
            self._settle(agent)

    def _on_answer(self, conv: Conversation, q: Queue, agent: Agent, ap: Participant) -> None:
        if conv.ended or ap.state != "alerting":
            return
        acd = self._acd(conv)
        acd.state, acd.disconnect_type, acd.end_time = "disconnected", "transfer", self.now
        ap.state, ap.connected_time = "connected", self.now
        q.discard("alerting", conv)
        q.add("interacting", conv)
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
            connectedDurationMs=bodies.ms(self.now - (acd.connected_time or self.now)),
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
        ap.held_s += self.now - (ap.start_hold_time or self.now)
        self._snapshot(conv)
        agent = self._agent_by_id[ap.user_id or ""]
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
        q.discard("waiting", conv)
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
            interactingDurationMs=bodies.ms(self.now - conv.start),
        )
        self._snapshot(conv)
        self._observe(q, conv.media)

    def _end_agent_leg(
        self, conv: Conversation, q: Queue, agent: Agent, ap: Participant, snap: str, det: str
    ) -> None:
        now = self.now
        ap.state, ap.disconnect_type, ap.end_time = "disconnected", snap, now
        if ap.held:
            ap.held_s += now - (ap.start_hold_time or now)
        ap.held = False
        ap.acw_state, ap.start_acw_time = "pending", now
        q.discard("interacting", conv)
        connected = ap.connected_time if ap.connected_time is not None else now
        self._detail(
            "user.end",
            conv,
            ap,
            userId=agent.id,
            queueId=q.id,
            disconnectType=det,
            interactingDurationMs=bodies.ms(now - connected),
            heldDurationMs=bodies.ms(ap.held_s),
            alertingDurationMs=bodies.ms(connected - (ap.alert_time or connected)),
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
            interactingDurationMs=bodies.ms(self.now - conv.start),
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
        agent.active -= 1
        if agent.routing != "NOT_RESPONDING":  # _on_recover settles a not-responding agent
            self._settle(agent)

    def _on_presence(self, a: Agent) -> None:
        """Off queue (break, meal, ...) and back. Conversations in progress carry on, as when a
        Genesys agent changes presence mid-call; no new ones are routed while off queue."""
        if a.presence == "ON_QUEUE":
            new = self.rng.choice(("BREAK", "MEAL", "AWAY", "AVAILABLE"))
            back_in = self.rng.uniform(120, 900)
        else:
            new, back_in = "ON_QUEUE", self.rng.expovariate(1 / 1800.0) + 300
        a.presence, a.presence_id, a.presence_modified = new, PRESENCE_IDS[new], self.now
        a.routing, a.routing_start = self._status(a), self.now
        a.idle_since = self.now
        self._agent_changed(a, presence=True)
        joined = new == "ON_QUEUE"
        for qid in a.queue_ids:
            q = self._queue_by_id[qid]
            self._emit(
                f"v2.routing.queues.{qid}.users", lambda q=q: bodies.queue_member(q, a, joined)
            )
        self._schedule(back_in, "presence", (a,))
        if joined:
            for qid in a.queue_ids:
                self._route(self._queue_by_id[qid])
