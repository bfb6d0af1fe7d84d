"""The Conversations tab (history) and the statistics, read from the database only, so they
keep working during a Temporal outage and outlive Temporal's retention."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from handoff.api.deps import ERRORS, CurrentAgent, ServicesDep, utc
from handoff.api.schemas import HistoryPageOut
from handoff.models import Outcome, Status
from handoff.stats import Stats, compute_stats

router = APIRouter(tags=["agent"], responses=ERRORS)


@router.get("/conversations")
async def history(
    _agent: CurrentAgent,
    s: ServicesDep,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    outcome: Outcome | None = None,
    agent: Annotated[str | None, Query(description="Conversations this agent took over at some point.")] = None,
    since: Annotated[datetime | None, Query(description="Started at or after (ISO 8601; UTC if no zone).")] = None,
    until: Annotated[datetime | None, Query(description="Started before (ISO 8601; UTC if no zone).")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HistoryPageOut:
    """The Conversations tab: every recorded conversation, newest first, a page at a time."""
    page = await run_in_threadpool(
        lambda: s.db.history(
            status=status_,
            outcome=outcome,
            agent_id=agent,
            since=utc(since),
            until=utc(until),
            cursor=cursor,
            limit=limit,
        )
    )
    return HistoryPageOut(conversations=page.conversations, next_cursor=page.next_cursor)


@router.get("/stats")
async def stats(
    _agent: CurrentAgent,
    s: ServicesDep,
    since: Annotated[datetime | None, Query(description="ISO 8601; UTC if no zone.")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; UTC if no zone.")] = None,
    agent: Annotated[str | None, Query(description="One agent's figures.")] = None,
) -> Stats:
    """The statistics over [since, until) (definitions in README.md, "Statistics")."""
    return await run_in_threadpool(lambda: compute_stats(s.db, since=utc(since), until=utc(until), agent_id=agent))
