"""Shared test helpers: waiting for what a user would eventually see."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from handoff.cli.history import local_activity_type
from handoff.client import HandoffClient, workflow_id
from handoff.lifecycle import Conversation, new_state
from handoff.models import Agent, Command, EntryKind, RecordBatch, TranscriptEntry

T = TypeVar("T")

ALICE = Agent(id="agent-alice", name="Alice Martin")
BOB = Agent(id="agent-bob", name="Bob Stone")

# The default knowledge base's answers, written out: a test compares what the customer saw with
# the text a person wrote, never with what the bot computes (which would agree with itself).
GREETING_ANSWER = "Hello! How can I help you today?"
PASSWORD_ANSWER = (
    'You can reset your password from the sign-in page: choose "Forgot password?" and follow the link'
    " we email you. The link is valid for one hour."
)
ORDER_ANSWER = "You can follow your delivery under Orders → Track. Parcels usually arrive within 2 to 4 business days."
HANDOFF_ANSWER = "Sure, I'm connecting you with a member of our team. Someone will be with you shortly."


def new_id() -> str:
    return uuid.uuid4().hex


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `probe` until `until(value)` holds; fail naming `what` and the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


async def processed_signals(handoff: HandoffClient, conversation_id: str, name: str, count: int) -> list[HistoryEvent]:
    """Wait until the workflow has handled `count` signals named `name`, and return its history.

    Handled means: a workflow task that started after the last of them has completed, so
    every command the workflow decided on in answer to them (e.g. scheduling a bot answer)
    is in the returned history. A test can then check that something did *not* happen
    without sleeping and hoping.
    """
    handle = handoff.temporal.get_workflow_handle(workflow_id(conversation_id))

    async def history() -> list[HistoryEvent]:
        return list((await handle.fetch_history()).events)

    def handled(events: list[HistoryEvent]) -> bool:
        signals = [e.event_id for e in events if signal_name(e) == name]
        if len(signals) < count:
            return False
        return any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            and e.workflow_task_completed_event_attributes.started_event_id > signals[-1]
            for e in events
        )

    return await eventually(history, handled, what=f"{count} {name} signal(s) handled")


def signal_name(event: HistoryEvent) -> str | None:
    if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        return None
    return event.workflow_execution_signaled_event_attributes.signal_name


def activities_scheduled(events: list[HistoryEvent], activity_type: str, *, after_event: int = 0) -> int:
    """How many `activity_type` activities the workflow scheduled after event id `after_event`."""
    return sum(
        1
        for e in events
        if e.event_id > after_event
        and e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity_type
    )


def bot_answers_asked(events: list[HistoryEvent], *, after_event: int = 0) -> int:
    """How many bot answers the workflow asked for after event id `after_event`: `BotAnswer`
    activities scheduled, or run locally (a marker each, in newer conversations)."""
    local = sum(1 for e in events if e.event_id > after_event and local_activity_type(e) == "BotAnswer")
    return activities_scheduled(events, "BotAnswer", after_event=after_event) + local


def last_signal(events: list[HistoryEvent], name: str) -> int:
    """The event id of the last signal named `name`."""
    return max(e.event_id for e in events if signal_name(e) == name)


def customer_view(transcript: list[TranscriptEntry]) -> list[tuple[str, str]]:
    """What the customer's widget shows: every entry but system and internal notes."""
    return [(e.kind.value, e.text) for e in transcript if e.kind not in (EntryKind.SYSTEM, EntryKind.INTERNAL)]


def notes(transcript: list[TranscriptEntry]) -> list[str]:
    return [e.text for e in transcript if e.kind is EntryKind.SYSTEM]


async def wait_for_entries(handoff: HandoffClient, conversation_id: str, count: int) -> list[TranscriptEntry]:
    # A generous bound: a worker process just started on a busy machine may take a while to poll.
    return await eventually(lambda: handoff.transcript(conversation_id), lambda t: len(t) >= count, timeout=60.0)


def play(
    conversation_id: str, start: datetime, commands: list[Command], customer_id: str = "customer-1"
) -> tuple[Conversation, list[RecordBatch]]:
    """Run commands through the real rules, one second apart; one record batch per command,
    as the workflow writes them (for store and statistics tests that need no server)."""
    conv = Conversation(new_state(conversation_id, customer_id, start))
    batches = []
    for i, command in enumerate(commands):
        facts = conv.apply(command, start + timedelta(seconds=i))
        batches.append(RecordBatch(summary=conv.state.summary(), facts=facts))
    return conv, batches
