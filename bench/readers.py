"""Readers (issue 8): open conversations followed by pollers, read through the HTTP API.

N conversations are opened through a real API process (`python -m handoff.cli api`, on the bench's
dev server, worker and database); a quarter of them ask for a person and agent Alice takes
some of those over. Then, for `seconds`, every conversation has a chat widget polling
`GET /conversations/{id}/messages?after=...` every 2 s (first poll at a random moment), and
the demo agents poll their columns (`/live/waiting`, `/live/mine`) every 2 s. Measured:

- API latency per read (p50/p99) and reads per second answered;
- then the same widgets and agents follow by push for `seconds` instead (Server-Sent Events:
  `GET /conversations/{id}/events`, `GET /live/events`), while Alice replies once to each
  conversation she holds: time to open a stream (p50/p99), events received, errors, and the CPU
  per 1,000 stream-seconds;
- billable Temporal actions per conversation, readers included, counted from the histories
  (`bench/cost.py`'s rule) after both windows: what the conversations did, since reads add none;
- CPU seconds per 1,000 reads of the API process, the worker and the Temporal server;
- Temporal actions the reads caused: reads make no Temporal call (they are served from the
  database), checked by the workflows' histories, which gain no event while only reads run;
  queries leave no history, so the API is also run against a server that is down for the
  crash-recovery part, where every read still answers;
- crash recovery: a message is sent to every conversation, then the server, the worker and the
  API are killed (SIGKILL) and started again; seconds until every read answers, and until
  every message in flight has its bot answer.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.cluster import ROOT, Cluster, WorkerProcess
from bench.cost import billable_actions, run_histories
from handoff.client import workflow_id

POLL_SECONDS = 2.0
SECRET = "bench-customer-token-secret-of-enough-length"
ALICE = {"Authorization": "Bearer alice-demo-token-not-secret"}
BOB = {"Authorization": "Bearer bob-demo-token-not-secret"}


@dataclass
class ReadersResult:
    conversations: int
    seconds: float
    reads: int
    reads_per_second: float
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_per_1000_reads: dict[str, float]
    history_events_added_by_reads: int
    temporal_actions_per_read: int
    recovery_reads_seconds: float
    recovery_answers_seconds: float
    # Push (SSE): streams held open for `seconds`, one per widget plus the two agents'.
    sse_streams: int = 0
    sse_errors: int = 0
    sse_open_p50_ms: float = 0.0
    sse_open_p99_ms: float = 0.0
    sse_events: int = 0
    sse_cpu_per_1000_stream_seconds: dict[str, float] | None = None
    # Billable actions per conversation after both windows (reads and streams add none).
    actions_per_conversation: float = 0.0


class ApiProcess:
    """`python -m handoff.cli api` on a free port, against the cluster's server, worker queue and database."""

    def __init__(self, cluster: Cluster, worker: WorkerProcess) -> None:
        self.cluster = cluster
        self.worker = worker
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {
            **os.environ,
            "HANDOFF_TEMPORAL_ADDRESS": self.cluster.server.address,
            "HANDOFF_DATABASE_URL": self.cluster.database_url,
            "HANDOFF_ENCRYPTION_KEYS": self.cluster.encryption_key,
            "HANDOFF_TASK_QUEUE": self.worker.task_queue,
            "HANDOFF_CUSTOMER_TOKEN_SECRET": SECRET,
        }
        log = open(self.cluster.directory / f"api-{self.port}.log", "ab")  # noqa: SIM115 - child keeps it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "handoff.cli", "api", "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        async with httpx.AsyncClient(base_url=self.url) as http:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if (await http.get("/live/waiting", headers=ALICE)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError("the API process did not start")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Opened:
    id: str
    headers: dict[str, str]
    seen: int = 0  # highest seq the widget has


async def _open(http: httpx.AsyncClient, n: int) -> Opened:
    response = await http.post("/conversations", json={"customer_id": f"reader-{n}", "text": "Where is my order?"})
    response.raise_for_status()
    body = response.json()
    opened = Opened(body["id"], {"Authorization": f"Bearer {body['customer_token']}"})
    opened.seen = max((m["seq"] for m in body["messages"]), default=0)
    return opened


async def _history_events(cluster: Cluster, ids: list[str]) -> int:
    total = 0
    for cid in ids:
        history = await cluster.client.get_workflow_handle(workflow_id(cid)).fetch_history()
        total += len(history.events)
    return total


async def _poll(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], until: float, latencies: list[float], errors: list[int]
) -> None:
    await asyncio.sleep(random.uniform(0, POLL_SECONDS))
    while time.monotonic() < until:
        began = time.monotonic()
        try:
            response = await http.get(url, headers=headers)
            if response.status_code != 200:
                errors.append(response.status_code)
        except httpx.HTTPError:
            errors.append(0)
        latencies.append(time.monotonic() - began)
        await asyncio.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - began)))


