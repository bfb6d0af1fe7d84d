"""What an agent does to one conversation (updates, answered once the workflow has applied
or refused them) and the agent's view of it, with system notes."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from handoff.api.deps import AGENT_ERRORS, ERRORS, CurrentAgent, ServicesDep, check_id
from handoff.api.reads import read_conversation, record_command
from handoff.api.schemas import CloseRequest, ConversationDetail, NewReply
from handoff.assist import match_reply
from handoff.models import ConversationSummary

router = APIRouter(tags=["agent"])


@router.post("/conversations/{conversation_id}/takeover", responses=AGENT_ERRORS)
async def take_over(conversation_id: str, agent: CurrentAgent, s: ServicesDep) -> ConversationSummary:
    """Take the conversation (from the bot or the Waiting column); 409 if another agent holds it
    or the caller is at capacity. It makes the caller online."""
    check_id(conversation_id)
    result = await s.temporal(s.handoff.take_over_result(conversation_id, agent, caller_records=True), command=True)
    if s.handoff.records_results:
        return result.summary()  # written by the client, before it freed the slot
    return await record_command(s, result)


@router.post("/conversations/{conversation_id}/replies", responses=AGENT_ERRORS)
async def reply(conversation_id: str, body: NewReply, agent: CurrentAgent, s: ServicesDep) -> ConversationSummary:
    check_id(conversation_id)
    result = await s.temporal(
        s.handoff.reply_result(conversation_id, agent, body.text, caller_records=True), command=True
    )
    summary = await record_command(s, result)
    # A reply close to a suggestion shown to this agent counts as that suggestion used.
    await run_in_threadpool(match_reply, s.db, conversation_id, agent.id, body.text, datetime.now(UTC))
    return summary


@router.post("/conversations/{conversation_id}/hand-back", responses=AGENT_ERRORS)
async def hand_back(conversation_id: str, agent: CurrentAgent, s: ServicesDep) -> ConversationSummary:
    """Give the conversation back to the bot."""
    check_id(conversation_id)
    result = await s.temporal(s.handoff.hand_back_result(conversation_id, agent, caller_records=True), command=True)
    return await record_command(s, result)


@router.post("/conversations/{conversation_id}/close", responses=AGENT_ERRORS)
async def close(conversation_id: str, body: CloseRequest, agent: CurrentAgent, s: ServicesDep) -> ConversationSummary:
    check_id(conversation_id)
    result = await s.temporal(
        s.handoff.close_result(conversation_id, agent, body.outcome, caller_records=True), command=True
    )
    return await record_command(s, result)


@router.get("/conversations/{conversation_id}", responses=ERRORS)
async def get_conversation(conversation_id: str, _agent: CurrentAgent, s: ServicesDep) -> ConversationDetail:
    """State, assigned agent, outcome, timestamps and the full transcript with system notes
    (and, for a reopened conversation, the one it continues), from the database only (no
    Temporal call); `as_of` says when it was read."""
    summary, transcript, as_of = await read_conversation(s, conversation_id)
    previous = await run_in_threadpool(s.db.previous_conversation, conversation_id)
    earlier = await run_in_threadpool(s.db.transcript, previous) if previous is not None else []
    return ConversationDetail(
        **summary.model_dump(),
        transcript=transcript,
        live=False,
        as_of=as_of,
        previous_conversation_id=previous,
        previous_transcript=earlier,
    )
