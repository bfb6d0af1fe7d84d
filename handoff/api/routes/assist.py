"""AI assist for the agent holding a conversation: suggested replies (handoff/assist.py).

Read from the database only: asking for suggestions costs no Temporal action, so the agent UI
can refresh them as the customer writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from handoff import handover
from handoff.api.deps import AGENT_ERRORS, ERRORS, CurrentAgent, ServicesDep, check_id, utc
from handoff.assist import (
    AssistStats,
    Feedback,
    FeedbackAction,
    Suggestions,
    UnknownSuggestion,
    assist_stats,
    exclude_from_index,
    record_feedback,
    suggestions_for,
)
from handoff.client import ConversationNotFound
from handoff.models import EntryKind, Model

router = APIRouter(tags=["agent"])


@router.get("/conversations/{conversation_id}/suggestions", responses=AGENT_ERRORS)
async def suggestions(conversation_id: str, agent: CurrentAgent, s: ServicesDep, request: Request) -> Suggestions:
    """Up to three replies for the customer's latest messages, best first, each with its source
    (a knowledge-base answer, or an agent's reply in a conversation closed as resolved), a score
    and an id. For the agent holding the conversation (403 for another agent, 409 once closed)."""
    check_id(conversation_id)
    return await suggestions_for(
        s.db, request.app.state.assistant, conversation_id, agent.id, request.app.state.rewriter
    )


class Excluded(Model):
    conversation_id: str
    replies_removed: int  # replies it had in the index, taken out now


@router.post("/conversations/{conversation_id}/exclude-from-suggestions", responses=ERRORS)
async def exclude_from_suggestions(conversation_id: str, agent: CurrentAgent, s: ServicesDep) -> Excluded:
    """Keep this conversation's replies out of everyone's suggestions, from now on: before its
    close (a close as resolved will not index it) or after (what it added is taken out). Idempotent."""
    check_id(conversation_id)
    if await run_in_threadpool(s.db.summary, conversation_id) is None:
        raise ConversationNotFound(f"no conversation {conversation_id!r}")
    removed = await run_in_threadpool(exclude_from_index, s.db, conversation_id, agent.id)
    return Excluded(conversation_id=conversation_id, replies_removed=removed)


class HandoverSummary(Model):
    conversation_id: str
    seq: int  # the internal note it is
    text: str
    rewritten: bool  # by the team's language model (HANDOFF_LLM_*); the note keeps the original


@router.get("/conversations/{conversation_id}/handover-summary", responses=ERRORS)
async def handover_summary(
    conversation_id: str, _agent: CurrentAgent, s: ServicesDep, request: Request
) -> HandoverSummary:
    """The latest handover summary of this conversation (an internal note, never shown to the
    customer), rewritten by the team's language model when one is configured."""
    check_id(conversation_id)
    transcript = await run_in_threadpool(s.db.transcript, conversation_id)
    notes = [e for e in transcript if e.kind is EntryKind.INTERNAL and e.author == handover.AUTHOR]
    if not notes:
        raise HTTPException(404, f"conversation {conversation_id!r} has no handover summary")
    note = notes[-1]
    rewriter = request.app.state.rewriter
    rewritten = None if rewriter is None else await rewriter.summary(note.text)
    return HandoverSummary(
        conversation_id=conversation_id, seq=note.seq, text=rewritten or note.text, rewritten=rewritten is not None
    )


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