async def _stream(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], until: float, opened_in: list[float], counts: list[int]
) -> None:
    """Hold one SSE stream open until `until`: the time its response began, and the events read
    (`counts[0]`), errors (`counts[1]`)."""
    began = time.monotonic()
    try:
        async with asyncio.timeout(max(0.1, until - began)):
            async with http.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    counts[1] += 1
                    return
                opened_in.append(time.monotonic() - began)
                async for line in response.aiter_lines():
                    if line.startswith("id:"):
                        counts[0] += 1
    except TimeoutError:
        return  # held open for the whole window, as wanted
    except httpx.HTTPError:
        counts[1] += 1


async def _reply_to_each(http: httpx.AsyncClient, held: list[Opened], until: float) -> None:
    """Alice replies once to each conversation she holds, spread over the window (events to push)."""
    gap = max(0.0, until - time.monotonic() - 1) / max(len(held), 1)
    for c in held:
        await http.post(f"/conversations/{c.id}/replies", json={"text": "Looking into it now."}, headers=ALICE)
        await asyncio.sleep(gap)


async def _actions_per_conversation(cluster: Cluster, ids: list[str]) -> float:
    total = 0
    for cid in ids:
        total += sum(billable_actions(await run_histories(cluster.client, workflow_id(cid))).values())
    return total / max(len(ids), 1)


async def _answers(http: httpx.AsyncClient, c: Opened, answered: bool) -> bool:
    """Whether the conversation's read answers (and, with `answered`, holds the bot's second answer)."""
    try:
        response = await http.get(f"/conversations/{c.id}/messages", headers=c.headers)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    if not answered:
        return True
    kinds = [m["kind"] for m in response.json()["messages"]]
    return len(kinds) >= 4 and kinds[-2:] == ["customer", "bot"]


async def _until_every(
    http: httpx.AsyncClient, opened: list[Opened], began: float, *, answered: bool, timeout: float = 120
) -> float:
    """Seconds from `began` until every conversation's read answers (all asked at once, every 0.1 s)."""
    pending = list(opened)
    while pending and time.monotonic() - began < timeout:
        done = await asyncio.gather(*(_answers(http, c, answered) for c in pending))
        pending = [c for c, ok in zip(pending, done, strict=True) if not ok]
        if pending:
            await asyncio.sleep(0.1)
    return time.monotonic() - began if not pending else float("nan")


