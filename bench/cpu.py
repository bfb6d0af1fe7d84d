"""`python -m bench cpu`: the worker's CPU per reference conversation against the baseline's, and where it goes.

Only the throughput phase of `python -m bench`, repeated: a Handoff worker and a baseline
worker (separate processes, as in the full run) carry `--levels` reference conversations at
once, alternating which goes first, `--rounds` times. Each row gives conversations per second
and worker CPU milliseconds per conversation for both, and their ratios; CPU time, unlike wall
time, hardly depends on what else the shared machine does, so it is the figure to compare.

`--profile FILE` samples the Handoff worker with py-spy (`pip install py-spy`; not a project
dependency) during the measured levels and prints the top entries by self and by cumulative
samples (250 a second, without pausing the worker). Profiled rounds run a little slower;
compare ratios from unprofiled runs.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil

from bench.cluster import ROOT, Cluster, WorkerProcess
from bench.driver import BaselineTarget, HandoffTarget, Target
from bench.throughput import Level, run_level
from handoff.store import Store

TMPFS = Path("/dev/shm")
ACTIVITY_ANSWERS = "handoff, activity answers"
DEFAULT_LEVELS = {10: 20, 100: 100}


async def measure(
    levels: dict[int, int],
    rounds: int,
    profile: Path | None,
    show_threads: bool = False,
    baseline_updates: bool = False,
    activity_answers: bool = False,
) -> list[tuple[Level, Level]]:
    measured: list[tuple[Level, Level]] = []
    async with Cluster(TMPFS if TMPFS.is_dir() else None) as cluster:
        handoff_worker, baseline_worker = await asyncio.gather(
            cluster.start_worker("handoff"), cluster.start_worker("baseline")
        )
        store = Store(cluster.database_url)
        handoff = HandoffTarget(cluster.client, handoff_worker.task_queue, store=store)
        baseline = BaselineTarget(cluster.plain_client, baseline_worker.task_queue, customer_updates=baseline_updates)
        pairs: list[tuple[Target, WorkerProcess]] = [(handoff, handoff_worker), (baseline, baseline_worker)]
        if activity_answers:
            # The same worker, conversations started as before stop 21: every bot answer a
            # `BotAnswer` activity. Measured in the same rounds, for a paired comparison.
            legacy = HandoffTarget(
                cluster.client, handoff_worker.task_queue, store=store, local_bot_answers=False, name=ACTIVITY_ANSWERS
            )
            pairs.append((legacy, handoff_worker))
        # Warm-up (imports, first sandbox, connection pools), not counted.
        for target, _ in pairs:
            await run_level(target, 2, 4)
        spy = _start_profiler(handoff_worker, profile) if profile else None
        try:
            for _ in range(rounds):
                for concurrency, total in sorted(levels.items()):
                    result: dict[str, Level] = {}
                    for target, worker in pairs:
                        await worker.settle()

                        def cpu(worker: WorkerProcess = worker) -> dict[str, float]:
                            return {
                                "worker": worker.cpu_seconds(),
                                "server": cluster.server_cpu_seconds(),
                                "driver": _own_cpu_seconds(),
                            }

                        threads_before, times_before = _threads(worker), _times(worker)
                        result[target.name] = await run_level(target, concurrency, total, cpu=cpu)
                        if show_threads:
                            print(_thread_split(threads_before, _threads(worker), total), file=sys.stderr)
                            user, system = (
                                1000 * (a - b) / total for a, b in zip(_times(worker), times_before, strict=True)
                            )
                            print(f"   user / system ms/conv: {user:.1f} / {system:.1f}", file=sys.stderr)
                        print(_row(result[target.name]), file=sys.stderr, flush=True)
                    measured.append((result["handoff"], result["baseline"]))
                    if ACTIVITY_ANSWERS in result:
                        measured.append((result[ACTIVITY_ANSWERS], result["baseline"]))
                    pairs = pairs[1:] + pairs[:1]  # each goes first in turn
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
                spy.wait(60)
            store.close()
    return measured


def _own_cpu_seconds() -> float:
    """This process's CPU time: the driver, which sends the inputs and, for Handoff, writes the
    facts of every update to the database as the API does."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def _times(worker: WorkerProcess) -> tuple[float, float]:
    assert worker.process is not None
    times = psutil.Process(worker.process.pid).cpu_times()
    return float(times.user), float(times.system)


def _threads(worker: WorkerProcess) -> dict[int, tuple[str, float]]:
    """CPU seconds per OS thread of the worker, with the thread's name (Rust threads of the
    Temporal core SDK are named, Python's are all `python`)."""
    assert worker.process is not None
    out: dict[int, tuple[str, float]] = {}
    for t in psutil.Process(worker.process.pid).threads():
        try:
            name = Path(f"/proc/{worker.process.pid}/task/{t.id}/comm").read_text().strip()
        except OSError:
            continue
        out[t.id] = (name, t.user_time + t.system_time)
    return out


def _thread_split(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], total: int) -> str:
    by_name: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        by_name[name] = by_name.get(name, 0.0) + cpu - before.get(tid, (name, 0.0))[1]
    ranked = sorted(by_name.items(), key=lambda item: -item[1])
    return "   threads ms/conv: " + ", ".join(f"{n} {1000 * c / total:.1f}" for n, c in ranked)


