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
from dataclasses import dataclass

from bench.driver import Target, Timings, run_reference


@dataclass
class Level:
    target: str
    concurrency: int
    conversations: int
    seconds: float
    timings: Timings

    @property
    def per_second(self) -> float:
        return self.conversations / self.seconds


async def run_level(target: Target, concurrency: int, total: int, on_done: Callable[[], None] | None = None) -> Level:
    """Run `total` reference conversations, `concurrency` at a time."""
    timings = Timings()
    remaining = total

    async def driver() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            timings.extend(await run_reference(target, uuid.uuid4().hex))
            if on_done is not None:
                on_done()

    started = time.perf_counter()
    await asyncio.gather(*(driver() for _ in range(concurrency)))
    return Level(target.name, concurrency, total, time.perf_counter() - started, timings)
