"""The Live support tab's columns, read from the database only."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from handoff.api.deps import ERRORS, CurrentAgent, ServicesDep
from handoff.api.schemas import HeldConversation, MyConversations, WaitingColumn, WaitingConversation
from handoff.models import FactKind

router = APIRouter(tags=["agent"], responses=ERRORS)


@router.get("/live/waiting")
async def live_waiting(_agent: CurrentAgent, s: ServicesDep) -> WaitingColumn:
    """The Waiting column, longest-waiting first."""
    now = datetime.now(UTC)
    rows = await run_in_threadpool(s.db.waiting)
    overdue = await run_in_threadpool(s.db.overdue, rows, FactKind.WAITING_SLA_BREACHED)
    return WaitingColumn(
        as_of=now,
        conversations=[
            WaitingConversation(
                **c.model_dump(),
                waiting_seconds=max((now - (c.waiting_since or now)).total_seconds(), 0.0),
                overdue=c.conversation_id in overdue,
            )
            for c in rows
        ],
    )


@router.get("/live/mine")
async def live_mine(agent: CurrentAgent, s: ServicesDep) -> MyConversations:
    """The caller's My conversations: the ones they hold now; `overdue` if not replied to in time."""
    as_of = datetime.now(UTC)
    rows = await run_in_threadpool(s.db.assigned_to, agent.id)
    overdue = await run_in_threadpool(s.db.overdue, rows, FactKind.FIRST_REPLY_SLA_BREACHED)
    return MyConversations(
        agent=agent,
        conversations=[HeldConversation(**c.model_dump(), overdue=c.conversation_id in overdue) for c in rows],
        as_of=as_of,
    )
