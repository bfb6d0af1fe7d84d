"""Latency as the people using Handoff feel it, taken from the throughput runs (under load):

- take-over: an agent's TakeOver update, from the call to its answer (what the agent UI waits for);
- bot answer: from sending a customer message to the bot's answer being in the transcript (the
  workflow task that received the answer has completed; see `bench.driver`).

Percentiles are nearest-rank over every sample of a level (2 take-overs and 6 bot answers per
reference conversation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.driver import Timings


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Latency:
    takeover_p50: float
    takeover_p90: float
    takeover_p99: float
    bot_answer_p50: float
    bot_answer_p99: float
    samples: int

    @classmethod
    def of(cls, timings: Timings) -> Latency:
        return cls(
            takeover_p50=percentile(timings.takeover_ms, 50),
            takeover_p90=percentile(timings.takeover_ms, 90),
            takeover_p99=percentile(timings.takeover_ms, 99),
            bot_answer_p50=percentile(timings.bot_answer_ms, 50),
            bot_answer_p99=percentile(timings.bot_answer_ms, 99),
            samples=len(timings.takeover_ms),
        )
