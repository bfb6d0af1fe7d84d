"""Issue 10's fault scenarios: automatic assignment on a lab (real worker processes killed with
SIGKILL, a dev server restarted), and the checks of what agents and customers would notice:
each conversation assigned exactly once per wait, no agent over capacity, every agent's count
equal to what they hold, nothing left waiting while a slot is free."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from handoff import presence
from handoff.agents import AgentDirectory, AgentEntry
from handoff.assignment import Assigner
from handoff.availability import AgentStatus
from handoff.models import FactKind, Status
from handoff.store import Store
from tests.faults.harness import Lab, wait_until
from tests.helpers import new_id

SLOT_STALE_AFTER = timedelta(seconds=3)
"""Short, so that the take-overs lost with a restarted dev server are healed within the test."""


def team(capacities: dict[str, int]) -> AgentDirectory:
    return AgentDirectory(
        [
            AgentEntry(
                id=agent_id,
                name=f"Agent {agent_id}",
                token=f"{agent_id}-token-long-enough-for-tests",
                max_conversations=n,
            )
            for agent_id, n in capacities.items()
        ]
    )


def equip(lab: Lab, directory: AgentDirectory) -> Assigner:
    """The lab's client counts capacity as the API's does; an assigner over its database."""
    lab.handoff.capacities = directory.capacities(5)
    lab.handoff.slot_stale_after = SLOT_STALE_AFTER
    return Assigner(lab.handoff, lab.store, directory, offline_returns=True)


async def waiting_conversations(lab: Lab, count: int) -> list[str]:
    """`count` conversations that asked for a person (by signal: accepted while no worker runs)."""
    ids = [new_id() for _ in range(count)]
    limit = asyncio.Semaphore(20)

    async def arrive(cid: str) -> None:
        async with limit:
            await lab.handoff.start_or_message(cid, f"customer-{cid[:6]}", "hello")
            await lab.handoff.request_human(cid)

    await asyncio.gather(*(arrive(cid) for cid in ids))
    return ids


def set_status(store: Store, agent_id: str, status: AgentStatus) -> None:
    presence.set_status(store, agent_id, status)


def assigned(store: Store, ids: list[str]) -> int:
    return sum(1 for c in ids if (s := store.summary(c)) is not None and s.status is Status.HUMAN)


def check_assignments(store: Store, ids: list[str], directory: AgentDirectory) -> dict[str, int]:
    """What users would notice, from the database: per conversation, its waits and take-overs in
    order (each wait ended by exactly one take-over, none while it was held); per agent, the
    conversations held against the rows and capacity, and no slot left in flight. Returns how many
    take-overs each conversation had."""
    takeovers: dict[str, int] = {}
    holder_by_facts: Counter[str] = Counter()
    for cid in ids:
        waiting, held_by, count = False, None, 0
        for fact in store.facts(cid):
            match fact.kind:
                case FactKind.HUMAN_REQUESTED | FactKind.RELEASED:
                    assert held_by is None or fact.kind is FactKind.RELEASED, (cid, fact)
                    waiting, held_by = True, None
                case FactKind.TAKEN_OVER:
                    assert held_by is None, f"{cid} taken over while held by {held_by}"
                    waiting, held_by, count = False, fact.agent.id if fact.agent else None, count + 1
                case FactKind.TRANSFERRED:
                    held_by = fact.agent.id if fact.agent else None
                case FactKind.HANDED_BACK | FactKind.CLOSED:
                    waiting, held_by = False, None
        summary = store.summary(cid)
        assert summary is not None
        assert (summary.status is Status.HUMAN) == (held_by is not None), (cid, summary.status, held_by)
        assert (summary.status is Status.WAITING) == waiting, (cid, summary.status)
        if held_by is not None:
            holder_by_facts[held_by] += 1
        takeovers[cid] = count
    holding = presence.holding_counts(store)
    assert {a: n for a, n in holding.items() if n} == {a: n for a, n in holder_by_facts.items() if n}
    assert presence.slots(store) == [], presence.slots(store)
    assert presence.held_counts(store) == {a: n for a, n in holding.items() if n}
    capacities = directory.capacities(5)
    for agent_id, n in holding.items():
        assert n <= capacities.of(agent_id), f"{agent_id} holds {n}, capacity {capacities.of(agent_id)}"
    # Nothing waits while an online agent has a free slot; an offline agent holds nothing
    # (HANDOFF_OFFLINE_RETURNS, as `equip` sets it).
    statuses = presence.presences(store)
    offline_holding = {a: holding.get(a, 0) for a, p in statuses.items() if p.status is AgentStatus.OFFLINE}
    assert not any(offline_holding.values()), offline_holding
    free = sum(capacities.of(a) - holding.get(a, 0) for a, p in statuses.items() if p.status is AgentStatus.ONLINE)
    still_waiting = sum(1 for c in ids if (s := store.summary(c)) is not None and s.status is Status.WAITING)
    assert free == 0 or still_waiting == 0, (free, still_waiting)
    return takeovers


async def settle(lab: Lab, assigner: Assigner, ids: list[str], directory: AgentDirectory, what: str) -> dict[str, int]:
    """Wait until the desk is at rest (no slot in flight, nothing waiting while a slot is free),
    then check it."""

    def not_at_rest() -> str:
        """Why the desk is not at rest yet ("" once it is), for the failure message."""
        try:
            check_assignments(lab.store, ids, directory)
        except AssertionError as why:
            return str(why)[:500] or "not yet"
        return ""

    async def probe() -> str:
        return await asyncio.to_thread(not_at_rest)

    await wait_until(probe, lambda why: why == "", what, timeout=90)
    return await asyncio.to_thread(check_assignments, lab.store, ids, directory)
