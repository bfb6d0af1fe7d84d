"""How much of each benchmark a run does: the full run (under 10 minutes on 2 cores) or --quick
(under a minute, same table shape, smaller numbers)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    name: str
    # Throughput: conversations running at once -> how many reference conversations in total.
    throughput: dict[int, int]
    # Memory: open conversations idle in Waiting, measured at each level (warm-up included).
    memory_warmup: int
    memory_levels: tuple[int, ...]
    # Growth: messages per conversation; unanswered messages the customer allows; forced
    # continue-as-new (None: only when Temporal suggests it).
    growth_lengths: tuple[int, ...]
    growth_window: int
    growth_continue_as_new_after_events: int | None
    # Readers (issue 8): open conversations followed by pollers, and how long they poll.
    readers: tuple[int, ...] = ()
    readers_seconds: float = 0.0

    @property
    def top_concurrency(self) -> int:
        return max(self.throughput)


FULL = Plan(
    name="full",
    throughput={1: 3, 10: 20, 100: 100},
    memory_warmup=50,
    # 10,000 does not fit the 10-minute budget on 2 cores (opening ~30/s, replaying ~30/s): the
    # 10,000 row is extrapolated from this level; `--memory-levels 1000,10000` measures it (~15 min).
    memory_levels=(1_000,),
    growth_lengths=(10, 100, 1_000, 5_000),
    growth_window=8,
    growth_continue_as_new_after_events=None,
    readers=(100, 1_000),
    readers_seconds=30.0,
)

QUICK = Plan(
    name="quick",
    throughput={1: 1, 2: 2, 4: 4},
    memory_warmup=10,
    memory_levels=(50,),
    growth_lengths=(5, 10, 15, 20),
    growth_window=8,
    # Continue-as-new after 100 events, so the quick run crosses runs too.
    growth_continue_as_new_after_events=100,
    readers=(10,),
    readers_seconds=4.0,
)
