"""AI assist for the agent holding a conversation: suggested replies (handoff/assist.py).

Read from the database only: asking for suggestions costs no Temporal action, so the agent UI
can refresh them as the customer writes."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from handoff.api.deps import AGENT_ERRORS, CurrentAgent, ServicesDep, check_id
from handoff.assist import Assistant, Suggestions, customer_context
from handoff.client import ConversationClosed, ConversationNotFound, NotAssignedAgent
from handoff.models import Status

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
    return Suggestions(
        conversation_id=conversation_id,
        as_of=datetime.now(UTC),
        based_on=context,
        suggestions=assistant.suggest(context, exclude_conversation=conversation_id),
    )
