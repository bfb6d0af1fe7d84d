"""`python -m bench [--quick]`: Handoff against a hand-written baseline, on real servers.

Starts the embedded Temporal dev server (a SQLite file in a temporary folder, on tmpfs where
there is one: see `--disk`), a Handoff worker and a baseline worker as separate processes, then
measures, in this order: cost (one reference conversation each, alone), throughput and latency
(1, 10 and 100 reference conversations at once, Handoff and baseline alternating first),
memory (idle conversations in Waiting, then eviction) and growth (long conversations).
Writes bench/results.json and bench/results.md and prints the table. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from bench import cost, growth, machine, memory, readers
from bench.cluster import Cluster, WorkerProcess
from bench.driver import BaselineTarget, HandoffTarget, Target
from bench.plan import FULL, QUICK, Plan
from bench.report import Measurements, results, write
from bench.throughput import Level, run_level
from handoff.store import Store

RESULTS = Path(__file__).with_name("results.json")
TMPFS = Path("/dev/shm")


class Steps:
    """Progress on stderr: one bar per phase, and a log line per phase for logs without a terminal."""

    def __init__(self, progress: Progress, console: Console) -> None:
        self.progress = progress
        self.console = console
        self.task: TaskID | None = None

    def phase(self, description: str, total: int | None = None) -> Callable[[int], None]:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.console.log(description)
        self.task = self.progress.add_task(description, total=total)
        task = self.task

        def advance(n: int = 1) -> None:
            self.progress.advance(task, n)

        return advance

    def describe(self, description: str) -> None:
        self.console.log(description)
        if self.task is not None:
            self.progress.update(self.task, description=description)


async def level(
    cluster: Cluster,
    target: Target,
    worker: WorkerProcess,
    concurrency: int,
    total: int,
    advance: Callable[[int], None],
    steps: Steps,
) -> Level:
    def cpu() -> dict[str, float]:
        return {"worker": worker.cpu_seconds(), "server": cluster.server_cpu_seconds()}

    steps.describe(f"throughput: {concurrency} at once, {target.name}")
    return await run_level(target, concurrency, total, lambda: advance(1), cpu)


async def measure(plan: Plan, steps: Steps, base_dir: Path | None) -> tuple[Measurements, list[readers.ReadersResult]]:
    sharing = machine.Sharing.begin()
    steps.phase("starting the dev server and two workers")
    async with Cluster(base_dir) as cluster:
        handoff_worker, baseline_worker = await asyncio.gather(
            cluster.start_worker("handoff"), cluster.start_worker("baseline")
        )
        handoff = HandoffTarget(cluster.client, handoff_worker.task_queue, store=Store(cluster.database_url))
        baseline = BaselineTarget(cluster.plain_client, baseline_worker.task_queue)
        # Cost first: it counts events and actions, which a cold worker does not change, and it
        # warms both workers up (imports, first sandbox) before anything is timed.
        steps.phase("cost: one reference conversation each, alone")
        costs = await cost.compare(handoff, baseline, uuid.uuid4().hex)

        levels: list[tuple[Level, Level]] = []
        pairs: list[tuple[Target, WorkerProcess]] = [(handoff, handoff_worker), (baseline, baseline_worker)]
        for concurrency, total in sorted(plan.throughput.items()):
            advance = steps.phase(f"throughput: {concurrency} at once, {total} each", total=2 * total)
            measured = {
                target.name: await level(cluster, target, worker, concurrency, total, advance, steps)
                for target, worker in pairs
            }
            levels.append((measured["handoff"], measured["baseline"]))
            pairs.reverse()  # the other one goes first at the next level
        # Their shutdown overlaps the next phase's start (it only takes time, not CPU).
        stopping = asyncio.gather(cluster.stop_worker(handoff_worker), cluster.stop_worker(baseline_worker))

        # Opening the conversations past the warm-up, then one query each after eviction.
        total_memory = 2 * plan.memory_levels[-1] - plan.memory_warmup
        advance = steps.phase("memory: idle conversations in Waiting", total=total_memory)
        memory_result = await memory.measure(cluster, plan.memory_levels, plan.memory_warmup, advance, steps.describe)

        advance = steps.phase(
            f"growth: conversations of {', '.join(f'{n:,}' for n in plan.growth_lengths)} messages",
            total=sum(plan.growth_lengths),
        )
        growth_result = await growth.measure(
            cluster, plan.growth_lengths, plan.growth_window, plan.growth_continue_as_new_after_events, advance
        )
        await stopping

        reader_results: list[readers.ReadersResult] = []
        for conversations in plan.readers:
            steps.phase(f"readers: {conversations:,} open conversations polled every 2 s, then SIGKILL of everything")
            reader_results.append(await readers.measure(cluster, conversations, plan.readers_seconds))
        run = sharing.end(cluster.our_cpu_seconds())
    return Measurements(plan, levels, costs, memory_result, growth_result, machine.describe(), run), reader_results


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="the short variant (under a minute, same table shape)")
    parser.add_argument(
        "--memory-levels",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        help="open idle conversations to measure at, e.g. 1000,10000 (default: the plan's)",
    )
    parser.add_argument(
        "--disk",
        action="store_true",
        help="put the dev server's SQLite file on the system temp dir instead of tmpfs (then the disk's fsync "
        "latency, not Handoff, bounds throughput)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["assist"]:  # the bot and retrieval benchmark: no servers needed
        from bench import assist

        assist.main(argv[1:])
        return
    if argv[:1] == ["routing"]:  # issue 10: automatic assignment's delay and cost
        from bench import routing

        routing.main(argv[1:])
        return
    if argv[:1] == ["cpu"]:  # the throughput phase alone, repeated, optionally profiled
        from bench import cpu

        cpu.main(argv[1:])
        return
    if argv[:1] == ["stats"]:  # the statistics and UI reads at a million conversations: PostgreSQL only
        from bench import stats

        stats.main(argv[1:])
        return
    args = parse(argv)
    plan = QUICK if args.quick else FULL
    if args.memory_levels:
        plan = Plan(**{**plan.__dict__, "memory_levels": args.memory_levels})
    base_dir = None if args.disk or not TMPFS.is_dir() else TMPFS
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )

    async def run() -> tuple[Measurements, list[readers.ReadersResult]]:
        # SIGTERM cancels the run like Ctrl-C does, so the server and workers are always stopped.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await measure(plan, Steps(progress, console), base_dir)

    with progress:
        measurements, reader_results = asyncio.run(run())
    data = results(measurements)
    data["readers"] = readers.as_dicts(reader_results)
    data["run"]["dev_server_db"] = "tmpfs" if base_dir else f"disk ({tempfile.gettempdir()})"
    data["run"]["peak_rss_bench_process_kib"] = psutil.Process().memory_info().rss // 1024
    text = write(data, args.output)
    if reader_results:
        text += "\n" + readers.write(reader_results, args.output.with_name(args.output.stem + "-readers.json"))
    out = Console()
    # A terminal wide enough gets the rendered tables; logs (CI) get the Markdown itself.
    if out.is_terminal and out.width >= 120:
        out.print(Markdown(text))
    else:
        print(text)
    console.log(f"wrote {args.output} and {args.output.with_suffix('.md')}")
    sys.exit(0)


if __name__ == "__main__":
    main()
