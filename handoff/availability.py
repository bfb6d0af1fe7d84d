"""Agents at work: the rules of availability, capacity and automatic assignment (issue 10).

No Temporal import and no I/O: who may take one more conversation, what a refusal says, and who
gets which waiting conversation are decided here, from plain values the callers read from the
database (handoff/presence.py) and act on (handoff/client.py, handoff/assignment.py). The
tests drive these functions directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

DEFAULT_CAPACITY = 5
"""Conversations an agent may hold at once unless the agents file or HANDOFF_AGENT_CAPACITY says otherwise."""


class AgentStatus(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class AssignmentMode(StrEnum):
    MANUAL = "manual"  # agents take conversations from the Waiting column
    AUTO = "auto"  # a conversation entering Waiting is given to an online agent with a free slot


@dataclass(frozen=True)
class Capacities:
    """How many conversations each agent may hold: `per_agent` (the agents file's
    `max_conversations`), else `default` (HANDOFF_AGENT_CAPACITY)."""

    default: int = DEFAULT_CAPACITY
    per_agent: dict[str, int] = field(default_factory=dict)

    def of(self, agent_id: str) -> int:
        return self.per_agent.get(agent_id, self.default)


def at_capacity_message(name: str, held: int, capacity: int) -> str:
    """Why a take-over, transfer or assignment is refused: "Ben Stone is at capacity (5 of 5)"."""
    return f"{name} is at capacity ({held} of {capacity})"


def not_online_message(name: str, status: AgentStatus) -> str:
    return f"{name} is {status.value}: a conversation can only be transferred to an agent who is online"


def refusal(
    name: str, status: AgentStatus, held: int, capacity: int, *, require_online: bool
) -> tuple[str, str] | None:
    """Whether an agent holding `held` conversations may take one more: None, or (code, reason)
    with code "not_online" or "at_capacity". A manual take-over does not `require_online` (it
    makes the agent online); a transfer and an automatic assignment do."""
    if require_online and status is not AgentStatus.ONLINE:
        return "not_online", not_online_message(name, status)
    if held >= capacity:
        return "at_capacity", at_capacity_message(name, held, capacity)
    return None


def offline_note(name: str) -> str:
    """The note on a conversation put back in the queue when its holder went offline."""
    return f"{name} went offline; the conversation is back in the queue"


def automatic_joined_note(name: str) -> str:
    return f"{name} joined the conversation (assigned automatically)"


@dataclass(frozen=True)
class AgentLoad:
    """What automatic assignment knows of one agent."""

    agent_id: str
    status: AgentStatus
    held: int  # conversations held, take-overs in flight included
    capacity: int
    idle_since: datetime  # the last assignment (or, never assigned, when their status last changed)

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.held)


@dataclass(frozen=True)
class Waiting:
    conversation_id: str
    waiting_since: datetime


def plan_assignments(waiting: list[Waiting], agents: list[AgentLoad], now: datetime) -> list[tuple[str, str]]:
    """Who gets which waiting conversation: (conversation id, agent id) pairs.

    Oldest wait first; each goes to the online agent with the most free slots, ties to the one
    idle longest (then by id, so the plan is deterministic). Each assignment counts against the
    agent at once (one slot fewer, idle since `now`), so a batch spreads over the team as one at
    a time would. Conversations left over wait: no one has a free slot.
    """
    loads = {a.agent_id: a for a in agents if a.status is AgentStatus.ONLINE and a.free > 0}
    plan: list[tuple[str, str]] = []
    for conversation in sorted(waiting, key=lambda w: (w.waiting_since, w.conversation_id)):
        if not loads:
            break
        chosen = min(loads.values(), key=lambda a: (-a.free, a.idle_since, a.agent_id))
        plan.append((conversation.conversation_id, chosen.agent_id))
        taken = AgentLoad(chosen.agent_id, chosen.status, chosen.held + 1, chosen.capacity, now)
        if taken.free > 0:
            loads[chosen.agent_id] = taken
        else:
            del loads[chosen.agent_id]
    return plan


def online_seconds(changes: list[tuple[datetime, AgentStatus]], since: datetime, until: datetime) -> float:
    """Seconds an agent was online within [since, until), from their status changes in time order
    (before the first change they were offline)."""
    total = 0.0
    for i, (at, status) in enumerate(changes):
        if status is not AgentStatus.ONLINE:
            continue
        end = changes[i + 1][0] if i + 1 < len(changes) else until
        start, stop = max(at, since), min(end, until)
        if stop > start:
            total += (stop - start).total_seconds()
    return total


def occupancy(held_seconds: float, capacity: int, online: float) -> float | None:
    """Held conversation-seconds over capacity-seconds online; None with no time online."""
    if online <= 0 or capacity <= 0:
        return None
    return round(held_seconds / (capacity * online), 4)
