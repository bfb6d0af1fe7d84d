"""A conversation can run for months: it continues as new, carrying its whole state."""

from __future__ import annotations

import asyncio

from temporalio.testing import WorkflowEnvironment

from handoff.client import HandoffClient, workflow_id
from handoff.models import EntryKind, FactKind, Outcome, Status
from handoff.store import Store
from tests.helpers import ALICE, eventually, new_id

MESSAGES = 2000
CHUNK = 40
AGENT_REPLIES_PER_CHUNK = 4


async def test_a_conversation_of_thousands_of_messages_keeps_its_transcript_and_state(
    handoff: HandoffClient, store: Store, temporal_env: WorkflowEnvironment
) -> None:
    conversation_id = new_id()
    # A low threshold makes it continue as new several times in this test; in production it
    # continues when Temporal suggests it (the same code path).
    await handoff.start_or_message(conversation_id, "customer-1", "hello", continue_as_new_after_events=600)
    await handoff.take_over(conversation_id, ALICE)
    sent = [f"message {i}" for i in range(MESSAGES)]
    for chunk in range(0, MESSAGES, CHUNK):
        customer_texts = sent[chunk : chunk + CHUNK - AGENT_REPLIES_PER_CHUNK]
        agent_texts = sent[chunk + CHUNK - AGENT_REPLIES_PER_CHUNK : chunk + CHUNK]

        # Customer and agent write at the same time, as in a real chat.
        await asyncio.gather(
            *(handoff.send_message(conversation_id, t) for t in customer_texts),
            agent_types(handoff, conversation_id, agent_texts),
        )
    summary = await handoff.close(conversation_id, ALICE, Outcome.RESOLVED)
    assert summary.status is Status.CLOSED
    final = await handoff.result(conversation_id)
    assert final.status is Status.CLOSED and final.agent is None and final.closed_by == ALICE

    transcript = await handoff.transcript(conversation_id)  # recent entries joined to the stored ones
    customer = [e.text for e in transcript if e.kind is EntryKind.CUSTOMER]
    agent = [e.text for e in transcript if e.kind is EntryKind.AGENT]
    assert customer[0] == "hello"
    assert sorted(customer[1:] + agent) == sorted(sent)  # nothing lost, nothing twice
    assert [e.seq for e in transcript] == list(range(1, len(transcript) + 1))
    assert [e.text for e in transcript if e.kind is EntryKind.SYSTEM] == [
        "Alice Martin joined the conversation",
        "Alice Martin closed the conversation as resolved",
    ]

    # It did continue as new, more than once.
    runs = await eventually(
        lambda: _count_runs(temporal_env, workflow_id(conversation_id)), lambda n: n >= 3, timeout=30
    )
    assert runs >= 3

    # What each new run carries stays small: old entries are in the database, not in the input.
    last_run = await temporal_env.client.get_workflow_handle(workflow_id(conversation_id)).fetch_history()
    carried = last_run.events[0].workflow_execution_started_event_attributes.input.ByteSize()
    assert carried < 100_000, carried

    # The database holds every message exactly once.
    facts = store.facts(conversation_id)
    # (The bot's answer to "hello" is among them when it landed, before or after the take-over:
    # a read-side conversation keeps an answer that may have been shown.)
    messages = [e for e in transcript if e.kind in (EntryKind.CUSTOMER, EntryKind.AGENT, EntryKind.BOT)]
    assert len(messages) - sum(1 for e in messages if e.kind is EntryKind.BOT) == MESSAGES + 1
    assert sum(1 for f in facts if f.kind is FactKind.MESSAGE) == len(messages)
    assert len({f.key for f in facts}) == len(facts) == final.last_fact
    assert store.transcript(conversation_id) == transcript


async def agent_types(handoff: HandoffClient, conversation_id: str, texts: list[str]) -> None:
    for text in texts:  # one agent answers one message at a time
        await handoff.reply(conversation_id, ALICE, text)


async def _count_runs(env: WorkflowEnvironment, wid: str) -> int:
    return len([w async for w in env.client.list_workflows(f"WorkflowId = '{wid}'")])
