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
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from handoff.bot import DEFAULT_KNOWLEDGE_BASE
from handoff.client import HandoffClient
from handoff.models import Agent, ConversationSummary, Outcome, TranscriptEntry
from handoff.store import Store
from tests.faults.harness import pending_activities, recorded_entries, wait_until
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
# knowledge base (see `slow_knowledge_base`) takes practically forever over it.
SLOW_QUESTION = "Does my warranty cover accidental damage to the screen?"

REFERENCE: list[tuple[str, Step]] = [
    ("hello", Say("Hello")),
    ("password", Say("How do I reset my password?")),
    ("bot_answer", Say(SLOW_QUESTION)),
    ("ask_human", Say("I want to talk to a human", asks_human=True)),
    ("while_waiting", Say("It is about order 1234", answered=False)),
    ("take_over", TakeOver(ALICE)),
    ("agent_reply", Reply(ALICE, "Hi, I'm Alice. Let me look at your order.")),
    ("while_human", Say("Thank you", answered=False)),
    ("hand_back", HandBack(ALICE)),
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

    def __init__(
        self,
        handoff: HandoffClient,
        conversation_id: str,
        script: list[tuple[str, Step]] = REFERENCE,
        *,
        continue_as_new_after_events: int | None = None,
        timeout: float = 90.0,
        watch: Store | None = None,
    ) -> None:
        self.handoff = handoff
        self.id = conversation_id
        self.script = script
        self.continue_as_new_after_events = continue_as_new_after_events
        self.timeout = timeout
        self.watch = watch
        self.next = 0  # index of the next step to act
        self.expected_entries = 0

    @property
    def done(self) -> bool:
        return self.next >= len(self.script)

    def index(self, name: str) -> int:
        return [n for n, _ in self.script].index(name)

    async def act(self) -> str:
        """Perform the next step without waiting for its effect; its name."""
        name, step = self.script[self.next]
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
        self.next += 1
        self.expected_entries += step.entries
        return name

    async def transcript(self) -> list[TranscriptEntry] | None:
        """The live transcript, or None while the server or worker cannot answer."""
        try:
            return await asyncio.wait_for(self.handoff.transcript(self.id), 10)
        except (RPCError, WorkflowQueryFailedError, TimeoutError):
            return None

    async def entries(self) -> int | None:
        """How many entries the transcript has (None: cannot tell right now).

        With a `watch` store, counted in the database instead: far cheaper than a query (which
        travels through a worker) when hundreds of conversations are waiting at once.
        """
        if self.watch is not None:
            return recorded_entries(self.watch, self.id)
        transcript = await self.transcript()
        return None if transcript is None else len(transcript)

    async def settle(self) -> None:
        """Wait until every step acted so far shows in the transcript."""
        deadline = time.monotonic() + self.timeout
        interval = 0.05
        while True:
            count = await self.entries()
            if count is not None and count >= self.expected_entries:
                assert count == self.expected_entries, f"conversation {self.id}: more entries than expected"
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
        return await asyncio.wait_for(self.handoff.result(self.id), self.timeout)

    async def wait_recorded(self, store: Store) -> None:
        """Wait until the database holds every fact so far and no activity is in flight, so
        the next step's facts are the only ones a fault can catch on their way."""

        async def probe() -> tuple[int, int, int]:
            last_fact = (await self.handoff.summary(self.id)).last_fact
            in_flight = len(await pending_activities(self.handoff, self.id))
            return last_fact, len(store.facts(self.id)), in_flight

        await wait_until(
            probe, lambda v: v[0] == v[1] and v[2] == 0, f"conversation {self.id} recorded and idle", self.timeout
        )


SLOW_PATTERN = r"(?=.*\bwarranty\b)^(\w+\s?)+$"
"""Matches nothing in practice, but over SLOW_QUESTION it backtracks for hours (nested
quantifiers): a bot answer that stays in flight until the test kills the worker."""


def slow_knowledge_base(directory: Path) -> Path:
    """The shipped knowledge base plus one last answer whose pattern is SLOW_PATTERN.

    Every other message of the scripts is answered before that pattern is tried, so the bot
    answers exactly as the shipped one, only SLOW_QUESTION takes forever: a stand-in for a
    slow bot backend that makes "killed during a bot answer" deterministic.
    """
    path = directory / "slow_knowledge_base.toml"
    extra = f"\n[[answers]]\npatterns = ['{SLOW_PATTERN}']\nanswer = \"Never given.\"\n"
    path.write_text(DEFAULT_KNOWLEDGE_BASE.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


class Load:
    """Up to `count` conversations of `script`, `concurrency` at a time (a steady load).

    Conversations wait on the database (`watch`), not on queries, so the driver stays light.
    `active` holds the conversations in progress, `started` every one begun, `completed`
    counts the finished ones; `stop()` starts no more, those in progress go on to the end.
    """

    def __init__(
        self,
        handoff: HandoffClient,
        store: Store,
        count: int,
        *,
        concurrency: int = 20,
        script: list[tuple[str, Step]] = SHORT,
    ) -> None:
        self.handoff = handoff
        self.store = store
        self.count = count
        self.concurrency = concurrency
        self.script = script
        self.started: list[str] = []
        self.active: set[str] = set()
        self.completed = 0
        self.errors: list[BaseException] = []
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
                try:
                    await Conversation(self.handoff, conversation_id, self.script, watch=self.store).play_rest()
                    self.completed += 1
                finally:
                    self.active.discard(conversation_id)

        results = await asyncio.gather(*(one() for _ in range(self.count)), return_exceptions=True)
        self.errors = [r for r in results if isinstance(r, BaseException)]

    async def wait_completed(self, count: int, timeout: float = 300.0) -> None:
        async def progress() -> int:
            return self.completed

        await wait_until(progress, lambda done: done >= count, f"{count} conversations completed", timeout)
