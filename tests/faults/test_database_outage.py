"""The database unavailable for a while, mid-conversation.

The workflow records facts from a loop of its own, apart from the bot loop, so an outage must
delay statistics and notes in the database, never the conversation: the customer still gets
bot answers, asks for a person, an agent still takes over and replies. Once the database is
back, every note and statistic is there exactly once (the fault-free reference decides).

Two outages: a private PostgreSQL cluster started by the test from the installed binaries on
its own port and stopped (the machine's shared PostgreSQL is never touched), and the default
SQLite file with its write lock held by another connection.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import LabFactory
from tests.faults.conversations import Conversation
from tests.faults.harness import (
    Played,
    PrivatePostgres,
    assert_same_conversation,
    pending_activities,
    played,
    postgres_bin_dir,
    sqlite_write_lock,
    wait_until,
)
from tests.helpers import new_id

pytestmark = pytest.mark.slow

# Played while the database is down: a bot answer that hands off, a message while waiting,
# a take-over and an agent's reply.
DURING_OUTAGE = "agent_reply"
OUTAGE_FROM = "ask_human"


async def test_postgresql_down_then_back(labs: LabFactory, reference: Played) -> None:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
    postgres = PrivatePostgres(bin_dir)
    try:
        await asyncio.to_thread(postgres.init)
        await postgres.start()
        lab = await labs("pg-outage", database_url=postgres.url)
        await lab.workers.start()
        conversation = Conversation(lab.handoff, new_id())
        await conversation.play_until(OUTAGE_FROM)
        await conversation.wait_idle()

        await asyncio.to_thread(postgres.stop)
        assert not postgres.is_up()
        transcript = await conversation.play_through(DURING_OUTAGE)
        texts = [e.text for e in transcript]
        assert "Sure, I'm connecting you with a member of our team. Someone will be with you shortly." in texts
        assert "Alice Martin joined the conversation" in texts
        # The recorder is retrying with backoff, not giving up.
        await wait_until(
            lambda: pending_activities(lab.handoff, conversation.id),
            lambda pending: any(p.activity_type == "RecordFacts" and p.attempt >= 2 for p in pending),
            "RecordFacts retried",
        )

        await postgres.restart()
        summary = await conversation.play_rest()
        run = await played(lab, conversation.id, summary)
    finally:
        await asyncio.to_thread(postgres.destroy)
    assert_same_conversation(run, reference)


async def test_sqlite_locked_then_released(labs: LabFactory, reference: Played) -> None:
    lab = await labs("sqlite-lock")
    assert lab.db_file is not None
    await lab.workers.start()
    conversation = Conversation(lab.handoff, new_id())
    await conversation.play_until(OUTAGE_FROM)
    await conversation.wait_idle()
    recorded = len(lab.store.facts(conversation.id))

    with sqlite_write_lock(lab.db_file):
        transcript = await conversation.play_through(DURING_OUTAGE)
        assert "Alice Martin joined the conversation" in [e.text for e in transcript]
        # Readers still read: nothing new reached the database while it was locked.
        assert len(lab.store.facts(conversation.id)) == recorded

    summary = await conversation.play_rest()
    assert_same_conversation(await played(lab, conversation.id, summary), reference)