async def measure(cluster: Cluster, conversations: int, seconds: float) -> ReadersResult:
    """One level: `conversations` open conversations followed by pollers for `seconds`."""
    worker = await cluster.start_worker("handoff")
    api = ApiProcess(cluster, worker)
    await api.start()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=60, limits=limits) as http:
            opening = asyncio.Semaphore(20)

            async def open_one(n: int) -> Opened:
                async with opening:
                    return await _open(http, n)

            opened = await asyncio.gather(*(open_one(n) for n in range(conversations)))
            for c in opened[: max(1, conversations // 4)]:
                (await http.post(f"/conversations/{c.id}/request-human", headers=c.headers)).raise_for_status()
            for c in opened[: max(1, conversations // 8)]:
                (await http.post(f"/conversations/{c.id}/takeover", headers=ALICE)).raise_for_status()
            await asyncio.sleep(2)  # let the recorder land every fact: from here on, only reads
            ids = [c.id for c in opened]
            events_before = await _history_events(cluster, ids)

            latencies: list[float] = []
            errors: list[int] = []
            cpu_before = {
                "api": api.cpu_seconds(),
                "worker": worker.cpu_seconds(),
                "server": cluster.server_cpu_seconds(),
            }
            began = time.monotonic()
            until = began + seconds
            pollers = [
                _poll(http, f"/conversations/{c.id}/messages?after={c.seen}", c.headers, until, latencies, errors)
                for c in opened
            ]
            for agent in (ALICE, BOB):
                pollers += [
                    _poll(http, "/live/waiting", agent, until, latencies, errors),
                    _poll(http, "/live/mine", agent, until, latencies, errors),
                ]
            await asyncio.gather(*pollers)
            elapsed = time.monotonic() - began
            cpu_after = {
                "api": api.cpu_seconds(),
                "worker": worker.cpu_seconds(),
                "server": cluster.server_cpu_seconds(),
            }
            events_added = await _history_events(cluster, ids) - events_before

            # Push: the same readers follow by SSE instead, while Alice replies to those she holds.
            sse_opened: list[float] = []
            sse_counts = [0, 0]
            many = httpx.Limits(max_connections=conversations + 50, max_keepalive_connections=conversations + 50)
            async with httpx.AsyncClient(base_url=api.url, timeout=60, limits=many) as streams_http:
                sse_cpu_before = _cpu(api, worker, cluster)
                sse_began = time.monotonic()
                sse_until = sse_began + seconds
                streams = [
                    _stream(streams_http, f"/conversations/{c.id}/events", c.headers, sse_until, sse_opened, sse_counts)
                    for c in opened
                ]
                streams += [
                    _stream(streams_http, "/live/events", agent, sse_until, sse_opened, sse_counts)
                    for agent in (ALICE, BOB)
                ]
                held = opened[: max(1, conversations // 8)]
                await asyncio.gather(*streams, _reply_to_each(http, held, sse_until))
                sse_seconds = (time.monotonic() - sse_began) * len(streams)
                sse_cpu_after = _cpu(api, worker, cluster)
            actions = await _actions_per_conversation(cluster, ids)

            # Crash recovery: a message in flight to every conversation still with the bot, then SIGKILL all.
            in_flight = opened[max(1, conversations // 4) :]
            for c in in_flight:
                await http.post(
                    f"/conversations/{c.id}/messages", json={"text": "How do I get a refund?"}, headers=c.headers
                )
        api.kill()
        worker_kill(worker)
        cluster.server.kill()
        # Everything starts again at once, as `handoff up` does; reads need only the API and the database.
        restarted = time.monotonic()
        await cluster.stop_worker(worker)
        api = ApiProcess(cluster, worker)
        server_back = asyncio.create_task(asyncio.to_thread(cluster.server.start))
        await api.start()
        async with httpx.AsyncClient(base_url=api.url, timeout=60, limits=limits) as http:
            reads_back = await _until_every(http, list(opened), restarted, answered=False)
            await server_back
            worker = await cluster.start_worker("handoff", task_queue=worker.task_queue)
            answers_back = await _until_every(http, in_flight, restarted, answered=True)
    finally:
        api.stop()
        await cluster.stop_worker(worker)
    reads = len(latencies)
    cpu = {k: round((cpu_after[k] - cpu_before[k]) * 1000 / max(reads, 1), 2) for k in cpu_before}
    return ReadersResult(
        conversations=conversations,
        seconds=round(elapsed, 1),
        reads=reads,
        reads_per_second=round(reads / elapsed, 1),
        errors=len(errors),
        p50_ms=round(statistics.median(latencies) * 1000, 1) if latencies else 0.0,
        p99_ms=round(_percentile(latencies, 0.99) * 1000, 1),
        cpu_per_1000_reads=cpu,
        history_events_added_by_reads=events_added,
        temporal_actions_per_read=0 if events_added == 0 else -1,
        recovery_reads_seconds=round(reads_back, 2),
        recovery_answers_seconds=round(answers_back, 2),
        sse_streams=len(opened) + 2,
        sse_errors=sse_counts[1],
        sse_open_p50_ms=round(statistics.median(sse_opened) * 1000, 1) if sse_opened else 0.0,
        sse_open_p99_ms=round(_percentile(sse_opened, 0.99) * 1000, 1),
        sse_events=sse_counts[0],
        sse_cpu_per_1000_stream_seconds={
            k: round((sse_cpu_after[k] - sse_cpu_before[k]) * 1000 / max(sse_seconds, 1), 2) for k in sse_cpu_before
        },
        actions_per_conversation=round(actions, 2),
    )


def _cpu(api: ApiProcess, worker: WorkerProcess, cluster: Cluster) -> dict[str, float]:
    return {"api": api.cpu_seconds(), "worker": worker.cpu_seconds(), "server": cluster.server_cpu_seconds()}


def worker_kill(worker: WorkerProcess) -> None:
    """SIGKILL, as a crash: no clean shutdown."""
    if worker.process is not None and worker.process.poll() is None:
        worker.process.kill()
        worker.process.wait()


def table(results: list[ReadersResult]) -> str:
    lines = [
        "| open conversations | reads | reads/s | errors | p50 ms | p99 ms "
        "| CPU s per 1,000 reads (API / worker / server) | history events added by reads "
        "| seconds until every read answers after SIGKILL | … until every answer "
        "| SSE streams | errors | open p50 / p99 ms | events | CPU s per 1,000 stream-seconds (API / worker / server) "
        "| billable actions per conversation, readers included |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = r.cpu_per_1000_reads
        lines.append(
            f"| {r.conversations:,} | {r.reads:,} | {r.reads_per_second} | {r.errors} | {r.p50_ms} | {r.p99_ms} "
            f"| {cpu['api']} / {cpu['worker']} / {cpu['server']} | {r.history_events_added_by_reads} "
            f"| {r.recovery_reads_seconds} | {r.recovery_answers_seconds} "
            f"| {r.sse_streams:,} | {r.sse_errors} | {r.sse_open_p50_ms} / {r.sse_open_p99_ms} | {r.sse_events:,} "
            f"| {_triple(r.sse_cpu_per_1000_stream_seconds)} | {r.actions_per_conversation} |"
        )
    return "\n".join(lines) + "\n"


def _triple(cpu: dict[str, float] | None) -> str:
    return "–" if cpu is None else f"{cpu['api']} / {cpu['worker']} / {cpu['server']}"


def write(results: list[ReadersResult], path: Path) -> str:
    import json

    path.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    text = "# Readers (issue 8)\n\n" + table(results)
    path.with_suffix(".md").write_text(text)
    return text


def as_dicts(results: list[ReadersResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]
