"""Push across processes on PostgreSQL: two real API processes (uvicorn), streams open on one,
commands through the other; the worker (in the test process) writes the facts. Each API process
listens with one connection, however many streams it serves."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager

import httpx
import psutil
import pytest
from temporalio.testing import WorkflowEnvironment

from handoff.bot import KnowledgeBaseBot
from handoff.store import POOL_OVERFLOW, POOL_SIZE
from tests.api.helpers import ALICE, bearer, ok, start
from tests.conftest import private_store
from tests.helpers import eventually
from tests.push.conftest import TEST_SECRET
from tests.push.sse_client import Stream
from worker import build_worker

STREAMS = 50
POSTGRES_PORT = 5432


@contextmanager
def api_process(env: dict[str, str]) -> Iterator[tuple[str, psutil.Process]]:
    """`uvicorn --factory handoff.api:create_app` on a socket this test bound (no port race)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    command = [sys.executable, "-m", "uvicorn", "--factory", "handoff.api:create_app", "--fd", str(sock.fileno())]
    process = subprocess.Popen(command, env=env, pass_fds=[sock.fileno()], stderr=subprocess.DEVNULL)
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


def database_connections(process: psutil.Process) -> int:
    return sum(1 for c in process.net_connections("tcp") if c.raddr and c.raddr.port == POSTGRES_PORT)


@pytest.fixture
async def two_apis(
    temporal_env: WorkflowEnvironment, bot: KnowledgeBaseBot, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, psutil.Process]]:
    task_queue = f"handoff-push2-{uuid.uuid4().hex[:8]}"
    with private_store("postgresql", tmp_path_factory) as store:
        env = {
            **os.environ,
            "HANDOFF_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
            "HANDOFF_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
            "HANDOFF_TASK_QUEUE": task_queue,
            "HANDOFF_CUSTOMER_TOKEN_SECRET": TEST_SECRET,
            "HANDOFF_API_TEMPORAL_TIMEOUT": "20",
        }
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(build_worker(temporal_env.client, task_queue, store, bot))
            (url_a, _), (url_b, process_b) = (
                stack.enter_context(api_process(env)),
                stack.enter_context(api_process(env)),
            )
            a = await stack.enter_async_context(httpx.AsyncClient(base_url=url_a, timeout=60))
            b = await stack.enter_async_context(httpx.AsyncClient(base_url=url_b, timeout=60))
            for client in (a, b):
                await eventually(_status_of(client), lambda code: code == 401, timeout=60, what="API process up")
            yield a, b, process_b


def _status_of(client: httpx.AsyncClient) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        try:
            return (await client.get("/live/mine")).status_code
        except httpx.TransportError:
            return 0

    return probe


@pytest.mark.slow
async def test_a_change_made_through_one_api_process_is_pushed_by_the_other(
    two_apis: tuple[httpx.AsyncClient, httpx.AsyncClient, psutil.Process],
) -> None:
    a, b, process_b = two_apis
    conversation = await start(a, "hello")
    cid, customer = conversation["id"], bearer(conversation["customer_token"])
    async with AsyncExitStack() as stack:
        # Many widgets following the conversation on process B, and an agent's Live tab.
        responses = [
            await stack.enter_async_context(b.stream("GET", f"/conversations/{cid}/events", headers=customer))
            for _ in range(STREAMS)
        ]
        live = Stream(await stack.enter_async_context(b.stream("GET", "/live/events", headers=ALICE)))
        await live.take(1)  # the snapshot
        await ok(a.post(f"/conversations/{cid}/request-human", headers=customer), 202)
        await ok(a.post(f"/conversations/{cid}/takeover", headers=ALICE))
        await ok(a.post(f"/conversations/{cid}/replies", json={"text": "Alice here"}, headers=ALICE))
        await ok(a.post(f"/conversations/{cid}/close", json={"outcome": "resolved"}, headers=ALICE))

        def closed(e: object) -> bool:
            return getattr(e, "name", "") == "status" and getattr(e, "data", {}).get("status") == "closed"

        streams = await asyncio.gather(*(Stream(r).take_until(closed) for r in responses))
        columns = await live.take_until(lambda e: e.data["conversation_id"] == cid and closed(e))
        # B holds its listener and at most its pool (kept and burst connections), not one per stream.
        assert database_connections(process_b) <= 1 + POOL_SIZE + POOL_OVERFLOW < STREAMS

    # "waiting" is left out when the take-over was recorded first (the API writes the take-over
    # at once, the recorder the request a moment later): a stream never moves backwards.
    for events in streams:
        seen = [e.data.get("status") or e.data["entry"]["text"] for e in events]
        assert seen[-3:] == ["human", "Alice here", "closed"]
        assert seen[-4] in ("waiting", "Hello! How can I help you today?")
        assert [e.id for e in events] == [e.id for e in streams[0]]
    assert [e.data["status"] for e in columns if e.data["conversation_id"] == cid] in (
        ["waiting", "human", "closed"],
        ["human", "closed"],
    )
