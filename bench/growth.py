"""Growth: does a message cost the same in a conversation's 10th message and its 5,000th?

One conversation per length: the customer writes N messages, each answered by the bot, keeping
at most `window` messages unanswered (1 = a customer who waits for every answer). The
workflow continues as new whenever Temporal suggests it (or, in the quick run, after a low
event count, to exercise it in little time), carrying its whole state. Measured per message:
wall time, the worker's CPU time, history events and history bytes (every run counted).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from bench.cluster import Cluster, WorkerProcess
from bench.driver import HandoffTarget, HistoryWatcher

TEXTS = ("Where is my order?", "How do I get a refund?", "Can I download an invoice?", "What are your opening hours?")


@dataclass
class Length:
    messages: int
    seconds: float
    worker_cpu_seconds: float
    events: int
    history_bytes: int
    runs: int

    @property
    def ms_per_message(self) -> float:
        return self.seconds * 1000 / self.messages

    @property
    def cpu_ms_per_message(self) -> float:
        return self.worker_cpu_seconds * 1000 / self.messages

    @property
    def events_per_message(self) -> float:
        return self.events / self.messages

    @property
    def bytes_per_message(self) -> float:
        return self.history_bytes / self.messages


async def measure(
    cluster: Cluster,
    lengths: tuple[int, ...],
    window: int,
    continue_as_new_after_events: int | None,
    progress: Callable[[int], None],
) -> list[Length]:
    """One conversation per length, one after the other, on a worker of their own (so its CPU
    time is theirs alone)."""
    worker = await cluster.start_worker("handoff")
    try:
        target = HandoffTarget(
            cluster.client, worker.task_queue, continue_as_new_after_events=continue_as_new_after_events
        )
        return [await one_length(cluster, worker, target, messages, window, progress) for messages in lengths]
    finally:
        await cluster.stop_worker(worker)


async def one_length(
    cluster: Cluster,
    worker: WorkerProcess,
    target: HandoffTarget,
    messages: int,
    window: int,
    progress: Callable[[int], None],
) -> Length:
    conversation_id = uuid.uuid4().hex
    cpu_before = worker.cpu_seconds()
    started = time.perf_counter()
    await target.start(conversation_id, TEXTS[0])
    watcher = HistoryWatcher(cluster.client, target.workflow_id(conversation_id), target.answer_activity).start()
    try:
        for sent in range(1, messages):
            await watcher.wait_answers(sent - window + 1)
            await target.message(conversation_id, TEXTS[sent % len(TEXTS)])
            progress(1)
        await watcher.wait_answers(messages)
        progress(1)
        result = Length(
            messages=messages,
            seconds=time.perf_counter() - started,
            worker_cpu_seconds=worker.cpu_seconds() - cpu_before,
            events=watcher.events,
            history_bytes=watcher.history_bytes,
            runs=watcher.runs,
        )
    finally:
        await watcher.stop()
    # Let the last recording land, so the next length's CPU time is its own.
    await worker.settle()
    return result
