"""What the customer's chat widget calls, with the conversation's customer token.

An `Idempotency-Key` makes a retried create or message act once. The key (with the
customer id) names the conversation, so it must be hard to guess (at least 16 characters)
and must not work like a password: a request that reuses a key with a different body is a
409, and a retried create answers only what the first call did (the first message and the
bot's answer to it, with the same token), never what was said since.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

from handoff.api.deps import ERRORS, CustomerConversation, IdempotencyKey, Services, ServicesDep
from handoff.api.reads import (
    customer_view,
    read_conversation,
    record_command,
    record_started,
    refuse_if_closed,
    wait_for_bot,
)
from handoff.api.schemas import (
    Accepted,
    CreatedConversation,
    CustomerMessages,
    NewMessage,
    ReopenedConversation,
    StartConversation,
)
from handoff.client import ConversationClosed, HandoffError
from handoff.models import CommandResult, EntryKind, TranscriptEntry

router = APIRouter(tags=["customer"], responses=ERRORS)
log = logging.getLogger("handoff.api")

KEY_REUSED = (
    "this Idempotency-Key was already used for a different request; "
    "send a retry with the same body, or a new request with a new key"
)


async def claim(s: Services, request_id: str, *body: str) -> None:
    """Remember the first request under this key; a different one reusing it is a 409."""
    digest = s.tokens.request_digest(request_id, *body)
    if not await run_in_threadpool(s.db.claim_request, request_id, digest, datetime.now(UTC)):
        raise HTTPException(status.HTTP_409_CONFLICT, KEY_REUSED)


async def deliver(s: Services, update: Awaitable[CommandResult], signal: Callable[[], Awaitable[None]]) -> None:
    """A customer's message or request for a person, sent as an update and its facts written
    to the database at once (so no `RecordFacts` run is needed, issue 8), or, when no worker
    answers the update within half the Temporal timeout, as a signal: the server keeps it
    durably while no worker runs, as before; likewise when the worker could not run the update
    at all (one of a version before these updates, during a rolling deploy). Both carry the same
    id, so whichever the workflow applies second is a no-op. An update the rules refuse (closed,
    invalid) raises the client's error: a 4xx with the reason."""

    async def answered() -> CommandResult | None:
        try:
            return await asyncio.wait_for(update, s.settings.api_temporal_timeout / 2)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            return None
        except HandoffError as failed:
            if type(failed) is not HandoffError:
                raise  # refused by a rule: ConversationClosed, InvalidCommand, ...
            # Its text may quote the payload: not logged (no customer text in a log line).
            log.warning("A customer update failed without a rule refusing it: sending the signal instead")
            return None

    result = await s.temporal(answered(), command=True)
    if result is None:
        await s.temporal(signal(), command=True)
        return
    await record_command(s, result)


def first_exchange(entries: list[TranscriptEntry]) -> list[TranscriptEntry]:
    """What a create answers: the customer's first message and the bot's answer to it (if it
    came), never later entries, so a retry learns nothing the first call did not."""
    seen = customer_view(entries)[:2]
    return seen if len(seen) < 2 or seen[1].kind is EntryKind.BOT else seen[:1]


