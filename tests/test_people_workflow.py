"""Issue 9 hand-offs on the dev server: concurrent transfers resolve to exactly one."""

from __future__ import annotations

import asyncio

from handoff.client import HandoffClient, NotAssignedAgent
from handoff.models import Agent, EntryKind, FactKind, Status
from handoff.store import Store
from tests.helpers import ALICE, BOB, eventually, new_id

CAROL = Agent(id="agent-carol", name="Carol Diaz")


async def test_two_transfers_at_once_one_wins_the_other_is_refused(handoff: HandoffClient, store: Store) -> None:
    cid = new_id()
    await handoff.start_or_message(cid, "customer-1", "hello")
    await handoff.take_over(cid, ALICE)
    results = await asyncio.gather(
        handoff.transfer(cid, ALICE, BOB), handoff.transfer(cid, ALICE, CAROL), return_exceptions=True
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], NotAssignedAgent), results
    holder = won[0].agent
    assert holder in (BOB, CAROL)
    summary = await handoff.summary(cid)
    assert summary.status is Status.HUMAN and summary.agent == holder
    notes = [e.text for e in await handoff.transcript(cid) if e.kind is EntryKind.SYSTEM]
    transferred = f"Alice Martin transferred the conversation to {holder.name}"
    assert notes == ["Alice Martin joined the conversation", transferred]
    await eventually(
        lambda: asyncio.to_thread(store.count_facts, conversation_id=cid, kind=FactKind.TRANSFERRED.value),
        lambda n: n >= 1,
    )
    assert store.count_facts(conversation_id=cid, kind=FactKind.TRANSFERRED.value) == 1
