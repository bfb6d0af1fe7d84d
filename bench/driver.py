"""Driving a conversation: the same steps against Handoff or the baseline, timed.

A `Target` is how inputs reach one kind of workflow: `HandoffTarget` goes through Handoff's
own `HandoffClient` (what a backend would call), `BaselineTarget` sends the same signals and
updates with the raw Temporal client.

To know when the bot's answer is in the transcript without adding load to the worker (a
polling query would be work the baseline does not do), the driver long-polls the workflow's
history on the server (`wait_new_event`): an answer is in the transcript once the workflow
task that received its activity's result has completed, which is exactly when a transcript
query would first show it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bench import reference
from bench.baseline import ANSWER_ACTIVITY as BASELINE_ANSWER
from bench.baseline import WORKFLOW_NAME as BASELINE_WORKFLOW
from bench.baseline_updates import WORKFLOW_NAME as BASELINE_UPDATES_WORKFLOW
from bench.reference import Kind, Step
from handoff.cli.history import local_activity_type
from handoff.client import HandoffClient, workflow_id
from handoff.models import (
    Agent,
    AgentReply,
    Close,
    CommandResult,
    ConversationSummary,
    CustomerMessage,
    HandBack,
    RecordBatch,
    RequestHuman,
    Status,
    TakeOver,
    TimerSettings,
)
from handoff.store import Store

HANDOFF_ANSWER = "BotAnswer"
MAX_RESTARTS = 50


class Target(Protocol):
    """One kind of conversation workflow and how the outside world talks to it."""

    name: str
    answer_activity: str
    client: Client

    def workflow_id(self, conversation_id: str) -> str: ...
    async def start(self, conversation_id: str, text: str) -> None: ...
    async def message(self, conversation_id: str, text: str) -> None: ...
    async def request_human(self, conversation_id: str) -> None: ...
    async def take_over(self, conversation_id: str, agent: Agent) -> None: ...
    async def reply(self, conversation_id: str, agent: Agent, text: str) -> None: ...
    async def hand_back(self, conversation_id: str, agent: Agent) -> None: ...
    async def close(self, conversation_id: str, agent: Agent) -> None: ...
    async def result(self, conversation_id: str) -> None: ...


class HandoffTarget:
    answer_activity = HANDOFF_ANSWER

    def __init__(
        self,
        client: Client,
        task_queue: str,
        *,
        continue_as_new_after_events: int | None = None,
        store: Store | None = None,
        timers: TimerSettings | None = None,
        local_bot_answers: bool = True,
        name: str = "handoff",
    ) -> None:
        self.name = name
        self.client = client
        # False: conversations answer every message with the `BotAnswer` activity, as those
        # started before stop 21 (`python -m bench cpu --activity-answers` compares the two).
        self.local_bot_answers = local_bot_answers
        # Without `timers` (the throughput, latency and cost figures) conversations start with none;
        # `handoff up` starts them with the settings' defaults (the cost phase measures that too).
        self.handoff = HandoffClient(client, task_queue, timers=timers)
        self.continue_as_new_after_events = continue_as_new_after_events
        # With the project database, agent commands, customer messages and requests for a
        # person go as the API sends them: updates whose facts the API writes itself (the
        # database is the read side), so the workflow need not record them.
        self.store = store

    async def _agent(self, result: Awaitable[CommandResult]) -> None:
        done = await result
        if self.store is not None and done.facts:
            await asyncio.to_thread(self.store.record, RecordBatch(summary=done.summary(), facts=done.facts))

    def workflow_id(self, conversation_id: str) -> str:
        return workflow_id(conversation_id)

    async def start(self, conversation_id: str, text: str) -> None:
        await self.handoff.start_or_message(
            conversation_id,
            reference.CUSTOMER_ID,
            text,
            continue_as_new_after_events=self.continue_as_new_after_events,
            local_bot_answers=self.local_bot_answers,
        )

    async def message(self, conversation_id: str, text: str) -> None:
        if self.writes:  # as the API sends it: an update whose facts the caller writes
            await self._agent(self.handoff.send_message_result(conversation_id, text, caller_records=True))
        else:
            await self.handoff.send_message(conversation_id, text)

    async def request_human(self, conversation_id: str) -> None:
        if self.writes:
            await self._agent(self.handoff.request_human_result(conversation_id, caller_records=True))
        else:
            await self.handoff.request_human(conversation_id)

    async def take_over(self, conversation_id: str, agent: Agent) -> None:
        await self._agent(self.handoff.take_over_result(conversation_id, agent, caller_records=self.writes))

    async def reply(self, conversation_id: str, agent: Agent, text: str) -> None:
        await self._agent(self.handoff.reply_result(conversation_id, agent, text, caller_records=self.writes))

    async def hand_back(self, conversation_id: str, agent: Agent) -> None:
        await self._agent(self.handoff.hand_back_result(conversation_id, agent, caller_records=self.writes))

    async def close(self, conversation_id: str, agent: Agent) -> None:
        outcome = reference.OUTCOME
        await self._agent(self.handoff.close_result(conversation_id, agent, outcome, caller_records=self.writes))

    @property
    def writes(self) -> bool:
        return self.store is not None

    async def result(self, conversation_id: str) -> None:
        summary = await self.handoff.result(conversation_id)
        if summary.status is not Status.CLOSED or summary.outcome is not reference.OUTCOME:
            raise RuntimeError(f"conversation ended as {summary.status}/{summary.outcome}")

    async def summary(self, conversation_id: str) -> ConversationSummary:
        return await self.handoff.summary(conversation_id)


class BaselineTarget:
    name = "baseline"
    answer_activity = BASELINE_ANSWER

    def __init__(self, client: Client, task_queue: str, *, customer_updates: bool = False) -> None:
        self.client = client
        self.task_queue = task_queue
        # Customer messages and requests for a person as updates, the way HandoffTarget sends
        # them when it writes as the API does; signals otherwise (the default).
        self.customer_updates = customer_updates

    def workflow_id(self, conversation_id: str) -> str:
        return f"baseline-{conversation_id}"

    def _handle(self, conversation_id: str) -> Any:
        return self.client.get_workflow_handle(self.workflow_id(conversation_id))

    async def start(self, conversation_id: str, text: str) -> None:
        await self.client.start_workflow(
            BASELINE_UPDATES_WORKFLOW if self.customer_updates else BASELINE_WORKFLOW,
            conversation_id,
            id=self.workflow_id(conversation_id),
            task_queue=self.task_queue,
            start_signal="CustomerMessage",
            start_signal_args=[CustomerMessage(text=text)],
        )

    async def message(self, conversation_id: str, text: str) -> None:
        if self.customer_updates:
            await self._handle(conversation_id).execute_update("SendMessage", CustomerMessage(text=text))
        else:
            await self._handle(conversation_id).signal("CustomerMessage", CustomerMessage(text=text))

    async def request_human(self, conversation_id: str) -> None:
        if self.customer_updates:
            await self._handle(conversation_id).execute_update("AskForHuman", RequestHuman())
        else:
            await self._handle(conversation_id).signal("RequestHuman", RequestHuman())

    async def take_over(self, conversation_id: str, agent: Agent) -> None:
        await self._handle(conversation_id).execute_update("TakeOver", TakeOver(agent=agent))

    async def reply(self, conversation_id: str, agent: Agent, text: str) -> None:
        await self._handle(conversation_id).execute_update("Reply", AgentReply(agent=agent, text=text))

    async def hand_back(self, conversation_id: str, agent: Agent) -> None:
        await self._handle(conversation_id).execute_update("HandBack", HandBack(agent=agent))

    async def close(self, conversation_id: str, agent: Agent) -> None:
        await self._handle(conversation_id).execute_update("Close", Close(agent=agent, outcome=reference.OUTCOME))

    async def result(self, conversation_id: str) -> None:
        status = await self._handle(conversation_id).result()
        if status != "closed":
            raise RuntimeError(f"baseline conversation ended as {status}")


@dataclass
class HistoryWatcher:
    """Follows a workflow's history as the server appends it (every run, across continue-as-new)."""

    client: Client
    workflow_id: str
    answer_activity: str
    answers: int = 0  # bot answers whose workflow task has completed: in the transcript
    events: int = 0
    history_bytes: int = 0
    runs: int = 0
    restarts: int = 0  # long polls begun again after the server refused a page token
    _pending: int = 0
    _activity_types: dict[int, str] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _task: asyncio.Task[None] | None = None
    _error: BaseException | None = None

    def start(self) -> HistoryWatcher:
        self._task = asyncio.create_task(self._follow())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def wait(self, until: Callable[[HistoryWatcher], bool]) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._error is not None or until(self))
        if self._error is not None:
            raise self._error

    async def wait_answers(self, count: int) -> None:
        await self.wait(lambda w: w.answers >= count)

    async def _follow(self) -> None:
        try:
            # Each run by its id: a page token of one run is refused once another run is current.
            run_id: str | None = (await self.client.get_workflow_handle(self.workflow_id).describe()).run_id
            while run_id is not None:
                self.runs += 1
                self._activity_types.clear()
                run_id = await self._follow_run(run_id)
        except BaseException as error:
            self._error = error
            async with self._changed:
                self._changed.notify_all()
            raise

    async def _follow_run(self, run_id: str) -> str | None:
        """Follow one run to its end; the next run's id if it continued as new."""
        handle = self.client.get_workflow_handle(self.workflow_id, run_id=run_id)
        last_seen = 0
        next_run: str | None = None
        while True:
            try:
                async for event in handle.fetch_history_events(wait_new_event=True):
                    if event.event_id <= last_seen:
                        continue  # already seen before a restart of the long poll
                    last_seen = event.event_id
                    self._see(event)
                    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                        next_run = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                    if event.event_type in (
                        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                        EventType.EVENT_TYPE_MARKER_RECORDED,
                        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
                    ):
                        async with self._changed:
                            self._changed.notify_all()
                return next_run
            except RPCError as error:
                # Under load the dev server sometimes refuses a long poll's page token ("branch
                # tokens ... don't match"); read the run again from its start and skip what was seen.
                if error.status is RPCStatusCode.NOT_FOUND or self.restarts >= MAX_RESTARTS:
                    raise
                self.restarts += 1

    def _see(self, event: Any) -> None:
        self.events += 1
        self.history_bytes += event.ByteSize()
        match event.event_type:
            case EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                self._activity_types[event.event_id] = name
            case EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
                if self._activity_types.get(scheduled) == self.answer_activity:
                    self._pending += 1
            case EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                self.answers += self._pending
                self._pending = 0
            case EventType.EVENT_TYPE_MARKER_RECORDED:
                # A bot answer inside the workflow task (a local activity): its marker comes after
                # that task's completion, so the answer is in the transcript already.
                if local_activity_type(event) == self.answer_activity:
                    self.answers += 1


