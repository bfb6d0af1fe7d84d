"""The worker-kill scenarios of test_worker_kill.py: a worker SIGKILLed at each step of the
reference conversation, a new one started, the rest of the script played.

Each scenario holds the step's activity in flight on purpose, checks with the server that it
really is in flight (a pending activity dispatched to the worker), kills the worker, starts a
new one and plays on. How an activity is held in flight, deterministically:
- a bot answer: the first worker runs a test knowledge base (the shipped one plus one pattern
  that backtracks for hours over one customer question), a stand-in for a slow bot backend;
- a database write: the test holds SQLite's write lock, so RecordFacts waits in SQLite's
  busy handler.

They run concurrently, each on its own task queue and database, in the background from the
start of the fault group (see conftest.py): most of their time is Temporal waiting out the
dead worker's activity timeouts (10 s for BotAnswer, 30 s for RecordFacts), not CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from handoff.client import workflow_id
from tests.faults.conversations import Conversation
from tests.faults.harness import (
    Attempt,
    Lab,
    Pending,
    Played,
    TcpProxy,
    WorkerProcess,
    completion,
    draining_for_continue_as_new,
    pending_activities,
    played,
    sqlite_write_lock,
    wait_activity_started,
    wait_until,
)
from tests.helpers import new_id

CAN_AFTER = 20
"""History length at which the continue-as-new scenario's runs continue as new: the reference
conversation then spans several runs."""


@dataclass(frozen=True)
class Killed:
    run: Played
    in_flight: list[Pending]  # what the server had dispatched to the worker when it was killed
    completions: list[Attempt | None]  # how each of those finally completed
    replacement: str  # identity of the worker started after the kill
    continued_as_new_after_kill: bool = False


async def finish(lab: Lab, conversation: Conversation, in_flight: list[Pending], replacement: WorkerProcess) -> Killed:
    await conversation.settle()
    summary = await conversation.play_rest()
    completions = [await completion(lab.handoff, conversation.id, p) for p in in_flight]
    return Killed(await played(lab, conversation.id, summary), in_flight, completions, replacement.identity)


def db_file(lab: Lab) -> Path:
    assert lab.db_file is not None
    return lab.db_file


async def kill_in_bot_answer(lab: Lab) -> Killed:
    first = await lab.workers.start(slow_bot=True)
    conversation = Conversation(lab.handoff, new_id())
    await conversation.play_until("bot_answer")
    await conversation.act()
    in_flight = [await wait_activity_started(lab.handoff, conversation.id, "BotAnswer")]
    first.kill()
    return await finish(lab, conversation, in_flight, await lab.workers.start())


async def kill_with_activities_in_flight(lab: Lab) -> Killed:
    """The crash of issue 2: a database write and a bot answer both in flight at the kill.

    The hand-back's facts are being written (blocked on the lock) when the customer's next
    message comes in; its bot answer is the slow one."""
    first = await lab.workers.start(slow_bot=True)
    conversation = Conversation(lab.handoff, new_id())
    await conversation.play_until("hand_back")
    await conversation.wait_idle()
    with sqlite_write_lock(db_file(lab)):
        await conversation.act()
        in_flight = [await wait_activity_started(lab.handoff, conversation.id, "RecordFacts")]
        await conversation.act()
        in_flight.append(await wait_activity_started(lab.handoff, conversation.id, "BotAnswer"))
        first.kill()
    return await finish(lab, conversation, in_flight, await lab.workers.start())


async def kill_between_step_and_its_facts(lab: Lab, step: str, note: str) -> Killed:
    """The step's command is answered; its facts (e.g. the system note) are on their way."""
    first = await lab.workers.start()
    conversation = Conversation(lab.handoff, new_id())
    await conversation.play_until(step)
    await conversation.wait_idle()
    with sqlite_write_lock(db_file(lab)):
        await conversation.act()
        in_flight = [await wait_activity_started(lab.handoff, conversation.id, "RecordFacts")]
        await conversation.settle()
        assert note in [e.text for e in await lab.handoff.transcript(conversation.id)]
        assert note not in [e.text for e in lab.store.transcript(conversation.id)]
        first.kill()
    return await finish(lab, conversation, in_flight, await lab.workers.start())


