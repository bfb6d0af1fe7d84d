"""Scripted conversations for the fault tests: the reference conversation and a short one.

A script is played one step at a time, each step waiting for what the customer and agent
would see (the transcript reaching its expected length) before the next, so the transcript of
a run is deterministic: the same script gives the same entries with or without a fault, and
a test can compare the two entry by entry. The bot is the shipped knowledge-base bot.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from handoff.client import HandoffClient, HandoffError
from handoff.models import Agent, ConversationSummary, Outcome, TranscriptEntry
from tests.faults.harness import pending_activities, wait_until
from tests.helpers import ALICE, BOB


@dataclass(frozen=True)
class Say:
    """A customer message; `answered` if the bot replies, `asks_human` if that reply hands off."""

    text: str
    answered: bool = True
    asks_human: bool = False

    @property
    def entries(self) -> int:
        # The message, the bot's answer, and the "asked for a person" note.
        return 1 + int(self.answered) + int(self.asks_human)


@dataclass(frozen=True)
class TakeOver:
    agent: Agent
    entries: int = 1  # "... joined the conversation"


@dataclass(frozen=True)
class Reply:
    agent: Agent
    text: str
    entries: int = 1


@dataclass(frozen=True)
class HandBack:
    agent: Agent
    entries: int = 1  # "... left the conversation"


@dataclass(frozen=True)
class Close:
    agent: Agent
    outcome: Outcome = Outcome.RESOLVED
    entries: int = 1  # "... closed the conversation as ..."


Step = Say | TakeOver | Reply | HandBack | Close

# The one customer message the default bot can only answer with its fallback; the slow test
# worker (tests/faults/slow_worker.py) never finishes answering it.
SLOW_QUESTION = "Does my warranty cover accidental damage to the screen?"

REFERENCE: list[tuple[str, Step]] = [
    ("hello", Say("Hello")),
    ("password", Say("How do I reset my password?")),
    ("ask_human", Say("I want to talk to a human", asks_human=True)),
    ("while_waiting", Say("It is about order 1234", answered=False)),
    ("take_over", TakeOver(ALICE)),
    ("agent_reply", Reply(ALICE, "Hi, I'm Alice. Let me look at your order.")),
    ("while_human", Say("Thank you", answered=False)),
    ("hand_back", HandBack(ALICE)),
    ("bot_answer", Say(SLOW_QUESTION)),
    ("where_is_my_order", Say("Where is my order?")),
    ("ask_again", Say("agent please", asks_human=True)),
    ("take_over_again", TakeOver(BOB)),
    ("close", Close(BOB)),
]
"""The reference conversation: every state and transition, two agents, one hand-back."""

SHORT: list[tuple[str, Step]] = [
    ("ask_human", Say("I want to talk to a human", asks_human=True)),
    ("take_over", TakeOver(ALICE)),
    ("agent_reply", Reply(ALICE, "Hi, I'm Alice. How can I help?")),
    ("close", Close(ALICE)),
]
"""A short full lifecycle, for load: bot answer (a hand-off), waiting, take-over, reply, close."""

WHOLE: list[tuple[str, Step]] = [
    ("ask_human", Say("I want to talk to a human", asks_human=True)),
    ("take_over", TakeOver(ALICE)),
    ("agent_reply", Reply(ALICE, "Hi, I'm Alice. How can I help?")),
    ("hand_back", HandBack(ALICE)),
    ("where_is_my_order", Say("Where is my order?")),
    ("take_over_again", TakeOver(BOB)),
    ("close", Close(BOB)),
]
"""Every state and transition in few steps, for the soak: bot, waiting, human, hand-back to
the bot, a bot answer, a take-over straight from the bot, close."""


class Conversation:
    """Plays a script against a real conversation, step by step."""

    settle_from_database = False
    """Settle on the database rather than with queries (see `settle`); set by the restart faults."""

    def __init__(
        self,
        handoff: HandoffClient,
        conversation_id: str,
        script: list[tuple[str, Step]] = REFERENCE,
        *,
        continue_as_new_after_events: int | None = None,
        timeout: float = 90.0,
    ) -> None:
        self.handoff = handoff
        self.id = conversation_id
        self.script = script
        self.continue_as_new_after_events = continue_as_new_after_events
        self.timeout = timeout
        self.next = 0  # index of the next step to act
        self.expected_entries = 0
        self.unconfirmed = False  # a customer message was sent and not yet seen in the transcript
        self.retried_calls = 0  # calls sent again because Temporal could not be reached

    @property
    def done(self) -> bool:
        return self.next >= len(self.script)

    def index(self, name: str) -> int:
        return [n for n, _ in self.script].index(name)

    async def act(self) -> str:
        """Perform the next step without waiting for its effect; its name."""
        name, step = self.script[self.next]
        await self._perform(step)
        self.unconfirmed = self.unconfirmed or isinstance(step, Say)
        self.next += 1
        self.expected_entries += step.entries
        return name

    async def _send(self, step: Step) -> None:
        h, cid = self.handoff, self.id
        match step:
            case Say(text=text):
                if self.next == 0:
                    await h.start_or_message(
                        cid,
                        f"customer-{cid}",
                        text,
                        message_id=f"{cid}-{self.next}",
                        continue_as_new_after_events=self.continue_as_new_after_events,
                    )
                else:
                    await h.send_message(cid, text, message_id=f"{cid}-{self.next}")
            case TakeOver(agent=agent):
                await h.take_over(cid, agent)
            case Reply(agent=agent, text=text):
                await h.reply(cid, agent, text)
            case HandBack(agent=agent):
                await h.hand_back(cid, agent)
            case Close(agent=agent, outcome=outcome):
                await h.close(cid, agent, outcome)

    async def _perform(self, step: Step) -> None:
        """Send the step; while Temporal cannot be reached, retry it as a careful backend would.

        The client already retries for about ten seconds; a server restart on a busy machine
        can take longer. Before sending again, the transcript tells whether the step took
        effect and only its answer was lost (every step adds an entry when it is applied, and
        the previous steps were settled), so a retry never applies a command twice.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                await self._send(step)
                return
            except RPCError:
                if time.monotonic() > deadline:
                    raise
            self.retried_calls += 1
            await asyncio.sleep(0.5)
            transcript = await self.transcript()
            if transcript is not None and len(transcript) > self.expected_entries:
                return

    async def transcript(self) -> list[TranscriptEntry] | None:
        """The live transcript, or None while the server or worker cannot answer."""
        try:
            return await asyncio.wait_for(self.handoff.transcript(self.id), 10)
        except (RPCError, WorkflowQueryFailedError, TimeoutError, HandoffError):
            return None

    async def stored_transcript(self) -> list[TranscriptEntry] | None:
        """The transcript as the database holds it (what the API reads), or None while the
        database cannot answer."""
        store = self.handoff.store
        assert store is not None, "the harness's client has the lab's store"
        try:
            return await asyncio.to_thread(store.transcript, self.id)
        except SQLAlchemyError:
            return None

    async def settle(self) -> None:
        """Wait until every step acted so far shows in the transcript.

        An agent command is an update, answered once the workflow applied it: nothing to wait
        for. A customer message is a signal: wait, with queries, for it and the bot's answer;
        or, with `settle_from_database`, in the database as the product's readers do (a
        read-side conversation records each entry at once). The server-restart faults settle
        that way: a query that lands while the worker's sticky queue is unreachable, after a
        restart, can make the worker apply an activity result outside a workflow task (README,
        Reliability), which is the harness disturbing what it measures. The database faults
        cannot: there the database is what is down or locked.
        """
        if not self.unconfirmed:
            return
        deadline = time.monotonic() + self.timeout
        interval = 0.05
        while True:
            transcript = await (self.stored_transcript() if self.settle_from_database else self.transcript())
            count = None if transcript is None else len(transcript)
            if count is not None and count >= self.expected_entries:
                assert count == self.expected_entries, f"conversation {self.id}: more entries than expected"
                self.unconfirmed = False
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"conversation {self.id}: {self.expected_entries} entries expected after step "
                    f"{self.script[self.next - 1][0]!r} within {self.timeout}s; got {count}"
                )
            # Back off, so hundreds of conversations waiting at once do not become the load.
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 1.0)

    async def play_until(self, name: str) -> None:
        """Act and settle every step before `name`."""
        stop = self.index(name)
        while self.next < stop:
            await self.act()
            await self.settle()

    async def play_through(self, name: str) -> list[TranscriptEntry]:
        """Act and settle every step up to and including `name`; the transcript then."""
        while self.next <= self.index(name):
            await self.act()
            await self.settle()
        return await self.handoff.transcript(self.id)

    async def play_rest(self) -> ConversationSummary:
        """Act and settle the remaining steps; the final summary once the workflow completed."""
        while not self.done:
            await self.act()
            await self.settle()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return await asyncio.wait_for(self.handoff.result(self.id), self.timeout)
            except RPCError:
                if time.monotonic() > deadline:
                    raise
                self.retried_calls += 1
                await asyncio.sleep(0.5)

    async def wait_idle(self) -> None:
        """Wait until no activity of the conversation is in flight (nor waiting to retry), so
        the activities the next step starts are the only ones a fault can catch."""
        await wait_until(
            lambda: pending_activities(self.handoff, self.id),
            lambda pending: not pending,
            f"conversation {self.id} idle",
            self.timeout,
        )


