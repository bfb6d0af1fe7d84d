"""The console's Team view: who the agents are and how many conversations each holds now.

Agent status (online, away) and capacity arrive with a later issue; `status` is null until
then, and the console shows "not tracked yet" in its place."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from handoff.api.deps import ERRORS, CurrentAgent, ServicesDep
from handoff.api.schemas import Body
from handoff.models import Agent


class TeamMember(Body):
    agent: Agent
    holding: int
    """Conversations this agent holds now."""
    status: str | None = None
    """Not tracked yet (a later issue): always null."""


class Team(Body):
    me: Agent
    members: list[TeamMember]


router = APIRouter(tags=["agent"], responses=ERRORS)


@router.get("/team")
async def team(agent: CurrentAgent, s: ServicesDep) -> Team:
    """Every agent of the agents file with the number of conversations they hold, by name."""

    def load() -> list[TeamMember]:
        return [
            TeamMember(agent=entry.agent, holding=len(s.db.assigned_to(entry.id)))
            for entry in sorted(s.agents.agents, key=lambda e: e.name)
        ]

    return Team(me=agent, members=await run_in_threadpool(load))