def _start_profiler(worker: WorkerProcess, output: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    assert worker.process is not None
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(worker.process.pid),
            "--rate",
            "100",
            "--nonblocking",
            "--gil",
            "--format",
            "raw",
            "-o",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _row(level: Level) -> str:
    return (
        f"{level.target:>8} {level.concurrency:>4} at once: {level.per_second:5.2f} conv/s, "
        f"worker {level.cpu_ms_per_conversation('worker'):6.1f} ms/conv"
    )


PROCESSES = ("worker", "server", "driver")


def table(measured: list[tuple[Level, Level]]) -> str:
    """The ratios, and each process's CPU per conversation: on a machine whose cores the
    processes saturate, throughput follows the CPU of all of them (`all CPU ratio`), not the
    worker's alone (docs/benchmarks.md, "Stop 20")."""
    lines = [
        "| Handoff | at once (conversations) | conv/s H / B | throughput ratio | worker CPU ms/conv H / B "
        "| worker CPU ratio | server ms/conv H / B | driver ms/conv H / B | all CPU ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ratios: dict[str, list[tuple[float, float, float]]] = {}
    for h, b in measured:
        ms = {name: (h.cpu_ms_per_conversation(name), b.cpu_ms_per_conversation(name)) for name in PROCESSES}
        everything = sum(hb[0] for hb in ms.values()) / sum(hb[1] for hb in ms.values())
        ratios.setdefault(h.target, []).append(
            (h.per_second / b.per_second, ms["worker"][0] / ms["worker"][1], everything)
        )
        lines.append(
            f"| {h.target} | {h.concurrency} ({h.conversations}) | {h.per_second:.2f} / {b.per_second:.2f} | "
            f"**{h.per_second / b.per_second:.2f}** | {ms['worker'][0]:.0f} / {ms['worker'][1]:.0f} | "
            f"**{ms['worker'][0] / ms['worker'][1]:.2f}** | {ms['server'][0]:.0f} / {ms['server'][1]:.0f} | "
            f"{ms['driver'][0]:.0f} / {ms['driver'][1]:.0f} | {everything:.2f} |"
        )
    if len(measured) > 2:
        lines.append("")
        lines.append("Medians over the rows (each row paired with the baseline's level run next to it):")
        for target, rows in ratios.items():
            throughput, worker, everything = (statistics.median(column) for column in zip(*rows, strict=True))
            lines.append(
                f"- {target}: throughput **{throughput:.2f}**, worker CPU **{worker:.2f}**, "
                f"all CPU {everything:.2f} ({len(rows)} rows)"
            )
    return "\n".join(lines)


# Frames on (nearly) every stack of their thread, left out of the cumulative ranking.
ENTRY_FRAMES = (
    "(threading.py)",
    "(asyncio/runners.py)",
    "(asyncio/base_events.py)",
    "(asyncio/events.py)",
    "(<frozen runpy>)",
    "(bench/worker.py)",
    "(concurrent/futures/thread.py)",
)


def top_entries(raw: Path, n: int = 15) -> str:
    """Top frames of a py-spy `--format raw` file (one `frame;frame;... count` line per stack),
    by self samples (the frame was running) and by cumulative ones (it was on the stack; the
    threads' and event loop's entry frames left out)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            if not frame.endswith(ENTRY_FRAMES):
                total[frame] += count
    out = [f"{samples} samples"]
    for title, counter in (("self", own), ("cumulative", total)):
        out.append(f"\nTop {n} by {title}:")
        out += [f"{100 * c / samples:5.1f}%  {frame}" for frame, c in counter.most_common(n)]
    return "\n".join(out)


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module path tail)` without the line, so one
    function's samples add up."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench cpu", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument(
        "--levels",
        type=lambda text: {int(c): int(t) for c, t in (pair.split(":") for pair in text.split(","))},
        default=DEFAULT_LEVELS,
        help="at-once:total pairs, e.g. 10:20,100:100 (the default)",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="py-spy the Handoff worker into this raw file and print its top")
    parser.add_argument("--threads", action="store_true", help="print each worker's CPU per thread name")
    parser.add_argument(
        "--baseline-updates",
        action="store_true",
        help="send the baseline the customer's messages and requests as updates, as Handoff gets them "
        "(default: signals, the issue's baseline)",
    )
    parser.add_argument(
        "--activity-answers",
        action="store_true",
        help="also run Handoff's conversations as started before stop 21 (every bot answer a BotAnswer "
        "activity) on the same worker, in the same rounds",
    )
    parser.add_argument("--top-of", type=Path, help="only print the top entries of an existing py-spy raw file")
    args = parser.parse_args(argv)
    if args.top_of:
        print(top_entries(args.top_of))
        return
    measured = asyncio.run(
        measure(args.levels, args.rounds, args.profile, args.threads, args.baseline_updates, args.activity_answers)
    )
    print(table(measured))
    if args.profile and args.profile.exists():
        print(top_entries(args.profile))
