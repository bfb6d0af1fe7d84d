"""Issue 10: automatic assignment stays exact when worker processes are SIGKILLed mid-assignment
and when the dev server restarts: every conversation assigned exactly once per wait, no agent
over capacity, every agent's count equal to what they hold (see tests/faults/assignment_desk.py)."""

from __future__ import annotations

import asyncio

import pytest

from handoff.availability import AgentStatus
from tests.faults.assignment_desk import assigned, equip, set_status, settle, team, waiting_conversations
from tests.faults.conftest import LabFactory
from tests.faults.harness import wait_until

pytestmark = pytest.mark.slow


async def test_automatic_assignment_is_exact_through_worker_sigkills(labs: LabFactory) -> None:
    lab = await labs("assign-kill")
    directory = team({"a1": 4, "a2": 6, "a3": 10})
    assigner = equip(lab, directory)
    worker = await lab.workers.start()
    ids = await waiting_conversations(lab, 30)
    assigner.start()
    try:
        for entry in directory.agents:
            await asyncio.to_thread(set_status, lab.store, entry.id, AgentStatus.ONLINE)

        async def count() -> int:
            return await asyncio.to_thread(assigned, lab.store, ids)

        # Kill the worker while the assigner is giving conversations out.
        await wait_until(count, lambda n: n >= 3, "the first assignments")
        worker.kill()
        worker = await lab.workers.start()
        once = await settle(lab, assigner, ids, directory, "assigned after the first kill")
        assert sorted(once.values()).count(1) == 20  # 20 slots, 20 assigned, 10 waiting

        # a1 goes offline: what they hold goes back to the front of the queue (HANDOFF_OFFLINE_RETURNS)
        # and waits, the others being full; the worker is killed again meanwhile.
        await asyncio.to_thread(set_status, lab.store, "a1", AgentStatus.OFFLINE)
        assigner.wake()
        worker.kill()
        worker = await lab.workers.start()
        await settle(lab, assigner, ids, directory, "returned after the second kill")
        # a1 comes back: four of the waiting conversations, oldest first, are theirs.
        await asyncio.to_thread(set_status, lab.store, "a1", AgentStatus.ONLINE)
        assigner.wake()
        takeovers = await settle(lab, assigner, ids, directory, "assigned again")
        assert sum(takeovers.values()) == 24
        assert await count() == 20
    finally:
        await assigner.stop()
