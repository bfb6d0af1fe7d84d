"""What the numbers were measured on: the machine, and how much of it others were using.

The benchmark's own processes (this driver, the dev server, the workers) are counted as they
run; everything else the machine's CPUs did in the meantime is "others", reported as a share of
the machine so a reader can tell a quiet run from a shared one.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil

from handoff.devserver import temporal_binary


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def temporal_cli_version() -> str:
    try:
        out = subprocess.run([temporal_binary(), "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.strip().splitlines()[0] if out.strip() else "unknown"
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return "unknown"


def git_commit() -> str:
    """The commit measured, with `+dirty` when the work tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    return (head.strip() or "unknown") + ("+dirty" if dirty.strip() else "")


def describe() -> dict[str, object]:
    return {
        "commit": git_commit(),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "temporalio": metadata.version("temporalio"),
        "temporal_cli": temporal_cli_version(),
        "platform": platform.platform(),
    }


def busy_cpu_seconds() -> float:
    """CPU seconds all CPUs of the machine spent not idle since boot."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class Sharing:
    """Machine CPU use during the run: ours and everybody else's."""

    started: datetime
    busy_at_start: float
    load_at_start: float

    @classmethod
    def begin(cls) -> Sharing:
        return cls(datetime.now(UTC), busy_cpu_seconds(), os.getloadavg()[0])

    def end(self, our_cpu_seconds: float) -> dict[str, object]:
        wall = (datetime.now(UTC) - self.started).total_seconds()
        capacity = wall * (os.cpu_count() or 1)
        others = max(0.0, busy_cpu_seconds() - self.busy_at_start - our_cpu_seconds)
        return {
            "date": self.started.isoformat(timespec="seconds"),
            "duration_seconds": round(wall, 1),
            "load_average_at_start": round(self.load_at_start, 2),
            "load_average_at_end": round(os.getloadavg()[0], 2),
            "our_cpu_share": round(our_cpu_seconds / capacity, 3),
            "others_cpu_share": round(others / capacity, 3),
            "shared": others / capacity > 0.1,
        }
