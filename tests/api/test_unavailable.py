"""Temporal down: calls that need it answer 503 promptly with the reason; the database reads
(live columns, history, statistics) keep working. The app here builds its own Temporal client
and store from settings at start-up, as `handoff api` does."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from handoff.api import create_app
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.customer_tokens import load_secret
from handoff.store import Store
from tests import ports
from tests.api.helpers import ALICE, bearer, ok, refused
from tests.helpers import new_id


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung Temporal."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port where every connection is refused at once (held by the test: see tests/ports.py)."""
    with ports.refusing_port() as port:
        yield port


@asynccontextmanager
async def app_on(port: int, data_dir: Path, timeout: float) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        temporal_address=f"127.0.0.1:{port}",
        database_url=f"sqlite:///{data_dir / 'handoff.db'}",
        customer_token_secret=SecretStr("a-secret-of-enough-length"),
        api_temporal_timeout=timeout,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://handoff.test", timeout=30) as client:
            yield client


async def check_unavailable(api: httpx.AsyncClient) -> None:
    cid = new_id()
    response = await api.post("/conversations", json={"customer_id": "c", "text": "hello"})
    assert response.status_code == 503, response.text
    assert "Temporal" in response.json()["detail"]
    assert response.headers["retry-after"] == "5"
    assert "Temporal" in await refused(api.post(f"/conversations/{cid}/takeover", headers=ALICE), 503)
    # Reads never ask Temporal (issue 8): an unknown conversation is a 404 from the database.
    await refused(api.get(f"/conversations/{cid}", headers=ALICE), 404)
    # What the database answers does not need Temporal.
    assert (await ok(api.get("/live/waiting", headers=ALICE)))["conversations"] == []
    assert (await ok(api.get("/live/mine", headers=ALICE)))["conversations"] == []
    assert (await ok(api.get("/conversations", headers=ALICE)))["conversations"] == []
    assert (await ok(api.get("/stats", headers=ALICE)))["totals"]["conversations_started"] == 0
    # Authentication is still checked first.
    await refused(api.post(f"/conversations/{cid}/takeover", headers=bearer("wrong")), 401)


async def test_an_unreachable_temporal_is_a_503_and_the_reason_is_logged_not_told(
    data_dir: Path, refusing_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Clients learn that Temporal is unavailable, not its address or gRPC details (issue 13, 6c).
    A refused connection fails at once: the generous timeout never decides this test."""
    port = refusing_port
    with caplog.at_level(logging.WARNING, logger="handoff.api"):
        async with app_on(port, data_dir, timeout=30.0) as api:
            await check_unavailable(api)
            detail = await refused(api.post("/conversations", json={"customer_id": "c", "text": "hi"}), 503)
            assert detail == "Temporal is unavailable; try again shortly"
            command = await refused(api.post(f"/conversations/{new_id()}/takeover", headers=ALICE), 503)
            assert command == "Temporal is unavailable; the command was not carried out, try again shortly"
    assert f"cannot reach Temporal at 127.0.0.1:{port}" in caplog.text


async def test_a_temporal_that_never_answers_is_a_503_within_the_timeout(
    data_dir: Path, silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="handoff.api"):
        # The server never answers, so every call runs into the timeout however busy the machine is.
        async with app_on(silent_port, data_dir, timeout=1.0) as api:
            await check_unavailable(api)
            detail = await refused(api.post("/conversations", json={"customer_id": "c", "text": "hi"}), 503)
            assert detail == "Temporal is unavailable; try again shortly"
    assert "Temporal did not answer within 1 s" in caplog.text


async def test_the_customer_token_secret_is_made_once_and_kept_next_to_the_database(data_dir: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{data_dir / 'db' / 'handoff.db'}")
    load_secret(settings, create=True)  # what `handoff up` does at start-up
    first = create_app(settings).state.services.tokens.token("abc")
    secret_file = data_dir / "db" / "customer-token.secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    # A restart (or a second API process on the same data) accepts the tokens already given out.
    assert create_app(settings).state.services.tokens.token("abc") == first
    configured = Settings(database_url=settings.database_url, customer_token_secret=SecretStr("x" * 32))
    assert create_app(configured).state.services.tokens.token("abc") != first


async def test_without_a_worker_a_conversation_still_starts_and_reads_answer_from_the_database(
    temporal_env: WorkflowEnvironment, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Signals need no worker: the conversation is durable at once and the bot answers once a
    worker polls its task queue; reads come from the database, so they answer meanwhile."""
    nobody = HandoffClient(temporal_env.client, f"no-worker-{new_id()}")
    # The real server must accept the start within the timeout even on a busy machine; the
    # reads that need a worker time out whatever it is, since no worker ever polls this queue.
    settings = Settings(customer_token_secret=SecretStr("a-secret-of-enough-length"), api_temporal_timeout=5.0)
    app = create_app(settings, client=nobody, store=Store(f"sqlite:///{data_dir / 'handoff.db'}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://handoff.test") as api:
        created = await ok(api.post("/conversations", json={"customer_id": "c", "text": "hello"}), 201)
        assert (created["status"], created["messages"]) == ("bot", [])
        cid, customer = created["id"], bearer(created["customer_token"])
        await ok(api.post(f"/conversations/{cid}/messages", json={"text": "anyone?"}, headers=customer), 202)
        seen = await ok(api.get(f"/conversations/{cid}/messages", headers=customer))
        assert (seen["status"], seen["messages"]) == ("bot", [])  # nothing recorded until a worker runs
        assert (await ok(api.get(f"/conversations/{cid}", headers=ALICE)))["status"] == "bot"
        with caplog.at_level(logging.WARNING, logger="handoff.api"):
            detail = await refused(api.post(f"/conversations/{cid}/takeover", headers=ALICE), 503)
        assert "with a worker polling 'no-worker-" in caplog.text  # the hint is for the operators
        assert "may still take effect" in detail