class Load:
    """Up to `count` conversations of `script`, `concurrency` at a time (a steady load).

    `active` holds the conversations in progress, `started` every one begun, `completed`
    counts the finished ones; `stop()` starts no more, those in progress go on to the end.
    """

    def __init__(
        self,
        handoff: HandoffClient,
        count: int,
        *,
        concurrency: int = 20,
        script: list[tuple[str, Step]] = SHORT,
        on_completed: Callable[[int], None] | None = None,
    ) -> None:
        self.handoff = handoff
        self.on_completed = on_completed  # called with the new count after each completion
        self.count = count
        self.concurrency = concurrency
        self.script = script
        self.started: list[str] = []
        self.active: set[str] = set()
        self.completed = 0
        self.errors: list[BaseException] = []
        self.retried_calls = 0
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    async def run(self) -> None:
        gate = asyncio.Semaphore(self.concurrency)

        async def one() -> None:
            async with gate:
                if self.stopping:
                    return
                conversation_id = uuid.uuid4().hex
                self.started.append(conversation_id)
                self.active.add(conversation_id)
                conversation = Conversation(self.handoff, conversation_id, self.script)
                try:
                    await conversation.play_rest()
                    self.completed += 1
                    if self.on_completed is not None:
                        self.on_completed(self.completed)
                finally:
                    self.active.discard(conversation_id)
                    self.retried_calls += conversation.retried_calls

        results = await asyncio.gather(*(one() for _ in range(self.count)), return_exceptions=True)
        self.errors = [r for r in results if isinstance(r, BaseException)]

    async def wait_completed(self, count: int, timeout: float = 300.0) -> None:
        async def progress() -> int:
            return self.completed

        await wait_until(progress, lambda done: done >= count, f"{count} conversations completed", timeout)
