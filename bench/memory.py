"""Memory: the worker's resident memory per open conversation idle in Waiting, and whether
every one of them still answers once the worker's cache no longer holds it.

A fresh Handoff worker process, as shipped (it keeps at most `HANDOFF_MAX_CACHED_CONVERSATIONS`
conversations in memory, 200 by default, and replays the others from history on their next
event), carries conversations that got one customer message and asked for a person. After a
warm-up batch its RSS is the reference; the per-conversation figure is the growth above it
divided by the conversations added.

Then the worker is replaced by one with a tiny cache on the same task queue: every
conversation is out of memory, and each must answer a `Summary` query (which makes the new
worker replay it from history) with status `waiting`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.cluster import Cluster, WorkerProcess
from bench.driver import HandoffTarget
from handoff.models import FactKind, Status
from handoff.store import Store

KIB = 1024
CREATE_CONCURRENCY = 32
QUERY_CONCURRENCY = 32
EVICTED_CACHE = 50

Progress = Callable[[int], None]


@dataclass
class Level:
    conversations: int
    rss_kib: int
    kib_per_conversation: float
    create_seconds: float


@dataclass
class MemoryResult:
    warmup: int
    warmup_rss_kib: int
    levels: list[Level] = field(default_factory=list)
    responded_after_eviction: int = 0
    checked_after_eviction: int = 0
    eviction_check_seconds: float = 0.0
    evicted_worker_rss_kib: int = 0

    @property
    def kib_per_conversation(self) -> float:
        return self.levels[-1].kib_per_conversation if self.levels else 0.0


async def bounded(count: int, concurrency: int, job: Callable[[int], Awaitable[None]], progress: Progress) -> None:
    """Run job(0..count-1), `concurrency` at a time, reporting each completion."""
    queue = iter(range(count))

    async def lane() -> None:
        for index in queue:
            await job(index)
            progress(1)

    await asyncio.gather(*(lane() for _ in range(min(concurrency, count))))


async def open_waiting(target: HandoffTarget, ids: list[str], progress: Progress) -> None:
    """Open conversations and leave them waiting for a person: one message, then the request."""

    async def one(index: int) -> None:
        await target.start(ids[index], "Where is my order?")
        await target.request_human(ids[index])

    await bounded(len(ids), CREATE_CONCURRENCY, one, progress)


async def wait_recorded(store: Store, expected: int, timeout: float = 300.0) -> None:
    """Until the database shows `expected` conversations that asked for a person."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(store.count_facts, kind=FactKind.HUMAN_REQUESTED.value) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {expected} conversations reached waiting within {timeout}s")
        await asyncio.sleep(0.5)


async def all_respond(target: HandoffTarget, ids: list[str], progress: Progress) -> int:
    """How many conversations answer a Summary query with status waiting."""
    ok = 0

    async def one(index: int) -> None:
        nonlocal ok
        summary = await target.summary(ids[index])
        ok += summary.status is Status.WAITING

    await bounded(len(ids), QUERY_CONCURRENCY, one, progress)
    return ok


async def measure(
    cluster: Cluster, levels: tuple[int, ...], warmup: int, progress: Progress, phase: Callable[[str], None]
) -> MemoryResult:
    worker = await cluster.start_worker("handoff")  # the shipped cache bound
    target = HandoffTarget(cluster.client, worker.task_queue)
    store = Store(f"sqlite:///{cluster.directory / 'handoff.db'}")
    try:
        return await _measure(cluster, worker, target, store, levels, warmup, progress, phase)
    finally:
        store.close()


async def _measure(
    cluster: Cluster,
    worker: WorkerProcess,
    target: HandoffTarget,
    store: Store,
    levels: tuple[int, ...],
    warmup: int,
    progress: Progress,
    phase: Callable[[str], None],
) -> MemoryResult:
    recorded_before = await asyncio.to_thread(store.count_facts, kind=FactKind.HUMAN_REQUESTED.value)
    ids = [uuid.uuid4().hex for _ in range(warmup)]
    phase(f"memory: {warmup} warm-up conversations")
    await open_waiting(target, ids, lambda _: None)
    await wait_recorded(store, recorded_before + len(ids))
    await worker.settle()
    result = MemoryResult(warmup=warmup, warmup_rss_kib=worker.rss_bytes() // KIB)
    for level in levels:
        phase(f"memory: opening conversations up to {level:,} waiting")
        new = [uuid.uuid4().hex for _ in range(level - len(ids))]
        started = time.perf_counter()
        await open_waiting(target, new, progress)
        ids += new
        await wait_recorded(store, recorded_before + len(ids))
        seconds = time.perf_counter() - started
        await worker.settle()
        rss_kib = worker.rss_bytes() // KIB
        per_conversation = (rss_kib - result.warmup_rss_kib) / (level - warmup)
        result.levels.append(Level(level, rss_kib, per_conversation, seconds))
    phase(f"memory: replacing the worker by one caching {EVICTED_CACHE}; querying all {len(ids):,}")
    await cluster.stop_worker(worker)
    small = await cluster.start_worker("handoff", max_cached=EVICTED_CACHE, task_queue=worker.task_queue)
    started = time.perf_counter()
    result.responded_after_eviction = await all_respond(target, ids, progress)
    result.checked_after_eviction = len(ids)
    result.eviction_check_seconds = time.perf_counter() - started
    result.evicted_worker_rss_kib = small.rss_bytes() // KIB
    await cluster.stop_worker(small)
    return result
