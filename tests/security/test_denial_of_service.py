"""No message can hold a conversation or a worker (issue 13, finding 1).

Python's `re` backtracked cubically over "human" + spaces + "x" with one of our own patterns
(13 minutes for a 10,000-character message, holding the GIL, retried without end). Now the
patterns are matched with RE2 in linear time, a knowledge base RE2 cannot compile is refused
at load time, and a bot answer that keeps failing ends with a fixed answer to the customer.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from handoff.bot import KnowledgeBaseBot, KnowledgeBaseError
from handoff.cli.history import local_activity_marker, local_activity_type
from handoff.client import HandoffClient, workflow_id
from handoff.lifecycle import MAX_MESSAGE_CHARS
from handoff.models import BotReply, EntryKind, FactKind, Status
from handoff.store import Store
from tests.faults.harness import ROOT, WorkerProcess
from tests.helpers import ALICE, customer_view, eventually, new_id, wait_for_entries
from worker import build_worker
from workflows.conversation import BOT_ANSWER_ATTEMPTS, LOCAL_BOT_ANSWER_ATTEMPTS

PATHOLOGICAL = "human" + " " * (MAX_MESSAGE_CHARS - 6) + "x"
"""Took Python's `re` about 13 minutes per attempt with the shipped human-request pattern."""

KB_FALLBACK = (
    'Sorry, I don\'t know the answer to that yet. You can rephrase, or say "talk to a human" and a member of our '
    "team will help."
)
BOT_UNAVAILABLE = (
    'Sorry, I can\'t answer that right now. You can rephrase, or say "talk to a human" and a member of our team '
    "will help."
)


@pytest.fixture
async def worker_process(temporal_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    """`python worker.py` on its own task queue: a separate process, so a worker stuck in a regex
    (before the fix) cannot stall this test process and its timeout."""
    process = WorkerProcess(
        temporal_env.client.service_client.config.target_host,
        f"dos-{uuid.uuid4().hex[:8]}",
        f"sqlite:///{tmp_path / 'handoff.db'}",
        tmp_path / "worker.log",
    )
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest.mark.timeout(90)
async def test_the_longest_pathological_message_gets_its_answer_at_once(
    temporal_env: WorkflowEnvironment, worker_process: WorkerProcess
) -> None:
    assert len(PATHOLOGICAL) == MAX_MESSAGE_CHARS
    handoff = HandoffClient(temporal_env.client, worker_process.task_queue)
    conversation_id = new_id()
    await handoff.start_or_message(conversation_id, "customer-dos", PATHOLOGICAL)
    transcript = await eventually(
        lambda: handoff.transcript(conversation_id), lambda t: len(t) >= 2, timeout=60, what="the bot's answer"
    )
    assert customer_view(transcript) == [("customer", PATHOLOGICAL), ("bot", KB_FALLBACK)]
    # The same worker goes on answering.
    await handoff.send_message(conversation_id, "human please")
    await eventually(lambda: handoff.summary(conversation_id), lambda s: s.status is Status.WAITING)


def knowledge_base_with(tmp_path: Path, pattern: str) -> Path:
    path = tmp_path / "team.toml"
    path.write_text(
        f"fallback = 'No idea.'\nhandoff_answer = 'Connecting you.'\nhuman_request_patterns = ['\\bhuman\\b']\n"
        f"[[answers]]\npatterns = ['\\bhello\\b', '{pattern}']\nanswer = 'Hi!'\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(?=.*\bwarranty\b)^(\w+\s?)+$", "invalid perl operator: (?="),  # lookahead
        (r"(\w+) \1", r"invalid escape sequence: \1"),  # backreference
        (r"(a{1000}){1000}", "invalid repetition size"),  # a program beyond the budget
    ],
)
def test_a_knowledge_base_pattern_re2_cannot_compile_is_refused_naming_it(
    tmp_path: Path, pattern: str, reason: str
) -> None:
    path = knowledge_base_with(tmp_path, pattern)
    with pytest.raises(KnowledgeBaseError) as refused:
        KnowledgeBaseBot.from_file(path)
    message = str(refused.value)
    assert str(path) in message
    assert repr(pattern) in message
    assert reason in message
    assert "RE2" in message