@dataclass
class Timings:
    """Latencies seen from outside, in milliseconds."""

    takeover_ms: list[float] = field(default_factory=list)
    bot_answer_ms: list[float] = field(default_factory=list)

    def extend(self, other: Timings) -> None:
        self.takeover_ms += other.takeover_ms
        self.bot_answer_ms += other.bot_answer_ms


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


async def run_reference(target: Target, conversation_id: str, steps: tuple[Step, ...] = reference.STEPS) -> Timings:
    """Drive one reference conversation to its end (the workflow completed) and time it."""
    timings = Timings()
    watcher: HistoryWatcher | None = None
    answers = 0
    try:
        for step in steps:
            started = time.perf_counter()
            match step.kind:
                case Kind.START:
                    await target.start(conversation_id, step.text)
                    watcher = HistoryWatcher(
                        target.client, target.workflow_id(conversation_id), target.answer_activity
                    ).start()
                case Kind.MESSAGE:
                    await target.message(conversation_id, step.text)
                case Kind.REQUEST_HUMAN:
                    await target.request_human(conversation_id)
                case Kind.TAKE_OVER:
                    assert step.agent is not None
                    await target.take_over(conversation_id, step.agent)
                    timings.takeover_ms.append(_ms_since(started))
                case Kind.REPLY:
                    assert step.agent is not None
                    await target.reply(conversation_id, step.agent, step.text)
                case Kind.HAND_BACK:
                    assert step.agent is not None
                    await target.hand_back(conversation_id, step.agent)
                case Kind.CLOSE:
                    assert step.agent is not None
                    await target.close(conversation_id, step.agent)
            if step.bot_answers:
                assert watcher is not None
                answers += 1
                await watcher.wait_answers(answers)
                timings.bot_answer_ms.append(_ms_since(started))
        await target.result(conversation_id)
    finally:
        if watcher is not None:
            await watcher.stop()
    return timings
