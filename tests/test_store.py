"""The database on SQLite and on the real local PostgreSQL: idempotent, ordered, lossless."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handoff.lifecycle import Conversation
from handoff.models import (
    BotAnswered,
    Close,
    Command,
    CustomerMessage,
    FactKind,
    Outcome,
    RecordBatch,
    RequestHuman,
    Status,
    TakeOver,
)
from handoff.store import Store
from tests.helpers import ALICE, new_id
from tests.helpers import play as play_from

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def play(conversation_id: str, commands: list[Command]) -> tuple[Conversation, list[RecordBatch]]:
    return play_from(conversation_id, T0, commands)


SCRIPT: list[Command] = [
    CustomerMessage(text="hello"),
    BotAnswered(reply_to=1, text="Hi!"),
    RequestHuman(),
    TakeOver(agent=ALICE),
    Close(agent=ALICE, outcome=Outcome.RESOLVED),
]


def test_every_fact_and_the_transcript_round_trip(empty_store: Store) -> None:
    cid = new_id()
    conv, batches = play(cid, SCRIPT)
    for batch in batches:
        empty_store.record(batch)
    assert empty_store.transcript(cid) == conv.state.transcript
    assert [f.kind for f in empty_store.facts(cid)] == [f.kind for b in batches for f in b.facts]
    row = empty_store.summary(cid)
    assert row is not None
    assert (row.status, row.outcome, row.closed_by, row.closed_at) == (
        Status.CLOSED,
        Outcome.RESOLVED,
        ALICE,
        T0 + timedelta(seconds=4),
    )
    assert row.started_at.tzinfo is not None and row.started_at == T0


def test_a_retried_batch_writes_nothing_twice(empty_store: Store) -> None:
    cid = new_id()
    _, batches = play(cid, SCRIPT)
    written = [empty_store.record(b) for b in batches]
    rewritten = [empty_store.record(b) for b in batches]
    assert written == [len(b.facts) for b in batches]
    assert rewritten == [0] * len(batches)
    assert empty_store.count_facts(conversation_id=cid) == sum(written)
    assert empty_store.count_facts(conversation_id=cid, kind=FactKind.TAKEN_OVER.value) == 1


def test_an_older_summary_never_rewinds_the_conversation_row(empty_store: Store) -> None:
    cid = new_id()
    _, batches = play(cid, SCRIPT)
    empty_store.record(batches[-1])
    empty_store.record(batches[1])  # a late retry of an earlier batch
    row = empty_store.summary(cid)
    assert row is not None and row.status is Status.CLOSED
    assert empty_store.count_facts(conversation_id=cid) == len(batches[-1].facts) + len(batches[1].facts)


def test_conversations_can_be_listed_by_status_and_agent(empty_store: Store) -> None:
    waiting, held = new_id(), new_id()
    for batch in play(waiting, SCRIPT[:3])[1] + play(held, SCRIPT[:4])[1]:
        empty_store.record(batch)
    assert [c.conversation_id for c in empty_store.conversations(status=Status.WAITING)] == [waiting]
    assert [c.conversation_id for c in empty_store.conversations(agent_id=ALICE.id)] == [held]
