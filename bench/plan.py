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

    @property
    def top_concurrency(self) -> int:
        return max(self.throughput)


FULL = Plan(
    name="full",
    throughput={1: 5, 10: 40, 100: 200},
    memory_warmup=50,
    memory_levels=(1_000, 3_000),
    growth_lengths=(10, 100, 1_000, 5_000),
    growth_window=4,
    growth_continue_as_new_after_events=None,
)

QUICK = Plan(
    name="quick",
    throughput={1: 1, 3: 3, 6: 6},
    memory_warmup=10,
    memory_levels=(30, 100),
    growth_lengths=(5, 10, 20, 40),
    growth_window=4,
    # Continue-as-new after 150 events, so the quick run crosses runs too.
    growth_continue_as_new_after_events=150,
)
