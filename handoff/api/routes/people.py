"""Issue 9: hand-offs between people (transfer, back to the queue, internal notes) and the
customer's satisfaction rating."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from handoff.api.deps import AGENT_ERRORS, ERRORS, CurrentAgent, CustomerConversation, ServicesDep, check_id
from handoff.api.schemas import NoteRequest, RatingOut, RatingRequest, TransferRequest
from handoff.client import InvalidTransferTarget
from handoff.models import ConversationSummary
from handoff.ratings import RatingRefused
from handoff.ratings import rate as rate_conversation

router = APIRouter()


@router.post("/conversations/{conversation_id}/transfer", responses=AGENT_ERRORS, tags=["agent"])
async def transfer(
    conversation_id: str, body: TransferRequest, agent: CurrentAgent, s: ServicesDep
) -> ConversationSummary:
    """The holder gives the conversation to another agent (409 if that agent does not exist,
    already holds it, is not online or is at capacity); the optional note is internal."""
    check_id(conversation_id)
    target = s.agents.by_id(body.agent_id)
    if target is None:
        raise InvalidTransferTarget(f"no agent {body.agent_id!r}")
    return await s.temporal(s.handoff.transfer(conversation_id, agent, target, body.note), command=True)


@router.post("/conversations/{conversation_id}/release", responses=AGENT_ERRORS, tags=["agent"])
async def release(conversation_id: str, agent: CurrentAgent, s: ServicesDep) -> ConversationSummary:
    """The holder puts the conversation back in the Waiting column, where its request first was."""
    check_id(conversation_id)
    return await s.temporal(s.handoff.release(conversation_id, agent), command=True)


@router.post("/conversations/{conversation_id}/notes", responses=AGENT_ERRORS, tags=["agent"])
async def add_note(conversation_id: str, body: NoteRequest, agent: CurrentAgent, s: ServicesDep) -> ConversationSummary:
    """An internal note by any agent on a conversation that is not closed: agents see it, the
    customer never does."""
    check_id(conversation_id)
    return await s.temporal(s.handoff.add_note(conversation_id, agent, body.text), command=True)


@router.post(
    "/conversations/{conversation_id}/rating",
    status_code=201,
    tags=["customer"],
    responses={**ERRORS, 410: {"description": "The rating window (HANDOFF_RATING_WINDOW) is over."}},
)
async def rate(conversation_id: CustomerConversation, body: RatingRequest, s: ServicesDep) -> RatingOut:
    """The customer rates a conversation an agent closed, once, within the rating window."""
    now = datetime.now(UTC)
    try:
        await run_in_threadpool(
            rate_conversation, s.db, conversation_id, body.score, body.comment, s.settings.rating_window, now
        )
    except RatingRefused as refused:
        code = status.HTTP_410_GONE if refused.gone else status.HTTP_409_CONFLICT
        raise HTTPException(code, refused.reason) from None
    return RatingOut(conversation_id=conversation_id, score=body.score, comment=body.comment, at=now)
