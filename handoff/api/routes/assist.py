"""AI assist for the agent holding a conversation: suggested replies (handoff/assist.py).

Read from the database only: asking for suggestions costs no Temporal action, so the agent UI
can refresh them as the customer writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from handoff.api.deps import AGENT_ERRORS, ERRORS, CurrentAgent, ServicesDep, check_id, utc
from handoff.assist import (
    Assistant,
    AssistStats,
    Feedback,
    FeedbackAction,
    Suggestions,
    UnknownSuggestion,
    assist_stats,
    customer_context,
    record_feedback,
    record_shown,
)
from handoff.client import ConversationClosed, ConversationNotFound, NotAssignedAgent
from handoff.models import Model, Status

router = APIRouter(tags=["agent"])


@router.get("/conversations/{conversation_id}/suggestions", responses=AGENT_ERRORS)
async def suggestions(conversation_id: str, agent: CurrentAgent, s: ServicesDep, request: Request) -> Suggestions:
    """Up to three replies for the customer's latest messages, best first, each with its source
    (a knowledge-base answer, or an agent's reply in a conversation closed as resolved), a score
    and an id. For the agent holding the conversation (403 for another agent, 409 once closed)."""
    check_id(conversation_id)
    summary = await run_in_threadpool(s.db.summary, conversation_id)
    if summary is None:
        raise ConversationNotFound(f"no conversation {conversation_id!r}")
    if summary.status is Status.CLOSED:
        raise ConversationClosed(f"conversation {conversation_id!r} is closed")
    if summary.status is not Status.HUMAN or summary.agent is None or summary.agent.id != agent.id:
        raise NotAssignedAgent("suggestions are for the agent holding the conversation: take it over first")
    assistant: Assistant = request.app.state.assistant
    await run_in_threadpool(assistant.refresh, s.db)
    transcript = await run_in_threadpool(s.db.transcript, conversation_id)
    context = customer_context(transcript)
    now = datetime.now(UTC)
    suggested = assistant.suggest(context, exclude_conversation=conversation_id)
    # Remembered, so feedback can refer to them and a reply close to one counts as using it.
    await run_in_threadpool(record_shown, s.db, conversation_id, agent.id, suggested, now)
    return Suggestions(conversation_id=conversation_id, as_of=now, based_on=context, suggestions=suggested)


class FeedbackRequest(Model):
    action: FeedbackAction


@router.post("/conversations/{conversation_id}/suggestions/{suggestion_id}/feedback", responses=ERRORS)
async def suggestion_feedback(
    conversation_id: str, suggestion_id: str, body: FeedbackRequest, agent: CurrentAgent, s: ServicesDep
) -> Feedback:
    """Say what you made of a suggestion you were shown: `used`, `edited` or `dismissed` (a later
    click replaces an earlier one). A reply close to a suggestion counts as used without a click."""
    check_id(conversation_id)
    try:
        return await run_in_threadpool(
            record_feedback, s.db, conversation_id, agent.id, suggestion_id[:32], body.action, datetime.now(UTC)
        )
    except UnknownSuggestion as e:
        raise HTTPException(404, str(e)) from None


@router.get("/stats/assist", responses=ERRORS)
async def suggestion_stats(
    _agent: CurrentAgent,
    s: ServicesDep,
    since: Annotated[datetime | None, Query(description="ISO 8601; UTC if no zone.")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; UTC if no zone.")] = None,
    agent: Annotated[str | None, Query(max_length=200, description="One agent's figures.")] = None,
) -> AssistStats:
    """Suggestion acceptance per agent and per day, and first-response times with and without
    a used suggestion (definitions in README, "AI assist")."""
    return await run_in_threadpool(lambda: assist_stats(s.db, since=utc(since), until=utc(until), agent_id=agent))
