"""Issue 8, item 3: a fact's number (its key `{conversation}:{number}`) and an entry's seq are
never reassigned, so the database and the workflow hold the same transcript in the same order.

Why a number cannot be reassigned: the rules layer assigns every number and seq inside a
workflow task, from the state the history rebuilds (`Conversation._fact`, `_next_seq`,
`reserve_bot_answer`), and nothing outside the workflow sees a number before the task that
assigned it is durable: a `RecordFacts` or `BotAnswer` input (with the bot answer's reserved
number) exists only once the task that scheduled it completed, and an update's `CommandResult`
reaches its caller only after the task that applied it completed. A replay of that history
assigns the same numbers (determinism, which `tests/test_replay.py` guards), so every later
task continues from the same counter. A regression (a number taken outside a task, or from
state a replay does not rebuild) shows up as one number naming two different facts in one
history, which the checks below catch: on every saved history, and on a live conversation run
by a worker that caches nothing, so that every workflow task is a replay.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient, workflow_id
from handoff.config import Settings
from handoff.converter import data_converter
from handoff.models import BotQuestion, CommandResult, Fact, Outcome, RecordBatch, Status
from handoff.store import Store
from handoff.store import facts as fact_rows
from tests.encryption_keys import TEST_KEYS
from tests.helpers import ALICE, eventually, new_id
from worker import build_worker

HISTORIES = sorted((Path(__file__).parent / "fixtures" / "histories").glob("*.json"))
E = EventType


async def facts_handed_out(history: WorkflowHistory, converter: DataConverter) -> list[Fact]:
    """Every fact the workflow let out of itself in this history: activity inputs (a recorder
    batch, the facts a bot answer carries and its reserved answer) and update answers."""
    found: list[Fact] = []
    for event in history.events:
        if event.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            match attrs.activity_type.name:
                case "RecordFacts":
                    [batch] = await converter.decode(attrs.input.payloads, [RecordBatch])
                    found += batch.facts
                case "BotAnswer":
                    [question] = await converter.decode(attrs.input.payloads, [BotQuestion])
                    found += question.record.facts if question.record else []
                    found += [question.answer] if question.answer else []
        elif event.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            outcome = event.workflow_execution_update_completed_event_attributes.outcome
            if outcome.HasField("success"):
                [result] = await converter.decode(outcome.success.payloads, [CommandResult])
                found += result.facts
    return found


def one_fact_per_key_and_seq(facts: list[Fact]) -> None:
    """A key names one fact (the same kind and entry wherever it appears; a reserved bot answer
    has its text only once answered), and an entry's seq belongs to one key."""
    identity: dict[str, tuple[object, ...]] = {}
    texts: dict[str, str] = {}
    keys_by_seq: dict[int, str] = {}
    for fact in facts:
        entry = fact.entry
        same = (fact.kind, entry.seq if entry else None, entry.kind if entry else None)
        assert identity.setdefault(fact.key, same) == same, f"{fact.key} names two facts"
        if entry is not None:
            assert keys_by_seq.setdefault(entry.seq, fact.key) == fact.key, f"seq {entry.seq} given twice"
            if entry.text:
                assert texts.setdefault(fact.key, entry.text) == entry.text, f"{fact.key} holds two texts"


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_no_saved_history_gives_one_number_to_two_facts(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    converter = data_converter(Settings(encryption_keys=SecretStr(TEST_KEYS)))
    facts = await facts_handed_out(history, converter)
    assert facts
    one_fact_per_key_and_seq(facts)


async def test_a_worker_that_replays_every_task_assigns_the_numbers_the_database_holds(
    temporal_env: WorkflowEnvironment, store: Store, bot: KnowledgeBaseBot
) -> None:
    """Messages that arrive while the bot answers, as updates and as signals, a request for a
    person in the middle of an answer, an agent: with no workflow cached, every task replays the
    history first, so a number a replay would assign differently would be handed out twice."""
    task_queue = f"replay-every-task-{uuid.uuid4().hex[:8]}"
    async with build_worker(temporal_env.client, task_queue, store, bot, max_cached_workflows=0):
        handoff = HandoffClient(temporal_env.client, task_queue, store)
        cid = new_id()
        await handoff.start_or_message(cid, "customer-numbers", "hello", message_id="m0")

        async def write(result: CommandResult) -> None:
            await asyncio.to_thread(store.record, RecordBatch(summary=result.summary(), facts=result.facts))

        # Back to back, without waiting for the bot: each lands while an answer is in flight.
        await write(await handoff.send_message_result(cid, "where is my order?", message_id="m1", caller_records=True))
        await handoff.send_message(cid, "how do I get a refund?", message_id="m2")
        await write(await handoff.send_message_result(cid, "and an invoice?", message_id="m3", caller_records=True))
        await write(await handoff.request_human_result(cid, request_id="r1", caller_records=True))
        await handoff.send_message(cid, "hello?", message_id="m4")
        await write(await handoff.take_over_result(cid, ALICE, caller_records=True))
        await write(await handoff.reply_result(cid, ALICE, "Hi, looking now.", caller_records=True))
        await write(await handoff.send_message_result(cid, "thanks", message_id="m5", caller_records=True))
        shown = await handoff.transcript(cid)

        def same_as_shown(recorded: list[tuple[int, str, str]]) -> bool:
            return recorded[: len(shown)] == [(e.seq, e.kind.value, e.text) for e in shown]

        # The database holds the entries the workflow shows, under the same seqs, in the same order.
        await eventually(
            lambda: asyncio.to_thread(lambda: [(e.seq, e.kind.value, e.text) for e in store.transcript(cid)]),
            same_as_shown,
            what="the database holding the transcript the workflow shows",
        )
        await write(await handoff.close_result(cid, ALICE, Outcome.RESOLVED, caller_records=True))
        assert (await handoff.result(cid)).status is Status.CLOSED

        history = await temporal_env.client.get_workflow_handle(workflow_id(cid)).fetch_history()
        one_fact_per_key_and_seq(await facts_handed_out(history, temporal_env.client.data_converter))
        recorded = store.facts(cid)
        seqs = [f.entry.seq for f in recorded if f.entry is not None]
        assert sorted(seqs) == list(range(1, len(seqs) + 1))  # no gap, no seq twice
        assert [f.number for f in recorded] == list(range(1, len(recorded) + 1))
        customer = [f.entry.text for f in recorded if f.entry is not None and f.entry.kind.value == "customer"]
        assert len(customer) == len(set(customer)) == 6  # every message once
        # Every input carried an id, so every fact is keyed by its cause, never by its number.
        with store.engine.connect() as conn:
            keys = conn.execute(sa.select(fact_rows.c.key).where(fact_rows.c.conversation_id == cid)).scalars().all()
        assert len(keys) == len(recorded) and all(key.startswith(f"{cid}:~") for key in keys)
