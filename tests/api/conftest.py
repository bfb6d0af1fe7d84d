"""The API under test: `create_app` on the session's real Temporal dev server, real worker and
real store (SQLite, then PostgreSQL: see tests/conftest.py), called through real HTTP requests
(httpx over ASGI, or a real uvicorn server for `served_api`) with the demo agents; `own_api`
gives a test a store and worker of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from handoff.api import create_app
from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.customer_tokens import CustomerTokens
from handoff.store import Store
from tests.security.server import serving
from worker import build_worker

TEST_SECRET = "test-secret-for-customer-tokens"


@pytest.fixture(scope="session")
def api_settings(handoff: HandoffClient) -> Settings:
    # A generous Temporal timeout: the shared test machine is busy, and no test here waits on it.
    return Settings(
        task_queue=handoff.task_queue,
        customer_token_secret=SecretStr(TEST_SECRET),
        api_temporal_timeout=20.0,
    )


@pytest.fixture(scope="session")
def app(api_settings: Settings, handoff: HandoffClient, store: Store) -> FastAPI:
    return create_app(api_settings, client=handoff, store=store)


@pytest.fixture(scope="session")
def tokens() -> CustomerTokens:
    """The app's token maker, to forge a valid token for a conversation that does not exist."""
    return CustomerTokens(TEST_SECRET.encode())


@pytest.fixture(scope="session")
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://handoff.test", timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
async def served_api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The same app behind a real uvicorn server (HTTP over TCP, uvicorn's parsing, headers and
    lifespan), on a socket bound to port 0 and held until uvicorn takes it: no port race."""
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        yield client


@pytest.fixture
async def own_api(
    temporal_env: WorkflowEnvironment, bot: KnowledgeBaseBot, empty_store: Store
) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    """The API on a store (each backend) and worker of the test's own: for tests that count rows
    or insert some, so no other test's conversations, late writes or inventions are seen."""
    task_queue = f"handoff-own-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=task_queue, customer_token_secret=SecretStr(TEST_SECRET), api_temporal_timeout=20.0)
    handoff = HandoffClient(temporal_env.client, task_queue, empty_store)
    app = create_app(settings, client=handoff, store=empty_store)
    async with build_worker(temporal_env.client, task_queue, empty_store, bot):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://handoff.test", timeout=60) as client:
            yield client, empty_store
