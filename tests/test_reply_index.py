"""The index of past replies (issue 14, item 5) on SQLite (FTS5, bm25) and PostgreSQL (tsvector,
GIN, ts_rank): it grows in the transaction that records a close as resolved, once per reply
however often the close is recorded; nothing else enters it; a team can keep a conversation out,
before or after its close; and suggestions come from it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from handoff import reply_index
from handoff.assist import Assistant
from handoff.bot import KnowledgeBaseBot
from handoff.cli import app
from handoff.models import (
    AgentReply,
    Close,
    Command,
    CustomerMessage,
    Outcome,
    RecordBatch,
    RequestHuman,
    TakeOver,
)
from handoff.store import Store, past_replies
from tests.helpers import ALICE, new_id
from tests.helpers import play as play_from

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARCEL_REPLY = "Your parcel left our warehouse yesterday; the courier delivers it within two working days."
PERSONAL_REPLY = "I changed the delivery address to 12 Rose Street, call me on 0612345678 if needed."


def conversation(question: str, replies: list[str], outcome: Outcome) -> tuple[str, list[RecordBatch]]:
    cid = new_id()
    commands: list[Command] = [CustomerMessage(text=question), RequestHuman(), TakeOver(agent=ALICE)]
    commands += [AgentReply(agent=ALICE, text=reply) for reply in replies]
    commands.append(Close(agent=ALICE, outcome=outcome))
    _, batches = play_from(cid, T0, commands)
    return cid, batches


def found(store: Store, question: str) -> list[str]:
    with store.engine.connect() as conn:
        return [f.text for f in reply_index.search(conn, question, 5)]


def indexed_rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(past_replies)).scalar_one())


def test_a_close_as_resolved_indexes_its_replies_once_and_nothing_else_enters(empty_store: Store) -> None:
    store = empty_store
    solved, batches = conversation(
        "Where is my parcel? It has not arrived", [PARCEL_REPLY, PERSONAL_REPLY], Outcome.RESOLVED
    )
    for batch in batches[:-1]:
        store.record(batch)
    assert found(store, "where is my parcel") == []  # not closed yet: not in the index
    store.record(batches[-1])
    store.record(batches[-1])  # a retried close
    for batch in batches:  # the whole conversation recorded again (the other writer's copy)
        store.record(batch)
    assert found(store, "my parcels have not arrived yet") == [PARCEL_REPLY]  # stemmed: parcels, arrived
    assert indexed_rows(store) == 1  # the reply with an address and a phone number was left out

    _, unresolved = conversation(
        "Where is my parcel? still nothing", ["The courier is on strike, sorry."], Outcome.NOT_RESOLVED
    )
    for batch in unresolved:
        store.record(batch)
    assert found(store, "where is my parcel") == [PARCEL_REPLY]

    with store.engine.connect() as conn:
        hits = reply_index.search(conn, "parcel", 5, exclude_conversation=solved)
    assert hits == []


def test_a_team_keeps_a_conversation_out_before_or_after_its_close(empty_store: Store) -> None:
    store = empty_store
    assistant = Assistant(KnowledgeBaseBot.from_file(), embeddings=False)
    before, batches = conversation(
        "Can I pay for my parcel on delivery?", ["Yes, cash on delivery costs 2 EUR more."], Outcome.RESOLVED
    )
    for batch in batches[:-1]:
        store.record(batch)
    with store.engine.begin() as conn:
        assert reply_index.exclude(conn, before, "agent-alice", T0) == 0
    store.record(batches[-1])
    assert found(store, "pay for the parcel on delivery") == []

    after, batches = conversation("Where is my parcel? It has not arrived", [PARCEL_REPLY], Outcome.RESOLVED)
    for batch in batches:
        store.record(batch)
    suggested = assistant.suggest(store, ["my parcel has not arrived, where is it?"])
    assert suggested[0].text == PARCEL_REPLY and suggested[0].source.conversation_id == after
    with store.engine.begin() as conn:
        assert reply_index.exclude(conn, after, "agent-alice", T0) == 1
        assert reply_index.exclude(conn, after, "agent-alice", T0) == 0  # idempotent
    assert PARCEL_REPLY not in [s.text for s in assistant.suggest(store, ["my parcel has not arrived, where is it?"])]
    assert indexed_rows(store) == 0


def test_the_cli_suggests_from_the_index_and_keeps_a_conversation_out(
    empty_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = empty_store
    solved, batches = conversation("Where is my parcel? It has not arrived", [PARCEL_REPLY], Outcome.RESOLVED)
    for batch in batches:
        store.record(batch)
    current, batches = conversation("my parcel has not arrived, where is it?", [], Outcome.RESOLVED)
    for batch in batches[:-1]:
        store.record(batch)
    monkeypatch.setenv("HANDOFF_DATABASE_URL", store.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("HANDOFF_ASSIST_EMBEDDINGS", "false")

    shown = CliRunner().invoke(app, ["conversations", "suggestions", current], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert PARCEL_REPLY in shown.output and solved in shown.output

    excluded = CliRunner().invoke(app, ["conversations", "exclude-from-suggestions", solved])
    assert excluded.exit_code == 0 and "1 indexed reply taken out" in excluded.output, excluded.output
    again = CliRunner().invoke(app, ["conversations", "suggestions", current], env={"COLUMNS": "300"})
    assert again.exit_code == 0 and PARCEL_REPLY not in again.output
    missing = CliRunner().invoke(app, ["conversations", "exclude-from-suggestions", "no-such-one"])
    assert missing.exit_code != 0 and "no conversation" in missing.output


def test_when_every_word_is_common_the_most_recent_matches_are_ranked(
    empty_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound that keeps a search cheap on a large index: here made small enough to see."""
    store = empty_store
    replies = [f"Answer number {n} about late parcels." for n in range(3)]
    for reply in replies:
        for batch in conversation("my parcel has not arrived", [reply], Outcome.RESOLVED)[1]:
            store.record(batch)
    assert sorted(found(store, "parcel not arrived")) == sorted(replies)
    monkeypatch.setattr(reply_index, "COMMON_MATCHES", 1)  # every word is common
    monkeypatch.setattr(reply_index, "MAX_RANKED", 1)
    assert found(store, "parcel not arrived") == [replies[-1]]  # the most recent only


def test_any_question_is_searched_never_an_error(empty_store: Store) -> None:
    """The question reaches the full-text query language of each database: its syntax never leaks."""
    for batch in conversation("Where is my parcel? It has not arrived", [PARCEL_REPLY], Outcome.RESOLVED)[1]:
        empty_store.record(batch)
    for question in [
        'parcel" OR NEAR(x) col:on * ^',
        "parcel & !arrived | (x) <-> y:*",
        "½ ß ÿ 123456 ...",
        "the and or not",
    ]:
        texts = found(empty_store, question)
        assert texts in ([], [PARCEL_REPLY]), question
    assert found(empty_store, 'parcel" OR NEAR(x) col:on * ^') == [PARCEL_REPLY]
