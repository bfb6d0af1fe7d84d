"""Shared test helpers: waiting for what a user would eventually see."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from handoff.client import HandoffClient
from handoff.lifecycle import Conversation, new_state
from handoff.models import Agent, Command, EntryKind, RecordBatch, TranscriptEntry

T = TypeVar("T")

ALICE = Agent(id="agent-alice", name="Alice Martin")
BOB = Agent(id="agent-bob", name="Bob Stone")


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


def customer_view(transcript: list[TranscriptEntry]) -> list[tuple[str, str]]:
    """What the customer's widget shows: every entry but system notes."""
    return [(e.kind.value, e.text) for e in transcript if e.kind is not EntryKind.SYSTEM]


def notes(transcript: list[TranscriptEntry]) -> list[str]:
    return [e.text for e in transcript if e.kind is EntryKind.SYSTEM]


async def wait_for_entries(handoff: HandoffClient, conversation_id: str, count: int) -> list[TranscriptEntry]:
    return await eventually(lambda: handoff.transcript(conversation_id), lambda t: len(t) >= count)


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
