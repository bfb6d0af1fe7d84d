"""Throughput: reference conversations completed per second with N of them running at once.

Closed loop: N drivers each run reference conversations back to back until the level's total
is done, so exactly N are in flight the whole time (but for the tail). The clock runs from the
first start to the last workflow completing. Handoff and the baseline run the same level one
after the other against the same dev server, each on its own worker process, so the ratio
compares like with like; the order alternates between levels so neither always runs on the
warmer (or more loaded) server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.driver import Target, Timings, run_reference

# A reference conversation that takes longer than this is stuck: fail the run, don't hang it.
CONVERSATION_TIMEOUT = 300.0


@dataclass
class Level:
    target: str
    concurrency: int
    conversations: int
    seconds: float
    timings: Timings
    # CPU seconds each process (worker, server, driver) spent on the level.
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.conversations / self.seconds

    def cpu_ms_per_conversation(self, process: str) -> float:
        return self.cpu_seconds.get(process, 0.0) * 1000 / self.conversations


async def run_level(
    target: Target,
    concurrency: int,
    total: int,
    on_done: Callable[[], None] | None = None,
    cpu: Callable[[], dict[str, float]] | None = None,
) -> Level:
    """Run `total` reference conversations, `concurrency` at a time; `cpu` reads the CPU
    seconds used so far by each process of interest."""
    timings = Timings()
    remaining = total

    async def driver() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with asyncio.timeout(CONVERSATION_TIMEOUT):
                timings.extend(await run_reference(target, uuid.uuid4().hex))
            if on_done is not None:
                on_done()

    cpu_before = cpu() if cpu else {}
    started = time.perf_counter()
    await asyncio.gather(*(driver() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    cpu_after = cpu() if cpu else {}
    spent = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    return Level(target.name, concurrency, total, seconds, timings, spent)
