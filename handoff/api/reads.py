"""How the routes read one conversation: from the project database only, running or closed
(issue 8: reads make no Temporal call), and how the API writes what it learns first."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import SQLAlchemyError

from handoff.api.deps import Services, check_id
from handoff.client import ConversationClosed, ConversationNotFound
from handoff.lifecycle import CLOSED_MESSAGE
from handoff.models import (
    CUSTOMER_VISIBLE,
    CommandResult,
    ConversationSummary,
    RecordBatch,
    Status,
    TranscriptEntry,
)

log = logging.getLogger("handoff.api")


def customer_view(entries: list[TranscriptEntry]) -> list[TranscriptEntry]:
    """What a customer may see: never system notes, never internal notes."""
    return [e for e in entries if e.kind in CUSTOMER_VISIBLE]


async def read_conversation(
    s: Services, conversation_id: str
) -> tuple[ConversationSummary, list[TranscriptEntry], datetime]:
    """A conversation's summary and transcript from the database, and when they were read.

    No Temporal call (issue 8): every fact reaches the database within about a second of the
    workflow deciding it (the API writes an agent command's facts itself, the workflow's
    recorder the rest), so a read costs no Temporal action, needs no worker, and answers while
    Temporal is down. `as_of` is the time of the read: the answer holds everything recorded then.
    """
    check_id(conversation_id)
    as_of = datetime.now(UTC)
    stored = await run_in_threadpool(s.db.conversation, conversation_id)
    if stored is None:
        raise ConversationNotFound(f"no conversation {conversation_id!r}")
    summary, transcript = stored
    return summary, transcript, as_of


async def record_command(s: Services, result: CommandResult) -> ConversationSummary:
    """Write what an agent command produced as soon as Temporal has applied it, so every read
    (from the database) shows it at once; the workflow's recorder writes the same facts later
    (a no-op by their keys) and is the backstop if this write fails."""
    if result.facts:
        batch = RecordBatch(summary=result.summary(), facts=result.facts)
        try:
            await run_in_threadpool(s.db.record, batch)
        except SQLAlchemyError as error:
            log.warning("Database error (%s): the workflow's recorder writes these facts", type(error).__name__)
    return result.summary()


async def record_started(s: Services, conversation_id: str, customer_id: str) -> None:
    """The conversation's row as soon as Temporal accepted its start, so reads find it before the
    first facts are recorded (e.g. while no worker runs). It never overwrites a recorded row."""
    now = datetime.now(UTC)
    summary = ConversationSummary(
        conversation_id=conversation_id, customer_id=customer_id, status=Status.BOT, started_at=now, updated_at=now
    )
    try:
        await run_in_threadpool(s.db.record, RecordBatch(summary=summary, facts=[]))
    except SQLAlchemyError as error:
        log.warning("Database error (%s): the conversation is listed once its facts are recorded", type(error).__name__)


async def refuse_if_closed(s: Services, conversation_id: str) -> None:
    """A closed conversation is refused up front (a message to it reopens, see the route).

    The database row only moves forward, so "closed" there is final; a close the database
    has not recorded yet is caught by the workflow: its update validator refuses the command
    (a 409), or, on the signal path, it drops the signal.
    """
    stored = await run_in_threadpool(s.db.summary, conversation_id)
    if stored is not None and stored.status is Status.CLOSED:
        raise ConversationClosed(CLOSED_MESSAGE)


async def wait_for_bot(s: Services, conversation_id: str) -> tuple[Status, list[TranscriptEntry]]:
    """The status and transcript once the bot's answer to the first message is in the database,
    or as they stand when `api_temporal_timeout` runs out (with no worker running, a new
    conversation is in `bot` status and nothing is recorded yet; the answer follows in
    GET .../messages once a worker runs).

    Reads the database, never Temporal: waiting costs no Temporal action (issue 8)."""
    deadline = time.monotonic() + s.settings.api_temporal_timeout
    pause = 0.02
    while True:
        stored = await run_in_threadpool(s.db.conversation, conversation_id)
        status, transcript = (stored[0].status, stored[1]) if stored else (Status.BOT, [])
        answered = len(customer_view(transcript)) >= 2 or status is not Status.BOT
        if answered or time.monotonic() + pause >= deadline:
            return status, transcript
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.1)
