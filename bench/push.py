"""`python -m bench.push [--quick]`: how long a written reply takes to reach the customer's stream.

Starts a real API process (uvicorn, `handoff.api:create_app`) on SQLite, and on PostgreSQL when
the local server answers (a private schema of its `test` database). N conversations are taken
over by an agent, each followed by one customer SSE stream (`GET /conversations/{id}/events`,
all held open at once). This process then plays the writer that records agent replies (as the
worker's recorder or, with issue 8 items 1-2, the API process that accepted the reply does:
`Store.record`, from another process than the one streaming), at a steady rate, and times each
reply from just before its write to its arrival on that conversation's stream: commit, wake-up
(NOTIFY or the poll), the API process's one read, fan-out, HTTP. The Temporal hop before the
write (the reply's update) is measured by `python -m bench` (latency), not here.

Writes bench/push_results.json and .md, prints the table. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa

from handoff.customer_tokens import CustomerTokens
from handoff.lifecycle import Conversation, new_state
from handoff.models import Agent, AgentReply, BotAnswered, CustomerMessage, RecordBatch, RequestHuman, TakeOver
from handoff.store import Store

RESULTS = Path(__file__).with_name("push_results.json")
POSTGRES_URL = os.environ.get("HANDOFF_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SECRET = "bench-push-customer-token-secret"
AGENT = Agent(id="bench-agent", name="Bench Agent")


@dataclass(frozen=True)
class PushPlan:
    streams: tuple[int, ...]  # open customer streams (one per conversation) per level
    replies: int  # replies timed per level
    rate: float  # replies written per second


FULL = PushPlan(streams=(100, 1_000), replies=400, rate=40.0)
QUICK = PushPlan(streams=(20,), replies=40, rate=40.0)


@dataclass
class LevelResult:
    database: str
    streams: int
    replies: int
    delivered: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    api_cpu_seconds_per_1000: float
    api_database_connections: int


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] if ordered else float("nan")


@contextmanager
def api_process(database_url: str) -> Iterator[tuple[str, psutil.Process]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    env = {
        **os.environ,
        "HANDOFF_DATABASE_URL": database_url,
        "HANDOFF_CUSTOMER_TOKEN_SECRET": SECRET,
        # Never used here (streams make no Temporal call); a lazy client does not connect.
        "HANDOFF_TEMPORAL_ADDRESS": "127.0.0.1:1",
        # The API needs a payload key to start; nothing here is encrypted with it.
        "HANDOFF_ENCRYPTION_KEYS": os.environ.get(
            "HANDOFF_ENCRYPTION_KEYS", "bench:" + base64.b64encode(secrets.token_bytes(32)).decode()
        ),
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "handoff.api:create_app",
        "--fd",
        str(sock.fileno()),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(command, env=env, pass_fds=[sock.fileno()])
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        sock.close()


@asynccontextmanager
async def databases(base: Path) -> AsyncIterator[list[tuple[str, str]]]:
    """(name, url) of each database to measure on: SQLite always, PostgreSQL if it answers."""
    found = [("sqlite", f"sqlite:///{base / 'push.db'}")]
    schema = f"handoff_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        url = sa.engine.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        found.append(("postgresql", url.render_as_string(hide_password=False)))
    except sa.exc.OperationalError:
        schema = ""
    try:
        yield found
    finally:
        if schema:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def taken_over(conversation_id: str, replies: int) -> tuple[list[RecordBatch], list[RecordBatch]]:
    """The batches that bring a conversation to an agent, and those of `replies` agent replies."""
    start = datetime.now(UTC)
    conversation = Conversation(new_state(conversation_id, "bench-customer", start))
    commands: list[CustomerMessage | BotAnswered | RequestHuman | TakeOver] = [
        CustomerMessage(text="hello"),
        BotAnswered(reply_to=1, text="Hi!"),
        RequestHuman(),
        TakeOver(agent=AGENT),
    ]
    setup = []
    for i, command in enumerate(commands):
        facts = conversation.apply(command, start + timedelta(milliseconds=i))
        setup.append(RecordBatch(summary=conversation.state.summary(), facts=facts))
    timed = []
    for i in range(replies):
        reply = AgentReply(agent=AGENT, text=f"reply {conversation_id} {i}")
        facts = conversation.apply(reply, start + timedelta(seconds=1 + i))
        timed.append(RecordBatch(summary=conversation.state.summary(), facts=facts))
    return setup, timed


async def follow(
    client: httpx.AsyncClient, conversation_id: str, token: str, arrived: dict[str, float], ready: asyncio.Event
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("GET", f"/conversations/{conversation_id}/events", headers=headers) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                ready.set()  # the backlog came: the stream is live
            if line.startswith("data: ") and '"agent"' in line:
                text = json.loads(line[6:])["entry"]["text"]
                arrived.setdefault(text, time.perf_counter())


async def level(name: str, url: str, streams: int, plan: PushPlan) -> LevelResult:
    store = Store(url)
    tokens = CustomerTokens(SECRET.encode())
    ids = [uuid.uuid4().hex for _ in range(streams)]
    per_conversation = -(-plan.replies // streams)
    played = {cid: taken_over(cid, per_conversation) for cid in ids}
    for setup, _ in played.values():
        for batch in setup:
            await asyncio.to_thread(store.record, batch)
    arrived: dict[str, float] = {}
    written: dict[str, float] = {}
    with api_process(url) as (base_url, api):
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits))
            while True:
                try:
                    await client.get("/live/mine")
                    break
                except httpx.TransportError:
                    if not api.is_running() or api.status() == psutil.STATUS_ZOMBIE:
                        raise RuntimeError("the API process stopped at start-up (see its output above)") from None
                    await asyncio.sleep(0.1)
            readies = [asyncio.Event() for _ in ids]
            followers = [
                asyncio.create_task(follow(client, cid, tokens.token(cid), arrived, ready))
                for cid, ready in zip(ids, readies, strict=True)
            ]
            await asyncio.gather(*(r.wait() for r in readies))
            await asyncio.sleep(1.0)  # let the API process settle
            cpu_before = api.cpu_times()
            order = [(cid, i) for i in range(per_conversation) for cid in ids][: plan.replies]
            started = time.perf_counter()
            for n, (cid, i) in enumerate(order):
                pause = started + n / plan.rate - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                batch = played[cid][1][i]
                entry = batch.facts[0].entry
                assert entry is not None
                written[entry.text] = time.perf_counter()
                await asyncio.to_thread(store.record, batch)
            deadline = time.perf_counter() + 30
            while len(arrived) < len(written) and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            cpu_after = api.cpu_times()
            connections = sum(1 for c in api.net_connections("tcp") if c.raddr and c.raddr.port == 5432)
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
    store.close()
    delays = [(arrived[t] - written[t]) * 1000 for t in written if t in arrived]
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return LevelResult(
        database=name,
        streams=streams,
        replies=len(written),
        delivered=len(delays),
        p50_ms=round(statistics.median(delays), 1) if delays else float("nan"),
        p99_ms=round(percentile(delays, 0.99), 1),
        max_ms=round(max(delays), 1) if delays else float("nan"),
        api_cpu_seconds_per_1000=round(cpu / max(len(delays), 1) * 1000, 2),
        api_database_connections=connections,
    )


def table(results: list[LevelResult]) -> str:
    lines = [
        "| database | open streams | replies | delivered | p50 ms | p99 ms | max ms | API CPU s/1,000 | API DB conns |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.database} | {r.streams:,} | {r.replies} | {r.delivered} | {r.p50_ms} | {r.p99_ms} | {r.max_ms} "
            f"| {r.api_cpu_seconds_per_1000} | {r.api_database_connections} |"
        )
    return "\n".join(lines) + "\n"


async def measure(plan: PushPlan) -> list[LevelResult]:
    results = []
    with tempfile.TemporaryDirectory() as base:
        async with databases(Path(base)) as found:
            for name, url in found:
                for streams in plan.streams:
                    print(f"push: {name}, {streams} open streams", file=sys.stderr)
                    results.append(await level(name, url, streams, plan))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.push", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--quick", action="store_true", help="20 streams, 40 replies per database (seconds)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    results = asyncio.run(measure(plan))
    text = "Delay from a recorded agent reply to the customer's SSE stream (another process wrote it)\n\n"
    text += table(results)
    args.output.write_text(json.dumps({"plan": asdict(plan), "levels": [asdict(r) for r in results]}, indent=2))
    args.output.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
