"""Several workers on one task queue, one killed (SIGKILL) mid-load; the others carry on.

One load of short full-lifecycle conversations (bot answer, hand-off, take-over, reply,
close) runs on three workers; a quarter of the way in one is killed (three workers become
two), half way another (two become one; the conversations the kills left waiting for Temporal's
activity timeouts recover while the rest of the load runs). Each kill is aimed: the test holds the
SQLite write lock until the server shows a RecordFacts in flight on the victim, kills it, then
releases the lock, so both kills catch work in flight. Every conversation must complete, with
the same facts as a fault-free one, each exactly once.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.service import RPCError

from tests.faults.conftest import LabFactory
from tests.faults.conversations import SHORT, Conversation, Load
from tests.faults.harness import (
    Lab,
    Pending,
    WorkerProcess,
    assert_recorded_as,
    completion,
    pending_activities,
    played,
    sqlite_write_lock,
    wait_until,
)
from tests.helpers import new_id

pytestmark = pytest.mark.slow

CONVERSATIONS = 200


async def kill_holding_a_write(lab: Lab, load: Load, victim: WorkerProcess) -> tuple[str, Pending]:
    """SIGKILL `victim` while the server shows it running a RecordFacts of the load."""

    async def victims_write() -> tuple[str, Pending] | None:
        for conversation_id in list(load.active):
            try:
                pending = await pending_activities(lab.handoff, conversation_id)
            except RPCError:
                continue  # not started yet
            for p in pending:
                if p.activity_type == "RecordFacts" and p.started and p.worker == victim.identity:
                    return conversation_id, p
        return None

    assert lab.db_file is not None
    with sqlite_write_lock(lab.db_file):
        found = await wait_until(
            victims_write, lambda f: f is not None, f"a write in flight on {victim.identity}", timeout=120
        )
        victim.kill()
    assert found is not None
    return found


async def test_workers_killed_mid_load_all_conversations_complete(labs: LabFactory) -> None:
    lab = await labs("pool")
    workers = [await lab.workers.start() for _ in range(3)]
    short = Conversation(lab.handoff, new_id(), SHORT)
    reference = await played(lab, short.id, await short.play_rest())

    load = Load(lab.handoff, CONVERSATIONS)
    running = asyncio.create_task(load.run())
    kills: list[tuple[WorkerProcess, str, Pending]] = []
    for victim, after in ((workers[0], CONVERSATIONS // 4), (workers[1], CONVERSATIONS // 2)):
        await load.wait_completed(after)
        kills.append((victim, *await kill_holding_a_write(lab, load, victim)))
    await running

    assert load.errors == []
    assert load.completed == CONVERSATIONS
    assert len(load.started) == CONVERSATIONS
    assert_recorded_as(lab.store, load.started, reference)
    assert lab.store.count_facts() == (CONVERSATIONS + 1) * len(reference.facts)
    for victim, conversation_id, pending in kills:
        done = await completion(lab.handoff, conversation_id, pending)
        assert done is not None and done.attempt >= 2 and done.identity != victim.identity
    assert workers[2].alive
