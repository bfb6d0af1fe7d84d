"""Key rotation with real workers: a conversation begun under one key carries on under the
next, and a worker missing a key stalls the conversation with a clear error instead of
losing anything, until the key is back."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient, workflow_id
from handoff.codec import EncryptionCodec, UnknownEncryptionKey
from handoff.config import Settings
from handoff.converter import data_converter
from handoff.models import Outcome, Status
from handoff.store import Store
from tests.encryption_keys import NEXT_KEY, NEXT_KEY_ID, TEST_KEY_ID, TEST_KEYS
from tests.helpers import ALICE, customer_view, eventually, new_id, wait_for_entries
from tests.security.history import history_payloads, key_ids
from worker import build_worker

OLD = TEST_KEYS  # what the conversation starts under
ROTATED = f"{NEXT_KEY},{TEST_KEYS}"  # the new key first, the old one still known
NEW_ONLY = NEXT_KEY  # the old key dropped too early


def keys(value: str) -> Settings:
    return Settings(encryption_keys=SecretStr(value))


class Deployment:
    """Clients and workers of one task queue, all configured with the same keys (as one deploy)."""

    def __init__(self, env: WorkflowEnvironment, store: Store, task_queue: str) -> None:
        self.env, self.store, self.task_queue = env, store, task_queue

    def client(self, key_config: str) -> HandoffClient:
        temporal = Client(
            self.env.client.service_client,
            namespace=self.env.client.namespace,
            data_converter=data_converter(keys(key_config)),
        )
        return HandoffClient(temporal, self.task_queue)

    @asynccontextmanager
    async def running(self, key_config: str) -> AsyncIterator[HandoffClient]:
        handoff = self.client(key_config)
        # No workflow cache, hence no sticky queue: the next worker gets the conversation's next
        # task at once instead of after the old worker's sticky queue times out (5 s); every
        # task then replays the whole history, i.e. decrypts every payload written so far.
        bot = KnowledgeBaseBot.from_file()
        async with build_worker(handoff.temporal, self.task_queue, self.store, bot, max_cached_workflows=0):
            yield handoff


@pytest.fixture
def deployment(temporal_env: WorkflowEnvironment, tmp_path: Path) -> Iterator[Deployment]:
    store = Store(f"sqlite:///{tmp_path / 'handoff.db'}")
    yield Deployment(temporal_env, store, f"rotation-{uuid.uuid4().hex[:8]}")
    store.close()


async def test_a_conversation_started_under_the_old_key_continues_after_rotation(deployment: Deployment) -> None:
    cid = new_id()
    async with deployment.running(OLD) as h:
        await h.start_or_message(cid, "customer-r", "hello before the rotation")
        await wait_for_entries(h, cid, 2)
    async with deployment.running(ROTATED) as h:
        await h.send_message(cid, "and after it")
        await wait_for_entries(h, cid, 4)
        await h.take_over(cid, ALICE)
        await h.reply(cid, ALICE, "Hi, still here.")
        final = await h.close(cid, ALICE, Outcome.RESOLVED)
        seen = customer_view(await h.transcript(cid))
    assert final.status is Status.CLOSED
    assert [text for kind, text in seen if kind != "bot"] == [
        "hello before the rotation",
        "and after it",
        "Hi, still here.",
    ]
    raw = await deployment.client(ROTATED).temporal.get_workflow_handle(workflow_id(cid)).fetch_history()
    assert key_ids(raw) == {TEST_KEY_ID, NEXT_KEY_ID}
    # Once the old key is dropped, its payloads fail clearly, naming the missing key id.
    codec = EncryptionCodec.from_settings(keys(NEW_ONLY))
    with pytest.raises(UnknownEncryptionKey, match=f"key id '{TEST_KEY_ID}', which is not configured here"):
        await codec.decode([p for _, p in history_payloads(raw)])


async def test_a_worker_without_the_key_stalls_the_conversation_clearly_and_loses_nothing(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    cid = new_id()
    async with deployment.running(OLD) as h:
        await h.start_or_message(cid, "customer-r", "hello before the rotation")
        await wait_for_entries(h, cid, 2)
    # A deploy that dropped the old key too early: its worker cannot read the history.
    with caplog.at_level(logging.WARNING):
        async with deployment.running(NEW_ONLY) as h:
            await h.send_message(cid, "sent while the key is missing")
            raw = deployment.client(ROTATED).temporal.get_workflow_handle(workflow_id(cid))
            history = await eventually(
                raw.fetch_history,
                lambda hist: any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in hist.events),
            )
    failed = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    # The failure Temporal shows is encrypted too; decoded by an operator's client it names the key.
    error = await deployment.client(ROTATED).temporal.data_converter.decode_failure(
        failed.workflow_task_failed_event_attributes.failure
    )
    assert f"key id '{TEST_KEY_ID}', which is not configured here" in str(error)
    logged = [r.getMessage() + logging.Formatter().formatException(r.exc_info) for r in caplog.records if r.exc_info]
    assert any(f"key id '{TEST_KEY_ID}'" in line for line in logged)
    # The key is back (the deploy is fixed): the conversation carries on with nothing lost.
    async with deployment.running(ROTATED) as h:
        entries = await wait_for_entries(h, cid, 4)
        await h.take_over(cid, ALICE)
        await h.close(cid, ALICE, Outcome.NOT_RESOLVED)
    customer_texts = [text for kind, text in customer_view(entries) if kind == "customer"]
    assert customer_texts == ["hello before the rotation", "sent while the key is missing"]