def test_the_worker_stops_at_start_on_a_refused_pattern_with_a_one_line_reason(tmp_path: Path) -> None:
    path = knowledge_base_with(tmp_path, r"(\w+) \1")
    done = subprocess.run(
        [sys.executable, "worker.py"],
        cwd=ROOT,
        env={"HANDOFF_KNOWLEDGE_BASE": str(path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"cannot load knowledge base {path}: pattern '(\\\\w+) \\\\1' is refused" in done.stderr


def test_patterns_stay_case_insensitive_and_answer_as_before() -> None:
    bot = KnowledgeBaseBot.from_file()
    assert bot.answer("HUMAN PLEASE!") == BotReply(
        text="Sure, I'm connecting you with a member of our team. Someone will be with you shortly.", wants_human=True
    )
    assert bot.answer("Where is my PARCEL?").text == (
        "You can follow your delivery under Orders → Track. Parcels usually arrive within 2 to 4 business days."
    )
    assert bot.answer("human" + " " * 20 + "x").text == KB_FALLBACK


class BrokenBot(KnowledgeBaseBot):
    """A bot backend that fails every time (a bug, a dead dependency)."""

    def answer(self, message: str) -> BotReply:
        raise RuntimeError("the bot backend is down")


@pytest.fixture
async def broken_bot(temporal_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[tuple[HandoffClient, Store]]:
    """A worker whose bot always fails, on its own task queue and database."""
    store = Store(f"sqlite:///{tmp_path / 'handoff.db'}")
    task_queue = f"broken-bot-{uuid.uuid4().hex[:8]}"
    try:
        async with build_worker(temporal_env.client, task_queue, store, BrokenBot.from_file()):
            yield HandoffClient(temporal_env.client, task_queue, store), store
    finally:
        store.close()


@pytest.mark.timeout(120)
async def test_a_bot_that_keeps_failing_answers_a_message_sent_as_an_update_with_the_fallback(
    temporal_env: WorkflowEnvironment, broken_bot: tuple[HandoffClient, Store]
) -> None:
    """The bot answering inside the workflow task (a local activity, for a `SendMessage` update):
    tried fewer times, then the fallback, which the update's caller gets to write."""
    handoff, _ = broken_bot
    conversation_id = new_id()
    await handoff.start_or_message(conversation_id, "customer-broken", "Hello")
    await wait_for_entries(handoff, conversation_id, 2)
    sent = await handoff.send_message_result(
        conversation_id, "Where is my order?", message_id="m-1", caller_records=True
    )
    assert [(f.kind, f.entry.text if f.entry else None) for f in sent.facts] == [
        (FactKind.MESSAGE, "Where is my order?"),
        (FactKind.MESSAGE, BOT_UNAVAILABLE),
    ]
    history = await temporal_env.client.get_workflow_handle(workflow_id(conversation_id)).fetch_history()
    markers = [e for e in history.events if local_activity_type(e) == "BotAnswer"]
    # Fewer attempts than an activity's: the API waits for this update's answer.
    assert [(local_activity_marker(e) or {}).get("attempt") for e in markers] == [LOCAL_BOT_ANSWER_ATTEMPTS]
    assert markers[0].marker_recorded_event_attributes.HasField("failure")
    # The conversation goes on: the customer asks for a person and gets one.
    await handoff.request_human(conversation_id)
    await eventually(lambda: handoff.summary(conversation_id), lambda s: s.status is Status.WAITING)
    await handoff.take_over(conversation_id, ALICE)


@pytest.mark.timeout(120)
async def test_a_bot_that_keeps_failing_ends_with_the_fallback_and_the_conversation_goes_on(
    temporal_env: WorkflowEnvironment, broken_bot: tuple[HandoffClient, Store]
) -> None:
    handoff, store = broken_bot
    conversation_id = new_id()
    await handoff.start_or_message(conversation_id, "customer-broken", "Where is my order?")
    transcript = await wait_for_entries(handoff, conversation_id, 2)
    assert customer_view(transcript) == [("customer", "Where is my order?"), ("bot", BOT_UNAVAILABLE)]

    # The answer was tried BOT_ANSWER_ATTEMPTS times, then given up.
    history = await temporal_env.client.get_workflow_handle(workflow_id(conversation_id)).fetch_history()
    failed = [e for e in history.events if e.event_type is EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED]
    # (A RecordFacts follows: the fallback answer is written to the database, the read side, at once.)
    answers = {
        e.event_id
        for e in history.events
        if e.event_type is EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "BotAnswer"
    }
    started = [
        e
        for e in history.events
        if e.event_type is EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id in answers
    ]
    assert len(failed) == 1
    assert [e.activity_task_started_event_attributes.attempt for e in started] == [BOT_ANSWER_ATTEMPTS]

    # The conversation is still usable: the customer reaches a person who answers.
    await handoff.request_human(conversation_id)
    await eventually(lambda: handoff.summary(conversation_id), lambda s: s.status is Status.WAITING)
    await handoff.take_over(conversation_id, ALICE)
    await handoff.reply(conversation_id, ALICE, "Hi, I'm Alice. Let me look.")
    assert customer_view(await handoff.transcript(conversation_id))[-1] == (
        "agent",
        "Hi, I'm Alice. Let me look.",
    )

    # Nothing lost: the facts that rode along with the failed answer reached the database.
    async def recorded() -> list[tuple[FactKind, str | None]]:
        return [(f.kind, f.entry.text if f.entry else None) for f in store.facts(conversation_id)]

    facts = await eventually(recorded, lambda fs: (FactKind.TAKEN_OVER, None) in fs)
    assert facts[:3] == [
        (FactKind.STARTED, None),
        (FactKind.MESSAGE, "Where is my order?"),
        (FactKind.MESSAGE, BOT_UNAVAILABLE),
    ]
    assert [e.kind for e in store.transcript(conversation_id)][:2] == [EntryKind.CUSTOMER, EntryKind.BOT]
