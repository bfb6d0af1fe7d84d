"""`python -m bench routing [--quick]`: automatic assignment under a steady stream of conversations.

On the benchmark's cluster (the embedded dev server on a fresh SQLite file, one Handoff worker
process) and the project database, this process runs what an API process with
HANDOFF_ASSIGNMENT=auto runs: the assigner (handoff/assignment.py) and the client's capacity
slots. 1,000 conversations (100 with --quick) ask for a person, spread evenly over a minute (10 s),
and 20 agents (10) of capacity 5 are online; each agent closes a conversation `HOLD_SECONDS`
after it was given to them, so a slot is free whenever a conversation enters Waiting (the
measure is the assigner's delay, not a queue's). Reported:

- delay from entering Waiting to assignment, p50 and p99: the workflow's own times of the
  `human_requested` and `taken_over` facts (one clock, so no skew);
- billable actions per assignment: the TakeOver updates the assigner sent (refused ones
  included) per conversation assigned. Capacity and the rounds read the database only; a
  take-over starts the first-reply SLA timer exactly as a manual one does, so it is not counted.

Asserts nothing; prints a Markdown table and writes bench/routing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.cluster import Cluster
from handoff.agents import AgentDirectory, AgentEntry
from handoff.assignment import Assigner
from handoff.availability import AgentStatus
from handoff.client import HandoffClient, HandoffError
from handoff.models import Agent, FactKind, Outcome
from handoff.presence import holding_counts, set_status
from handoff.store import Store

HOLD_SECONDS = 2.0
CAPACITY = 5
RESULTS = Path(__file__).with_name("routing.json")
TMPFS = Path("/dev/shm")  # the dev server's SQLite file, as `python -m bench` puts it


@dataclass
class RoutingResult:
    conversations: int
    agents: int
    arrival_seconds: float
    assigned: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    most_held: int  # conversations held at once, at most (of agents x capacity slots)
    take_overs_sent: int
    actions_per_assignment: float
    wall_seconds: float


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (as /stats)."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * p
    low = int(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def delays(store: Store, ids: list[str]) -> list[float]:
    """Per conversation, seconds from its request for a person to its take-over."""
    result = []
    for cid in ids:
        facts = store.facts(cid)
        asked = next((f.at for f in facts if f.kind is FactKind.HUMAN_REQUESTED), None)
        taken = next((f.at for f in facts if f.kind is FactKind.TAKEN_OVER), None)
        if asked is not None and taken is not None:
            result.append((taken - asked).total_seconds())
    return result


async def measure(conversations: int, agents: int, seconds: float) -> RoutingResult:
    async with Cluster(TMPFS if TMPFS.is_dir() else None) as cluster:
        worker = await cluster.start_worker("handoff")
        store = Store(cluster.database_url)
        directory = AgentDirectory(
            [AgentEntry(f"agent-{i}", f"Agent {i}", f"agent-{i}-token-long-enough-xx", CAPACITY) for i in range(agents)]
        )
        handoff = HandoffClient(cluster.client, worker.task_queue, store, capacities=directory.capacities(CAPACITY))
        for entry in directory.agents:
            set_status(store, entry.id, AgentStatus.ONLINE)
        assigner = Assigner(handoff, store, directory)
        ids = [uuid.uuid4().hex for _ in range(conversations)]
        closed: set[str] = set()
        closes: set[asyncio.Task[None]] = set()
        most_held = 0

        async def close(cid: str, agent: Agent) -> None:
            try:
                await handoff.close(cid, agent, Outcome.RESOLVED)
            except HandoffError:
                closed.discard(cid)

        async def close_after_holding() -> None:
            """Each agent closes what they were given HOLD_SECONDS later (all at once, as a team
            would), freeing the slot."""
            nonlocal most_held
            while len(closed) < conversations or closes:
                now = datetime.now(UTC)
                counts = await asyncio.to_thread(holding_counts, store)
                most_held = max(most_held, sum(counts.values()))
                for entry in directory.agents:
                    for held in await asyncio.to_thread(store.assigned_to, entry.id):
                        since = held.assigned_at or now
                        if held.conversation_id not in closed and (now - since).total_seconds() >= HOLD_SECONDS:
                            closed.add(held.conversation_id)
                            task = asyncio.create_task(close(held.conversation_id, entry.agent))
                            closes.add(task)
                            task.add_done_callback(closes.discard)
                await asyncio.sleep(0.2)

        async def arrive(cid: str, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await handoff.start_or_message(cid, f"customer-{cid[:6]}", "hello")
            await handoff.request_human(cid)

        started = time.monotonic()
        assigner.start()
        closer = asyncio.create_task(close_after_holding())
        await asyncio.gather(*(arrive(cid, started + seconds * i / conversations) for i, cid in enumerate(ids)))
        try:
            await asyncio.wait_for(closer, timeout=seconds + 300)  # every conversation closed
        finally:
            closer.cancel()
            await assigner.stop()
        wall = time.monotonic() - started
        measured = [d * 1000 for d in await asyncio.to_thread(delays, store, ids)]
        store.close()
        return RoutingResult(
            conversations=conversations,
            agents=agents,
            arrival_seconds=seconds,
            assigned=len(measured),
            p50_ms=round(percentile(measured, 0.5), 1),
            p99_ms=round(percentile(measured, 0.99), 1),
            max_ms=round(max(measured), 1),
            most_held=most_held,
            take_overs_sent=assigner.sent,
            actions_per_assignment=round(assigner.sent / max(assigner.assigned, 1), 3),
            wall_seconds=round(wall, 1),
        )


def table(result: RoutingResult) -> str:
    return "\n".join(
        [
            "| conversations | agents (capacity 5) | arriving over | assigned | most held at once | delay p50 | p99 "
            "| max | TakeOver updates sent | billable actions per assignment |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {result.conversations:,} | {result.agents} | {result.arrival_seconds:g} s | {result.assigned:,} "
            f"| {result.most_held} of {result.agents * CAPACITY} "
            f"| {result.p50_ms:,.0f} ms | {result.p99_ms:,.0f} ms | {result.max_ms:,.0f} ms "
            f"| {result.take_overs_sent:,} | {result.actions_per_assignment:g} |",
        ]
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench routing", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--quick", action="store_true", help="100 conversations over 10 s, 10 agents")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    conversations, agents, seconds = (100, 10, 10.0) if args.quick else (1000, 20, 60.0)
    result = asyncio.run(measure(conversations, agents, seconds))
    args.output.write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(table(result))
    print(f"\nwall time {result.wall_seconds} s")
