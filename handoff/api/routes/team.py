"""The team at work (issue 10): every agent's status, conversations held and capacity (the
console's Team view and `GET /agents`), and an agent setting their own status. Read from and
written to the database only: no Temporal action (but the releases of HANDOFF_OFFLINE_RETURNS)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from handoff import presence
from handoff.api.deps import ERRORS, CurrentAgent, Services, ServicesDep, utc
from handoff.api.schemas import Body
from handoff.assignment import change_status
from handoff.availability import AgentStatus
from handoff.models import Agent


class TeamMember(Body):
    agent: Agent
    status: AgentStatus
    """online, away or offline (offline until the agent sets a status)."""
    holding: int
    """Conversations this agent holds now."""
    capacity: int
    """How many they may hold at once (the agents file's max_conversations, else HANDOFF_AGENT_CAPACITY)."""
    status_since: datetime | None = None


class Team(Body):
    me: Agent
    members: list[TeamMember]


class AgentList(Body):
    agents: list[TeamMember]


class StatusChange(Body):
    status: AgentStatus


class AgentWorkOut(Body):
    agent: Agent
    online_seconds: float
    """Time online in the window."""
    held_seconds: float
    """Conversation-seconds held in the window."""
    capacity: int
    occupancy: float | None
    """held_seconds / (capacity x online_seconds); null with no time online."""
    assignments: dict[str, int]
    """{"automatic": n, "manual": m}: take-overs and transfers to the agent in the window."""


class AgentWorkStats(Body):
    since: datetime | None
    until: datetime
    agents: list[AgentWorkOut]


router = APIRouter(tags=["agent"], responses=ERRORS)


def members(s: Services) -> list[TeamMember]:
    """Every agent of the agents file, by name."""
    capacities = s.handoff.capacities or s.agents.capacities(s.settings.agent_capacity)
    return [
        TeamMember(agent=m.agent, status=m.status, holding=m.holding, capacity=m.capacity, status_since=m.status_since)
        for m in presence.team(s.db, [e.agent for e in s.agents.agents], capacities)
    ]


@router.get("/team")
async def team(agent: CurrentAgent, s: ServicesDep) -> Team:
    """The console's Team view: the caller and every agent with status, holding and capacity."""
    return Team(me=agent, members=await run_in_threadpool(members, s))


@router.get("/agents")
async def list_agents(_agent: CurrentAgent, s: ServicesDep) -> AgentList:
    """Every agent with status, conversations held and capacity (agents only)."""
    return AgentList(agents=await run_in_threadpool(members, s))


@router.get("/stats/agents")
async def agent_stats(
    _agent: CurrentAgent,
    s: ServicesDep,
    since: Annotated[datetime | None, Query(description="ISO 8601; UTC if no zone.")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; UTC if no zone; default now.")] = None,
) -> AgentWorkStats:
    """Per agent over [since, until): time online, occupancy, assignments automatic and manual."""
    now = datetime.now(UTC)
    end = utc(until) or now
    capacities = s.handoff.capacities or s.agents.capacities(s.settings.agent_capacity)
    rows = await run_in_threadpool(
        presence.work_stats, s.db, [e.agent for e in s.agents.agents], capacities, utc(since), end, now
    )
    return AgentWorkStats(
        since=utc(since),
        until=min(end, now),
        agents=[
            AgentWorkOut(
                agent=r.agent,
                online_seconds=r.online_seconds,
                held_seconds=r.held_seconds,
                capacity=r.capacity,
                occupancy=r.occupancy,
                assignments={"automatic": r.automatic_assignments, "manual": r.manual_assignments},
            )
            for r in rows
        ],
    )


@router.put("/agents/me/status")
async def set_my_status(body: StatusChange, agent: CurrentAgent, s: ServicesDep) -> TeamMember:
    """Set the caller's status. Going offline with HANDOFF_OFFLINE_RETURNS=true puts what they
    hold back in the Waiting column, at the front, each with a note; coming online lets automatic
    assignment give them conversations at once."""
    await s.temporal(
        change_status(s.handoff, s.db, agent, body.status, offline_returns=s.settings.offline_returns), command=True
    )
    if s.assigner is not None:
        s.assigner.wake()
    mine = next(m for m in await run_in_threadpool(members, s) if m.agent.id == agent.id)
    return mine
