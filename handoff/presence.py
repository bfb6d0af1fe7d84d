"""Agents at work in the database (issue 10): status, the count each capacity check reads, slots.

Where an agent's count lives, and why it cannot drift: it is never stored. It is worked out,
in one statement, as the conversations whose row says `human` held by the agent, together
with the take-overs (and transfers to them) still in flight, which each reserve a row of
`agent_slots` under the update id they are sent with. A conversation in both counts once. So
a hand-back, a close, a transfer away, a timer's return to the queue, anything the workflow
records, frees the slot when it is recorded, with no counter to decrement and none to get
wrong after a crash.

Exact under races: a reservation is made in a transaction that first writes the agent's
`agent_presence` row (PostgreSQL then holds that row's lock to the commit, SQLite its single
writer lock), then counts, then inserts the slot: concurrent take-overs by one agent count
one after another. A slot is deleted only once its outcome is known and recorded: refused
(nothing changed), or carried out and written to the conversation's row (which now counts it).
A slot whose outcome was lost (the API process died, Temporal did not answer in time) is
healed later by asking Temporal for the update's outcome by its id, which costs no action
(`handoff.client.HandoffClient.heal_slots`).

No Temporal import: the callers that talk to Temporal are the client and the assigner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from handoff.availability import AgentStatus, Capacities, refusal
from handoff.models import Agent, Status
from handoff.store import (
    Store,
    agent_presence,
    agent_slots,
    agent_status_log,
    assignments,
    conversations,
)

STALE_SLOT = timedelta(seconds=30)
"""A slot older than this whose conversation's row does not show it taken is checked with
Temporal: longer than any API call waits for an update (HANDOFF_API_TEMPORAL_TIMEOUT)."""


class SlotRefused(Exception):
    """The agent may not take one more conversation now; `code` is not_online or at_capacity."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Presence:
    agent_id: str
    status: AgentStatus
    changed_at: datetime | None
    last_assigned_at: datetime | None


@dataclass(frozen=True)
class Slot:
    update_id: str
    agent_id: str
    conversation_id: str
    created_at: datetime
    automatic: bool


def _held_ids(agent_id: str | None = None) -> sa.CompoundSelect[tuple[str, str]]:
    """(agent, conversation) pairs an agent holds or is taking: the rows in `human` held by them,
    union the slots in flight. UNION counts a conversation in both once, and as one statement it
    reads one snapshot, so a slot deleted just after its row was written is never missed."""
    c, s = conversations.c, agent_slots.c
    held = sa.select(c.agent_id.label("agent_id"), c.id.label("conversation_id")).where(c.status == Status.HUMAN.value)
    reserved = sa.select(s.agent_id.label("agent_id"), s.conversation_id.label("conversation_id"))
    if agent_id is not None:
        held = held.where(c.agent_id == agent_id)
        reserved = reserved.where(s.agent_id == agent_id)
    else:
        held = held.where(c.agent_id.is_not(None))
    return sa.union(held, reserved)


def held_count(conn: sa.Connection, agent_id: str) -> int:
    pairs = _held_ids(agent_id).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(pairs)).scalar_one())


def held_counts(store: Store) -> dict[str, int]:
    """Every agent's count (held and in flight), in one statement."""
    pairs = _held_ids().subquery()
    query = sa.select(pairs.c.agent_id, sa.func.count()).group_by(pairs.c.agent_id)
    with store.engine.connect() as conn:
        return {str(agent_id): int(n) for agent_id, n in conn.execute(query)}


def holding_counts(store: Store) -> dict[str, int]:
    """Conversations each agent holds according to their rows (what `GET /agents` shows)."""
    c = conversations.c
    query = (
        sa.select(c.agent_id, sa.func.count())
        .where(c.status == Status.HUMAN.value, c.agent_id.is_not(None))
        .group_by(c.agent_id)
    )
    with store.engine.connect() as conn:
        return {str(agent_id): int(n) for agent_id, n in conn.execute(query)}


@dataclass(frozen=True)
class AtWork:
    """One agent as `GET /agents`, the console's Team view and `handoff agents list` show them."""

    agent: Agent
    status: AgentStatus
    holding: int
    capacity: int
    status_since: datetime | None


def team(store: Store, agents: list[Agent], capacities: Capacities) -> list[AtWork]:
    """Every agent of `agents`, by name: status (offline until set), conversations held, capacity."""
    statuses = presences(store)
    holding = holding_counts(store)
    rows = []
    for agent in sorted(agents, key=lambda a: (a.name, a.id)):
        state = statuses.get(agent.id)
        rows.append(
            AtWork(
                agent=agent,
                status=state.status if state else AgentStatus.OFFLINE,
                holding=holding.get(agent.id, 0),
                capacity=capacities.of(agent.id),
                status_since=state.changed_at if state else None,
            )
        )
    return rows


def _presence(row: Any) -> Presence:
    return Presence(row.agent_id, AgentStatus(row.status), row.changed_at, row.last_assigned_at)


