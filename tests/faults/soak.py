"""Soak: many conversations through the whole lifecycle at a steady load, worker memory sampled.

By hand (about 6-10 minutes for 1,000 on a busy 2-core machine):

    .venv/bin/python -m tests.faults.soak --conversations 1000 [--concurrency 20]

It starts its own dev server (in memory) and one worker process (`python worker.py`), plays the
WHOLE script (bot, waiting, human, hand-back, bot, human, closed) with `concurrency`
conversations in flight at every moment, samples the worker's resident memory every second,
checks that every conversation completed with its facts exactly once, and prints the figures.
tests/faults/test_soak.py runs a smaller variant in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from handoff.devserver import DevServer
from tests.faults.conversations import WHOLE, Conversation, Load
from tests.faults.harness import InMemoryDevServer, Lab, assert_recorded_as, open_lab, played, start_server
from tests.helpers import new_id

MB = 1024 * 1024


@dataclass
class Sample:
    elapsed: float
    completed: int
    rss: int


@dataclass
class SoakReport:
    conversations: int
    concurrency: int
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    facts: int = 0

    def rss_when(self, fraction: float) -> int:
        """Median RSS over the samples taken once `fraction` of the conversations had completed,
        within the next tenth of the run (a median, so one GC spike does not decide)."""
        low, high = fraction * self.conversations, (fraction + 0.1) * self.conversations
        window = [s.rss for s in self.samples if low <= s.completed <= high]
        if not window:
            # Never borrow a sample from elsewhere: warm and final would then be the same one.
            raise ValueError(f"no RSS sample between {low:.0f} and {high:.0f} conversations completed")
        return int(statistics.median(window))

    @property
    def warm_rss(self) -> int:
        """After the first tenth: imports, caches and pools are warm by then."""
        return self.rss_when(0.1)

    @property
    def final_rss(self) -> int:
        return self.rss_when(0.9)

    @property
    def peak_rss(self) -> int:
        return max(s.rss for s in self.samples)

    def mb_when(self, fraction: float) -> float | None:
        """`rss_when` in MB, None for a tenth the run never reached (a report still prints)."""
        try:
            return self.rss_when(fraction) / MB
        except ValueError:
            return None

    def lines(self) -> list[str]:
        rate = self.completed / self.seconds if self.seconds else 0.0
        warm, final = self.mb_when(0.1), self.mb_when(0.9)
        growth = f"{final - warm:+.1f} MB" if warm is not None and final is not None else "unknown"
        tenths = [self.mb_when(t / 10) for t in range(10)]
        return [
            f"soak: {self.completed}/{self.conversations} conversations completed "
            f"({self.concurrency} in flight at a time) in {self.seconds:.1f} s, {rate:.1f} conversations/s",
            f"soak: {len(self.errors)} errors; {self.facts} facts recorded",
            f"soak: worker RSS warm (after 10%) {warm or 0:.1f} MB, at 90% {final or 0:.1f} MB, "
            f"peak {self.peak_rss / MB:.1f} MB, growth {growth}",
            "soak: RSS by tenths of the run (MB): " + " ".join("-" if t is None else f"{t:.0f}" for t in tenths),
        ]


async def soak(lab: Lab, conversations: int, concurrency: int = 20, interval: float = 1.0) -> SoakReport:
    """Run the soak on `lab` (whose task queue has no worker yet); errors include wrong records."""
    worker = await lab.workers.start()
    report = SoakReport(conversations, concurrency)
    first = Conversation(lab.handoff, new_id(), WHOLE)
    reference = await played(lab, first.id, await first.play_rest())

    started = time.monotonic()

    def sample(completed: int) -> None:
        report.samples.append(Sample(time.monotonic() - started, completed, worker.rss()))

    # A sample at every completion as well as every `interval`: conversations finish in bursts,
    # and each tenth of the run must have samples of its own.
    load = Load(lab.handoff, conversations, concurrency=concurrency, script=WHOLE, on_completed=sample)
    running = asyncio.create_task(load.run())
    while not running.done():
        sample(load.completed)
        await asyncio.wait([running], timeout=interval)
    report.seconds = time.monotonic() - started
    sample(load.completed)
    report.completed = load.completed
    report.errors = [repr(e) for e in load.errors]
    report.facts = lab.store.count_facts() - len(reference.facts)
    try:
        assert_recorded_as(lab.store, load.started, reference)
        assert report.facts == conversations * len(reference.facts), "facts recorded more than once"
    except AssertionError as wrong:
        report.errors.append(f"recorded facts: {wrong}")
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    # The worker and this process must encrypt payloads with the same key.
    os.environ.setdefault("HANDOFF_ENCRYPTION_KEYS", f"soak:{base64.b64encode(os.urandom(32)).decode()}")
    directory = Path(tempfile.mkdtemp(prefix="handoff-soak-"))
    server: DevServer = InMemoryDevServer(directory / "unused.db", log_file=directory / "server.log")
    await start_server(server)
    lab = await open_lab(server, directory, "soak")
    try:
        report = await soak(lab, args.conversations, args.concurrency)
    finally:
        lab.close()
        await asyncio.to_thread(server.stop)
    print("\n".join(report.lines()))
    print(f"soak: logs in {directory}")
    sys.exit(1 if report.errors or report.completed != args.conversations else 0)


if __name__ == "__main__":
    asyncio.run(main())
