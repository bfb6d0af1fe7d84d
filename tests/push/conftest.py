"""The API with push, served by a real uvicorn server, on a store (each backend) and worker of the
test's own, so the event ids and columns a test sees are its own conversations' only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from handoff.api import create_app
from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.store import Store
from tests.security.server import serving
from worker import build_worker

TEST_SECRET = "test-secret-for-customer-tokens"


@dataclass
class PushApi:
    api: httpx.AsyncClient
    store: Store
    task_queue: str


@pytest.fixture
async def push_api(
    temporal_env: WorkflowEnvironment, bot: KnowledgeBaseBot, empty_store: Store
) -> AsyncIterator[PushApi]:
    task_queue = f"handoff-push-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=task_queue, customer_token_secret=SecretStr(TEST_SECRET), api_temporal_timeout=20.0)
    app = create_app(settings, client=HandoffClient(temporal_env.client, task_queue, empty_store), store=empty_store)
    async with (
        build_worker(temporal_env.client, task_queue, empty_store, bot),
        serving(app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=60) as api,
    ):
        yield PushApi(api, empty_store, task_queue)