def presences(store: Store) -> dict[str, Presence]:
    with store.engine.connect() as conn:
        return {r.agent_id: _presence(r) for r in conn.execute(sa.select(agent_presence))}


def presence(store: Store, agent_id: str) -> Presence:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(agent_presence).where(agent_presence.c.agent_id == agent_id)).first()
    return _presence(row) if row else Presence(agent_id, AgentStatus.OFFLINE, None, None)


def _lock_agent(store: Store, conn: sa.Connection, agent_id: str) -> Presence:
    """Make sure the agent's row exists, then lock it until the transaction ends. The first
    statement writes, so SQLite takes its writer lock before anything is read."""
    insert = store._insert(agent_presence).on_conflict_do_nothing(index_elements=["agent_id"])
    conn.execute(insert.values(agent_id=agent_id, status=AgentStatus.OFFLINE.value, changed_at=None))
    query = sa.select(agent_presence).where(agent_presence.c.agent_id == agent_id)
    if store.engine.dialect.name == "postgresql":
        query = query.with_for_update()
    return _presence(conn.execute(query).one())


def _log_status(conn: sa.Connection, agent_id: str, status: AgentStatus, now: datetime) -> None:
    conn.execute(sa.insert(agent_status_log).values(agent_id=agent_id, status=status.value, at=now))


def set_status(store: Store, agent_id: str, status: AgentStatus, now: datetime | None = None) -> Presence:
    """Record the agent's status (a change is logged, for time online); the presence after."""
    now = now or datetime.now(UTC)
    with store.engine.begin() as conn:
        before = _lock_agent(store, conn, agent_id)
        if before.status is not status or before.changed_at is None:
            conn.execute(
                sa.update(agent_presence)
                .where(agent_presence.c.agent_id == agent_id)
                .values(status=status.value, changed_at=now)
            )
            _log_status(conn, agent_id, status, now)
            return Presence(agent_id, status, now, before.last_assigned_at)
        return before


def reserve(
    store: Store,
    agent: Agent,
    conversation_id: str,
    update_id: str,
    capacity: int,
    *,
    automatic: bool = False,
    require_online: bool = False,
    now: datetime | None = None,
) -> bool:
    """Reserve one of `agent`'s slots for taking `conversation_id` by the update `update_id`.

    True when a slot was reserved; False when the agent holds the conversation already (taking
    it again changes nothing and needs no slot). Raises `SlotRefused` when the agent is not
    online and must be (`require_online`: a transfer, an automatic assignment) or is at
    capacity. A manual take-over (`require_online` False) makes the agent online."""
    now = now or datetime.now(UTC)
    with store.engine.begin() as conn:
        current = _lock_agent(store, conn, agent.id)
        c = conversations.c
        holds = conn.execute(
            sa.select(c.id).where(c.id == conversation_id, c.status == Status.HUMAN.value, c.agent_id == agent.id)
        ).first()
        if holds is not None:
            return False
        held = held_count(conn, agent.id)
        refused = refusal(agent.name, current.status, held, capacity, require_online=require_online)
        if refused is not None:
            raise SlotRefused(*refused)
        conn.execute(
            sa.insert(agent_slots).values(
                update_id=update_id,
                agent_id=agent.id,
                conversation_id=conversation_id,
                created_at=now,
                automatic=automatic,
            )
        )
        values: dict[str, Any] = {"last_assigned_at": now}
        if current.status is not AgentStatus.ONLINE and not require_online:
            values.update(status=AgentStatus.ONLINE.value, changed_at=now)
            _log_status(conn, agent.id, AgentStatus.ONLINE, now)
        conn.execute(sa.update(agent_presence).where(agent_presence.c.agent_id == agent.id).values(**values))
        return True


def settle(store: Store, update_id: str, *, taken: Slot | None = None, now: datetime | None = None) -> None:
    """The slot's outcome is known and recorded: delete it; `taken` (the slot, when the take-over
    went through) also lands in `assignments`, once (keyed by the update id)."""
    with store.engine.begin() as conn:
        if taken is not None:
            insert = store._insert(assignments).on_conflict_do_nothing(index_elements=["update_id"])
            conn.execute(
                insert.values(
                    update_id=taken.update_id,
                    agent_id=taken.agent_id,
                    conversation_id=taken.conversation_id,
                    at=now or datetime.now(UTC),
                    automatic=taken.automatic,
                )
            )
        conn.execute(sa.delete(agent_slots).where(agent_slots.c.update_id == update_id))


def slot(store: Store, update_id: str) -> Slot | None:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(agent_slots).where(agent_slots.c.update_id == update_id)).first()
    return Slot(row.update_id, row.agent_id, row.conversation_id, row.created_at, row.automatic) if row else None


