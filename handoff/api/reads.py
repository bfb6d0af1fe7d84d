"""How the routes read one conversation: from the database once it is closed and recorded,
live from its workflow while it runs, and from the database again once Temporal no longer has it."""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi.concurrency import run_in_threadpool
from temporalio.service import RPCError

from handoff.api.deps import Services, check_id
from handoff.client import ConversationClosed, ConversationNotFound
from handoff.lifecycle import CLOSED_MESSAGE
from handoff.models import CUSTOMER_VISIBLE, ConversationSummary, Status, TranscriptEntry


def customer_view(entries: list[TranscriptEntry]) -> list[TranscriptEntry]:
    """What a customer may see: never system notes, never internal notes."""
    return [e for e in entries if e.kind in CUSTOMER_VISIBLE]


async def read_conversation(
    s: Services, conversation_id: str
) -> tuple[ConversationSummary, list[TranscriptEntry], bool]:
    """A conversation's summary and transcript, and whether they were read live from Temporal.

    A closed conversation whose facts are all in the database is read from there without
    asking Temporal; a running one from its workflow; one Temporal no longer has from the
    database, whatever it holds.
    """
    check_id(conversation_id)
    stored = await run_in_threadpool(s.db.summary, conversation_id)
    if stored is not None and stored.status is Status.CLOSED:
        facts = await run_in_threadpool(s.db.facts, conversation_id)
        if facts and facts[-1].number == stored.last_fact:
            return stored, [f.entry for f in facts if f.entry is not None], False
    try:
        # One after the other, not concurrently (see `wait_for_bot`).
        summary = await s.temporal(s.handoff.summary(conversation_id))
        transcript = await s.temporal(s.handoff.transcript(conversation_id))
        return summary, transcript, True
    except (ConversationNotFound, ConversationClosed):
        if stored is None:
            raise
        return stored, await run_in_threadpool(s.db.transcript, conversation_id), False


async def refuse_if_closed(s: Services, conversation_id: str) -> None:
    """Customer signals are fire-and-forget, so a closed conversation is refused up front.

    The database row only moves forward, so "closed" there is final; a close the database
    has not recorded yet is caught by the workflow, which drops the signal.
    """
    stored = await run_in_threadpool(s.db.summary, conversation_id)
    if stored is not None and stored.status is Status.CLOSED:
        raise ConversationClosed(CLOSED_MESSAGE)


async def wait_for_bot(s: Services, conversation_id: str) -> tuple[Status, list[TranscriptEntry]]:
    """The status and transcript once the bot has answered the first message, or as they
    stand when `api_temporal_timeout` runs out (with no worker running, a new conversation
    is in `bot` status and its transcript is not known yet; the answer follows in
    GET .../messages once a worker runs).

    One query at a time: concurrent queries on a workflow whose first task is still running
    were seen to take about a second longer."""
    deadline = time.monotonic() + s.settings.api_temporal_timeout
    transcript: list[TranscriptEntry] = []
    pause = 0.02
    while len(transcript) < 2 and time.monotonic() + pause < deadline:
        # E.g. the first workflow task has not run yet: ask again.
        with contextlib.suppress(TimeoutError, RPCError):
            transcript = await asyncio.wait_for(
                s.handoff.transcript(conversation_id), max(deadline - time.monotonic(), 0.01)
            )
        if len(transcript) < 2:
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.2)
    try:
        summary = await asyncio.wait_for(s.handoff.summary(conversation_id), max(deadline - time.monotonic(), 0.5))
    except (TimeoutError, RPCError):
        return Status.BOT, transcript
    return summary.status, transcript