@router.post("/conversations", status_code=201)
async def start_conversation(
    body: StartConversation, s: ServicesDep, idempotency_key: IdempotencyKey = None
) -> CreatedConversation:
    """Start a conversation with the customer's first message; the bot answers it at once."""
    if idempotency_key is None:
        conversation_id, message_id = uuid.uuid4().hex, uuid.uuid4().hex
    else:
        conversation_id = s.tokens.conversation_id(body.customer_id, idempotency_key)
        message_id = s.tokens.message_id(conversation_id, idempotency_key)
        await claim(s, conversation_id, body.customer_id, body.text)
    try:
        await s.temporal(
            s.handoff.start_or_message(conversation_id, body.customer_id, body.text, message_id=message_id)
        )
    except ConversationClosed:
        if idempotency_key is None:
            raise
        # A retry of a create whose conversation has since closed: answer with it as it is.
        summary, transcript, _ = await read_conversation(s, conversation_id)
        return CreatedConversation(
            id=conversation_id,
            status=summary.status,
            customer_token=s.tokens.token(conversation_id),
            messages=first_exchange(transcript),
        )
    await record_started(s, conversation_id, body.customer_id)
    conversation_status, transcript = await wait_for_bot(s, conversation_id)
    return CreatedConversation(
        id=conversation_id,
        status=conversation_status,
        customer_token=s.tokens.token(conversation_id),
        messages=first_exchange(transcript),
    )


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=202,
    responses={201: {"model": ReopenedConversation, "description": "The conversation was closed: a new one began."}},
)
async def send_message(
    conversation_id: CustomerConversation,
    body: NewMessage,
    s: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Accepted | ReopenedConversation:
    """A customer message; the bot (or the agent holding the conversation) answers it. To a
    closed conversation, it starts a new one with the bot, linked to the closed one (201)."""
    try:
        await refuse_if_closed(s, conversation_id)
    except ConversationClosed:
        response.status_code = status.HTTP_201_CREATED
        return await reopen(conversation_id, body, s, idempotency_key)
    if idempotency_key is None:
        message_id = uuid.uuid4().hex
    else:
        message_id = s.tokens.message_id(conversation_id, idempotency_key)
        await claim(s, message_id, body.text)
    await deliver(
        s,
        s.handoff.send_message_result(conversation_id, body.text, message_id=message_id, caller_records=True),
        lambda: s.handoff.send_message(conversation_id, body.text, message_id=message_id),
    )
    return Accepted(conversation_id=conversation_id, detail="message accepted")


async def reopen(previous_id: str, body: NewMessage, s: Services, idempotency_key: str | None) -> ReopenedConversation:
    """Start a new conversation with the message written to the closed `previous_id`; the closed
    one, its outcome and its statistics stay as they were. An Idempotency-Key makes a retry land
    in the same new conversation."""
    previous = await run_in_threadpool(s.db.summary, previous_id)
    assert previous is not None  # refuse_if_closed found it closed in the database
    if idempotency_key is None:
        conversation_id, message_id = uuid.uuid4().hex, uuid.uuid4().hex
    else:
        conversation_id = s.tokens.conversation_id(previous.customer_id, f"reopen:{previous_id}:{idempotency_key}")
        message_id = s.tokens.message_id(conversation_id, idempotency_key)
        await claim(s, conversation_id, previous_id, body.text)
    await s.temporal(s.handoff.reopen(previous_id, body.text, conversation_id=conversation_id, message_id=message_id))
    await record_started(s, conversation_id, previous.customer_id)
    conversation_status, transcript = await wait_for_bot(s, conversation_id)
    return ReopenedConversation(
        id=conversation_id,
        status=conversation_status,
        customer_token=s.tokens.token(conversation_id),
        messages=first_exchange(transcript),
        previous_conversation_id=previous_id,
    )


@router.post("/conversations/{conversation_id}/request-human", status_code=202)
async def request_human(conversation_id: CustomerConversation, s: ServicesDep) -> Accepted:
    """The customer asks for a person: the conversation joins the Waiting column (if the bot held it)."""
    await refuse_if_closed(s, conversation_id)
    request_id = uuid.uuid4().hex
    await deliver(
        s,
        s.handoff.request_human_result(conversation_id, request_id=request_id, caller_records=True),
        lambda: s.handoff.request_human(conversation_id, request_id=request_id),
    )
    return Accepted(conversation_id=conversation_id, detail="request for a person accepted")


@router.get("/conversations/{conversation_id}/messages")
async def customer_messages(
    conversation_id: CustomerConversation,
    s: ServicesDep,
    after: Annotated[int, Query(ge=0, description="Only entries with a higher seq (for polling).")] = 0,
) -> CustomerMessages:
    """What the customer sees: customer, bot and agent messages, never system notes.

    Read from the database only (no Temporal call): it answers while Temporal is down, and
    `as_of` says when it was read."""
    summary, transcript, as_of = await read_conversation(s, conversation_id)
    return CustomerMessages(
        conversation_id=conversation_id,
        status=summary.status,
        as_of=as_of,
        messages=[e for e in customer_view(transcript) if e.seq > after],
    )