async def kill_between_take_over_and_note(lab: Lab) -> Killed:
    return await kill_between_step_and_its_facts(lab, "take_over", "Alice Martin joined the conversation")


async def kill_during_close(lab: Lab) -> Killed:
    return await kill_between_step_and_its_facts(lab, "close", "Bob Stone closed the conversation as resolved")


async def kill_after_write_landed_unreported(lab: Lab) -> Killed:
    """The write commits but Temporal never hears of it: the server stops hearing the worker
    (through a proxy the test controls) before its blocked write goes through, then the worker
    is killed. The new worker runs the same write again; keyed facts make it write nothing twice."""
    proxy = TcpProxy(lab.handoff.temporal.service_client.config.target_host)
    await proxy.start()
    try:
        first = await lab.workers.start(temporal_address=proxy.address)
        conversation = Conversation(lab.handoff, new_id())
        await conversation.play_until("take_over")
        await conversation.wait_idle()
        with sqlite_write_lock(db_file(lab)):
            await conversation.act()
            in_flight = [await wait_activity_started(lab.handoff, conversation.id, "RecordFacts")]
            proxy.deafen_server()
        await wait_until(
            lambda: asyncio.to_thread(lab.store.transcript, conversation.id),
            lambda stored: "Alice Martin joined the conversation" in [e.text for e in stored],
            "the cut-off worker's write landed",
        )
        first.kill()
    finally:
        await proxy.close()
    return await finish(lab, conversation, in_flight, await lab.workers.start())


async def kill_during_continue_as_new(lab: Lab) -> Killed:
    """Killed while a run that has decided to continue as new waits for its in-flight write."""
    first = await lab.workers.start()
    conversation = Conversation(lab.handoff, new_id(), continue_as_new_after_events=CAN_AFTER)
    await conversation.play_until("ask_human")
    await conversation.wait_idle()

    async def draining_record() -> Pending | None:
        if not await draining_for_continue_as_new(lab.handoff, conversation.id, CAN_AFTER):
            return None
        pending = await pending_activities(lab.handoff, conversation.id)
        return next((p for p in pending if p.activity_type == "RecordFacts" and p.started), None)

    async def moment() -> tuple[bool, Pending | None]:
        transcript = await conversation.transcript() or []
        return len(transcript) >= conversation.expected_entries, await draining_record()

    with sqlite_write_lock(db_file(lab)):
        # The blocked write keeps the recorder busy; play on until a run reaches the limit.
        while True:
            assert not conversation.done, "no run reached the continue-as-new point"
            await conversation.act()
            _settled, record = await wait_until(moment, lambda m: m[0] or m[1] is not None, "step or drain")
            if record is not None:
                break
        first.kill()
    killed = await finish(lab, conversation, [record], await lab.workers.start())
    handle = lab.handoff.temporal.get_workflow_handle(workflow_id(conversation.id), run_id=record.run_id)
    last = list((await handle.fetch_history()).events)[-1]
    continued = last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    return Killed(killed.run, killed.in_flight, killed.completions, killed.replacement, continued)


SCENARIOS: dict[str, Callable[[Lab], Awaitable[Killed]]] = {
    "bot_answer": kill_in_bot_answer,
    "activities_in_flight": kill_with_activities_in_flight,
    "take_over_before_note": kill_between_take_over_and_note,
    "write_landed_unreported": kill_after_write_landed_unreported,
    "close": kill_during_close,
    "continue_as_new": kill_during_continue_as_new,
}


Outcomes = dict[str, Killed | BaseException]


async def run_all(labs: dict[str, Lab]) -> Outcomes:
    """Every scenario on its lab, concurrently; a scenario's exception is its outcome."""
    outcomes = await asyncio.gather(*(SCENARIOS[name](lab) for name, lab in labs.items()), return_exceptions=True)
    return dict(zip(labs, outcomes, strict=True))
