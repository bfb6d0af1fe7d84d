"""The Live support tab's columns, read from the database only."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from handoff.api.deps import ERRORS, CurrentAgent, ServicesDep
from handoff.api.schemas import MyConversations, WaitingColumn, WaitingConversation

router = APIRouter(tags=["agent"], responses=ERRORS)


@router.get("/live/waiting")
async def live_waiting(_agent: CurrentAgent, s: ServicesDep) -> WaitingColumn:
    """The Waiting column, longest-waiting first."""
    now = datetime.now(UTC)
    rows = await run_in_threadpool(s.db.waiting)
    return WaitingColumn(
        as_of=now,
        conversations=[
            WaitingConversation(
                **c.model_dump(),
                waiting_seconds=max((now - (c.waiting_since or now)).total_seconds(), 0.0),
            )
            for c in rows
        ],
    )


@router.get("/live/mine")
async def live_mine(agent: CurrentAgent, s: ServicesDep) -> MyConversations:
    """The caller's My conversations: the ones they hold now."""
    as_of = datetime.now(UTC)
    return MyConversations(agent=agent, conversations=await run_in_threadpool(s.db.assigned_to, agent.id), as_of=as_of)
