"""Cost: history events and Temporal Cloud billable actions per reference conversation.

Counted from the real histories (every run, following continue-as-new) after the conversation
completed. The counting rule follows Temporal Cloud's published list of actions
(docs.temporal.io/cloud/actions), event by event:

- WorkflowExecutionStarted: 1 (a client start, or each continue-as-new run). A start by
  signal-with-start is ONE action in total with its signal, so the signal recorded with the
  start (before the first workflow task) is not counted again.
- WorkflowExecutionSignaled: 1 per signal.
- WorkflowExecutionUpdateAccepted: 1 per update (rejected updates leave no event; the reference
  conversation sends none).
- Activities: 1 per attempt (ActivityTaskScheduled is the first attempt; each retry, seen as the
  `attempt` of ActivityTaskStarted, is one more).
- TimerStarted: 1. UpsertWorkflowSearchAttributes: 1 (search attributes given at start are free).
- MarkerRecorded (local activities, side effects): 1 per workflow task that records any.
- StartChildWorkflowExecutionInitiated: 2. SignalExternalWorkflowExecutionInitiated: 1.
  WorkflowExecutionOptionsUpdated: 1. NexusOperationScheduled / CancelRequested: 1.
- Everything else (workflow tasks, activity completions, update completions, the workflow's
  completion) is free. Queries are billed but leave no history; the reference conversation
  sends none (the driver follows the history instead), so they are 0 here.

The least any design could need for the reference conversation: 1 for the signal-with-start that
opens it with the first message, 1 for each of the other 18 inputs (a signal or an update), and
1 activity for each of the 6 bot answers (the workflow itself can do no I/O, and each answer is
due in a different workflow task, so even local activities would cost one each): 25.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import reference
from bench.driver import BaselineTarget, HandoffTarget, Target, run_reference
from handoff.config import Settings
from handoff.models import EntryKind

E = EventType


def minimum_actions(inputs: int = reference.INPUTS, answers: int = reference.BOT_ANSWERS) -> int:
    """One action per input (the opening signal-with-start included) plus one per bot answer."""
    return inputs + answers


async def run_histories(client: Client, workflow_id: str) -> list[list[Any]]:
    """The events of every run of a workflow, first run first."""
    runs: list[list[Any]] = []
    run_id: str | None = None
    first = client.get_workflow_handle(workflow_id)
    # Walk back from the latest run to the first through `continued_execution_run_id`.
    history = await first.fetch_history()
    runs.append(list(history.events))
    while True:
        started = runs[0][0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id
        if not run_id:
            break
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.insert(0, list(history.events))
    return runs


def billable_actions(runs: list[list[Any]]) -> Counter[str]:
    """Billable actions by kind, by the rule in this module's docstring."""
    actions: Counter[str] = Counter()
    for events in runs:
        attempts: dict[int, int] = {}
        marker_tasks: set[int] = set()
        before_first_task = True
        for event in events:
            match event.event_type:
                case E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                    actions["workflow started"] += 1
                case E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                    if before_first_task and len(runs[0]) > 1 and events is runs[0]:
                        actions["signal-with-start (counted with the start)"] += 0
                    else:
                        actions["signal"] += 1
                case E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                    before_first_task = False
                case E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                    actions["update"] += 1
                case E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    attempts[event.event_id] = 1
                case E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                    attrs = event.activity_task_started_event_attributes
                    attempts[attrs.scheduled_event_id] = max(1, attrs.attempt)
                case E.EVENT_TYPE_TIMER_STARTED:
                    actions["timer"] += 1
                case E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
                    actions["search attribute upsert"] += 1
                case E.EVENT_TYPE_MARKER_RECORDED:
                    marker_tasks.add(event.marker_recorded_event_attributes.workflow_task_completed_event_id)
                case E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                    actions["child workflow"] += 2
                case E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
                    actions["signal"] += 1
                case E.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED:
                    actions["options updated"] += 1
                case E.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED | E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED:
                    actions["nexus"] += 1
        types = _activity_types(events)
        for scheduled_id, count in attempts.items():
            actions[f"activity {types[scheduled_id]}"] += count
        actions["local activities (per task)"] += len(marker_tasks)
    return +actions  # drop zero counts


def _activity_types(events: list[Any]) -> dict[int, str]:
    return {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }


def event_counts(runs: list[list[Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for events in runs:
        for event in events:
            counts[E.Name(event.event_type).removeprefix("EVENT_TYPE_")] += 1
    return counts


@dataclass
class Cost:
    events: int
    history_bytes: int
    runs: int
    actions: Counter[str]
    event_types: Counter[str]

    @property
    def total_actions(self) -> int:
        return sum(self.actions.values())


async def measure(target: Target, conversation_id: str) -> Cost:
    await run_reference(target, conversation_id)
    runs = await run_histories(target.client, target.workflow_id(conversation_id))
    return Cost(
        events=sum(len(events) for events in runs),
        history_bytes=sum(e.ByteSize() for events in runs for e in events),
        runs=len(runs),
        actions=billable_actions(runs),
        event_types=event_counts(runs),
    )


async def check_transcript(target: HandoffTarget, conversation_id: str) -> None:
    """The benchmark drove what it claims: the finished transcript has the reference's shape."""
    transcript = await target.handoff.transcript(conversation_id)
    kinds = [entry.kind for entry in transcript]
    expected = reference.expected_transcript_kinds()
    if kinds != expected:
        raise RuntimeError(f"reference transcript differs: {[k.value for k in kinds]} != {[k.value for k in expected]}")
    if sum(k is EntryKind.BOT for k in kinds) != reference.BOT_ANSWERS:
        raise RuntimeError("not every bot answer reached the transcript")


DEFAULT_TIMERS = "handoff_default_timers"
"""The key of Handoff's cost with the timers `handoff up` starts conversations with."""


async def compare(handoff: HandoffTarget, baseline: BaselineTarget, conversation_id: str) -> dict[str, Cost]:
    """One reference conversation on each, alone, and their costs; and Handoff's once more
    with the release's default timers (24 h idle close, 2 min waiting SLA, 5 min first-reply
    SLA), which start, and cancel, Temporal timers even when none fires."""
    costs = {"handoff": await measure(handoff, conversation_id), "baseline": await measure(baseline, conversation_id)}
    await check_transcript(handoff, conversation_id)
    with_timers = HandoffTarget(
        handoff.client, handoff.handoff.task_queue, store=handoff.store, timers=Settings.model_construct().timers()
    )
    costs[DEFAULT_TIMERS] = await measure(with_timers, f"{conversation_id}-timers")
    return costs
