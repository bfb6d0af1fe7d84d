"""Issue 9: a durable timer fires once, after its worker was SIGKILLed and after the dev server
(on its SQLite file) was killed and restarted, with short durations on the real dev server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType

from handoff.devserver import DevServer
from handoff.models import EntryKind, FactKind, Outcome, Status, TimerSettings
from tests.faults.conftest import LabFactory
from tests.faults.harness import Lab, file_dev_server, restart_server, runs, wait_until
from tests.helpers import new_id

pytestmark = pytest.mark.slow

IDLE = timedelta(seconds=3)


@pytest.fixture(scope="module")
async def timer_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    async with file_dev_server(tmp_path_factory.mktemp("timer-temporal")) as server:
        yield server


async def started_and_answered(lab: Lab) -> str:
    lab.handoff.timers = TimerSettings(bot_idle_close=IDLE)
    conversation_id = new_id()
    await lab.handoff.start_or_message(conversation_id, "customer-1", "hello")
    await wait_until(lambda: lab.handoff.transcript(conversation_id), lambda t: len(t) >= 2, "the bot's answer")
    return conversation_id


async def closed_once_by_the_timer(lab: Lab, conversation_id: str) -> None:
    final = await asyncio.wait_for(lab.handoff.result(conversation_id), 90)
    assert final.status is Status.CLOSED and final.outcome is Outcome.INACTIVE
    fired = [
        e
        for events in await runs(lab.handoff, conversation_id)
        for e in events
        if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
    ]
    assert len(fired) == 1
    await wait_until(
        lambda: asyncio.to_thread(lab.store.count_facts, conversation_id=conversation_id, kind=FactKind.CLOSED.value),
        lambda n: n >= 1,
        "the close recorded",
    )
    assert lab.store.count_facts(conversation_id=conversation_id, kind=FactKind.CLOSED.value) == 1
    notes = [e.text for e in lab.store.transcript(conversation_id) if e.kind is EntryKind.SYSTEM]
    assert notes == ["Closed after 3s without a message"]


async def test_the_idle_timer_fires_once_after_its_worker_was_killed(labs: LabFactory) -> None:
    lab = await labs("timer-kill")
    worker = await lab.workers.start()
    conversation_id = await started_and_answered(lab)
    worker.kill()
    await asyncio.sleep(IDLE.total_seconds() + 1)  # the deadline passes with no worker at all
    await lab.workers.start()
    await closed_once_by_the_timer(lab, conversation_id)


async def test_the_idle_timer_fires_once_after_the_server_was_killed_and_restarted(
    labs: LabFactory, timer_server: DevServer
) -> None:
    lab = await labs("timer-restart", server=timer_server)
    await lab.workers.start()
    conversation_id = await started_and_answered(lab)
    await restart_server(timer_server, kill=True)
    await closed_once_by_the_timer(lab, conversation_id)
