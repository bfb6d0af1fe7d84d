"""Security tests: the session's real Temporal dev server, with a private worker and SQLite
store per test module (so conversations made here never show in other tests' columns), the
API served over real HTTP in-process, and a Temporal client WITHOUT the codec to see what
Temporal itself holds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.store import Store
from worker import build_worker

CODEC_TOKEN = "operator-codec-token-for-tests"
CUSTOMER_TOKEN_SECRET = "customer-token-secret-for-security-tests"


@dataclass
class Engine:
    handoff: HandoffClient
    store: Store


@pytest.fixture(scope="module")
async def private(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Engine]:
    """A worker of our own on a fresh task queue and store, on the session's dev server."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('security') / 'handoff.db'}")
    task_queue = f"security-{uuid.uuid4().hex[:8]}"
    try:
        async with build_worker(temporal_env.client, task_queue, store, KnowledgeBaseBot.from_file()):
            yield Engine(HandoffClient(temporal_env.client, task_queue), store)
    finally:
        store.close()


def api_settings(task_queue: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "task_queue": task_queue,
        "database_url": f"sqlite:///{data_dir / 'unused.db'}",
        "customer_token_secret": SecretStr(CUSTOMER_TOKEN_SECRET),
        "codec_token": SecretStr(CODEC_TOKEN),
        "api_temporal_timeout": 20.0,
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def raw_temporal(temporal_env: WorkflowEnvironment) -> Client:
    """What anyone with access to the Temporal server sees: payloads as stored, undecoded."""
    return Client(temporal_env.client.service_client, namespace=temporal_env.client.namespace)
