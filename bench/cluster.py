"""What a benchmark runs against: the embedded dev server and worker processes, all local.

The dev server is Handoff's own (`handoff.devserver.DevServer`, a SQLite file in a temporary
directory), each worker a separate `python -m bench.worker` process whose resident memory
psutil reads. Everything is torn down when the run ends, even on failure.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import psutil
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.worker import READY
from handoff.codec import new_key_entry
from handoff.config import Settings
from handoff.converter import data_converter
from handoff.devserver import DevServer

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess:
    """One `python -m bench.worker` process; `start` returns once it polls its task queue."""

    def __init__(
        self,
        cluster: Cluster,
        kind: str,
        *,
        max_cached: int | None = None,
        task_queue: str | None = None,
        unsandboxed: bool = False,
    ) -> None:
        self.cluster = cluster
        self.unsandboxed = unsandboxed
        self.kind = kind
        self.max_cached = max_cached
        self.task_queue = task_queue or f"bench-{kind}-{uuid.uuid4().hex[:8]}"
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60.0) -> None:
        cmd = [sys.executable, "-m", "bench.worker", self.kind, "--task-queue", self.task_queue]
        if self.max_cached is not None:
            cmd += ["--max-cached", str(self.max_cached)]
        if self.unsandboxed:
            cmd.append("--unsandboxed")
        env = {
            **os.environ,
            "HANDOFF_TEMPORAL_ADDRESS": self.cluster.server.address,
            "HANDOFF_DATABASE_URL": self.cluster.database_url,
            "HANDOFF_ENCRYPTION_KEYS": self.cluster.encryption_key,
        }
        log = open(self.cluster.directory / f"worker-{uuid.uuid4().hex[:8]}.log", "w")  # noqa: SIM115 - child keeps it
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
        )
        log.close()
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.strip() == READY:
                return
            if not line and self.process.poll() is not None:
                break
        raise RuntimeError(f"bench worker {self.kind} did not start; see {log.name}")

    def rss_bytes(self) -> int:
        assert self.process is not None
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the worker has used so far."""
        assert self.process is not None
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    async def settle(self, quiet_share: float = 0.03, interval: float = 0.25, timeout: float = 60.0) -> None:
        """Wait until the worker is idle: below `quiet_share` of a core for two intervals in a row."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 2 and time.monotonic() < deadline:
            before = self.cpu_seconds()
            await asyncio.sleep(interval)
            quiet = quiet + 1 if self.cpu_seconds() - before < quiet_share * interval else 0

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.cluster.stopped_workers_cpu += self.cpu_seconds()
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Cluster:
    """A dev server on a fresh SQLite file, a client, and the worker processes started on it."""

    def __init__(self, base_dir: Path | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="handoff-bench-", dir=base_dir)
        self.directory = Path(self._tmp.name)
        self.server = DevServer(self.directory / "temporal.db", log_file=self.directory / "temporal.log")
        self.workers: list[WorkerProcess] = []
        self.stopped_workers_cpu = 0.0
        # One fresh payload key for the run, shared by the driver and the Handoff workers.
        self.encryption_key = new_key_entry()
        self._client: Client | None = None
        self._plain_client: Client | None = None

    @property
    def database_url(self) -> str:
        """The project database the Handoff workers (and the driver, writing as the API does) share."""
        return f"sqlite:///{self.directory / 'handoff.db'}"

    @property
    def client(self) -> Client:
        """A client with Handoff's data converter (pydantic, encrypted payloads)."""
        assert self._client is not None, "cluster not started"
        return self._client

    @property
    def plain_client(self) -> Client:
        """A client with the plain pydantic converter, as the hand-written baseline would use."""
        assert self._plain_client is not None, "cluster not started"
        return self._plain_client

    async def __aenter__(self) -> Cluster:
        # DevServer.start runs its own event loop to probe the port: keep it off ours.
        await asyncio.to_thread(self.server.start)
        settings = Settings(encryption_keys=SecretStr(self.encryption_key))
        self._client = await Client.connect(self.server.address, data_converter=data_converter(settings))
        self._plain_client = await Client.connect(self.server.address, data_converter=pydantic_data_converter)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for worker in self.workers:
            await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(self.server.stop)
        self._tmp.cleanup()

    def our_cpu_seconds(self) -> float:
        """CPU time of everything the benchmark runs: this process, the server, every worker."""
        own = psutil.Process().cpu_times()
        live = sum(w.cpu_seconds() for w in self.workers if w.process is not None and w.process.poll() is None)
        return float(own.user + own.system) + self.server_cpu_seconds() + live + self.stopped_workers_cpu

    def server_cpu_seconds(self) -> float:
        assert self.server.process is not None
        times = psutil.Process(self.server.process.pid).cpu_times()
        return float(times.user + times.system)

    async def start_worker(
        self, kind: str, *, max_cached: int | None = None, task_queue: str | None = None, unsandboxed: bool = False
    ) -> WorkerProcess:
        worker = WorkerProcess(self, kind, max_cached=max_cached, task_queue=task_queue, unsandboxed=unsandboxed)
        self.workers.append(worker)
        await asyncio.to_thread(worker.start)
        return worker

    async def stop_worker(self, worker: WorkerProcess) -> None:
        await asyncio.to_thread(worker.stop)
        self.workers.remove(worker)