def stale_slots(
    store: Store, now: datetime, agent_id: str | None = None, older_than: timedelta = STALE_SLOT
) -> list[Slot]:
    """Slots older than `older_than` (their take-over's outcome may have been lost)."""
    s = agent_slots.c
    query = sa.select(agent_slots).where(s.created_at < now - older_than).order_by(s.created_at)
    if agent_id is not None:
        query = query.where(s.agent_id == agent_id)
    with store.engine.connect() as conn:
        return [
            Slot(r.update_id, r.agent_id, r.conversation_id, r.created_at, r.automatic) for r in conn.execute(query)
        ]


def slots(store: Store) -> list[Slot]:
    with store.engine.connect() as conn:
        return [
            Slot(r.update_id, r.agent_id, r.conversation_id, r.created_at, r.automatic)
            for r in conn.execute(sa.select(agent_slots).order_by(agent_slots.c.created_at))
        ]


def status_changes(store: Store, agent_ids: list[str] | None = None) -> dict[str, list[tuple[datetime, AgentStatus]]]:
    """Every agent's status changes in time order."""
    log = agent_status_log.c
    query = sa.select(log.agent_id, log.at, log.status).order_by(log.agent_id, log.at, log.id)
    if agent_ids is not None:
        query = query.where(log.agent_id.in_(agent_ids))
    changes: dict[str, list[tuple[datetime, AgentStatus]]] = {}
    with store.engine.connect() as conn:
        for agent_id, at, status in conn.execute(query):
            changes.setdefault(agent_id, []).append((at, AgentStatus(status)))
    return changes


def assignment_counts(
    store: Store, since: datetime | None = None, until: datetime | None = None
) -> dict[str, dict[str, int]]:
    """Per agent, assignments in the window: {"automatic": n, "manual": m}."""
    a = assignments.c
    query = sa.select(a.agent_id, a.automatic, sa.func.count()).group_by(a.agent_id, a.automatic)
    if since is not None:
        query = query.where(a.at >= since)
    if until is not None:
        query = query.where(a.at < until)
    counts: dict[str, dict[str, int]] = {}
    with store.engine.connect() as conn:
        for agent_id, automatic, n in conn.execute(query):
            counts.setdefault(agent_id, {"automatic": 0, "manual": 0})["automatic" if automatic else "manual"] += int(n)
    return counts


# --- Statistics (GET /stats/agents): time online, occupancy, assignments automatic and manual.


@dataclass(frozen=True)
class AgentWork:
    agent: Agent
    online_seconds: float
    held_seconds: float  # conversation-seconds held (every held conversation counts, online or not)
    capacity: int
    occupancy: float | None  # held_seconds / (capacity x online_seconds); None with no time online
    automatic_assignments: int
    manual_assignments: int


def held_seconds(store: Store, since: datetime, until: datetime) -> dict[str, float]:
    """Per agent, conversation-seconds held within [since, until): the statistics index's
    assignment intervals (take-over or transfer to hand-back, close, release or transfer away)."""
    from handoff.stat_events import HANDLING_DONE
    from handoff.store import stat_events

    e = stat_events.c
    query = sa.select(e.agent_id, e.at, e.end_at).where(
        e.kind == f"{HANDLING_DONE}_open",
        e.agent_id.is_not(None),
        e.at < until,
        sa.or_(e.end_at.is_(None), e.end_at > since),
    )
    totals: dict[str, float] = {}
    with store.engine.connect() as conn:
        for agent_id, start, end in conn.execute(query):
            overlap = (min(end or until, until) - max(start, since)).total_seconds()
            if overlap > 0:
                totals[agent_id] = totals.get(agent_id, 0.0) + overlap
    return totals


def work_stats(
    store: Store,
    agents: list[Agent],
    capacities: Capacities,
    since: datetime | None,
    until: datetime | None,
    now: datetime | None = None,
) -> list[AgentWork]:
    """Each agent's time online, occupancy and assignments in [since, until) (until: now; since:
    their first status change or assignment), by name."""
    from handoff.availability import occupancy, online_seconds

    until = min(until or now or datetime.now(UTC), now or datetime.now(UTC))
    changes = status_changes(store, [a.id for a in agents])
    firsts = [c[0][0] for c in changes.values() if c]
    start = since or min(firsts, default=until)
    held = held_seconds(store, start, until)
    counts = assignment_counts(store, since, until)
    rows = []
    for agent in sorted(agents, key=lambda a: (a.name, a.id)):
        online = online_seconds(changes.get(agent.id, []), start, until)
        capacity = capacities.of(agent.id)
        mine = counts.get(agent.id, {"automatic": 0, "manual": 0})
        rows.append(
            AgentWork(
                agent=agent,
                online_seconds=round(online, 3),
                held_seconds=round(held.get(agent.id, 0.0), 3),
                capacity=capacity,
                occupancy=occupancy(held.get(agent.id, 0.0), capacity, online),
                automatic_assignments=mine["automatic"],
                manual_assignments=mine["manual"],
            )
        )
    return rows
