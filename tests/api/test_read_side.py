"""Issue 8: the database is the read side. Every read the widget and the agent UI make is
served from the project database, so it answers with the Temporal server stopped, and an agent
command is visible to the next read at once (the API writes what Temporal applied)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from handoff.api import create_app
from handoff.bot import KnowledgeBaseBot
from handoff.config import Settings
from handoff.devserver import DevServer
from handoff.store import Store
from tests.api.conftest import TEST_SECRET
from tests.api.helpers import ALICE, bearer, ok, refused, texts
from tests.faults.harness import connect, file_dev_server
from tests.helpers import eventually
from worker import build_worker


@pytest.fixture
async def own_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    """A dev server of the test's own, which it stops."""
    async with file_dev_server(tmp_path_factory.mktemp("read-side-temporal")) as server:
        yield server


async def messages(api: httpx.AsyncClient, cid: str, customer: dict[str, str]) -> dict[str, Any]:
    return await ok(api.get(f"/conversations/{cid}/messages", headers=customer))


async def test_every_read_answers_from_the_database_with_the_temporal_server_stopped(
    own_server: DevServer, bot: KnowledgeBaseBot, empty_store: Store
) -> None:
    task_queue = f"read-side-{uuid.uuid4().hex[:8]}"
    handoff = await connect(own_server, task_queue, empty_store)
    settings = Settings(task_queue=task_queue, customer_token_secret=SecretStr(TEST_SECRET), api_temporal_timeout=8.0)
    app = create_app(settings, client=handoff, store=empty_store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://handoff.test", timeout=60) as api:
        async with build_worker(handoff.temporal, task_queue, empty_store, bot):
            created = await ok(api.post("/conversations", json={"customer_id": "c-1", "text": "Hello"}), 201)
            cid, customer = created["id"], bearer(created["customer_token"])
            # The create waited for the bot's answer in the database, not by querying the workflow.
            assert [m["kind"] for m in created["messages"]] == ["customer", "bot"]
            await ok(api.post(f"/conversations/{cid}/request-human", headers=customer), 202)
            await eventually(
                lambda: ok(api.get("/live/waiting", headers=ALICE)),
                lambda column: cid in [c["conversation_id"] for c in column["conversations"]],
            )
            await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))
            # An agent command is in the database when its call answers: the next read shows it.
            assert (await messages(api, cid, customer))["status"] == "human"
            await ok(api.post(f"/conversations/{cid}/replies", json={"text": "Alice here."}, headers=ALICE))
            assert texts((await messages(api, cid, customer))["messages"])[-1] == "Alice here."
            await ok(api.post(f"/conversations/{cid}/messages", json={"text": "Thanks!"}, headers=customer), 202)
            # A customer message reaches the agent's read through the workflow's prompt recording.
            await eventually(
                lambda: ok(api.get(f"/conversations/{cid}", headers=ALICE)),
                lambda detail: texts(detail["transcript"])[-1:] == ["Thanks!"],
            )
        await asyncio.to_thread(own_server.stop)

        before = datetime.now().astimezone()
        seen = await messages(api, cid, customer)
        assert seen["status"] == "human"
        assert texts(seen["messages"])[-2:] == ["Alice here.", "Thanks!"]
        assert "system" not in [m["kind"] for m in seen["messages"]]
        assert datetime.fromisoformat(seen["as_of"]) >= before
        detail = await ok(api.get(f"/conversations/{cid}", headers=ALICE))
        assert (detail["status"], detail["agent"]["id"], detail["live"]) == ("human", "alice", False)
        assert "Alice Martin joined the conversation" in texts(detail["transcript"], "system")
        assert datetime.fromisoformat(detail["as_of"]) >= before
        assert texts((await messages(api, cid, customer))["messages"]) == texts(seen["messages"])
        mine = await ok(api.get("/live/mine", headers=ALICE))
        assert [c["conversation_id"] for c in mine["conversations"]] == [cid]
        assert (await ok(api.get("/live/waiting", headers=ALICE)))["conversations"] == []
        history = await ok(api.get("/conversations", headers=ALICE))
        assert [c["conversation_id"] for c in history["conversations"]] == [cid]
        # Commands still need Temporal, and say so.
        reply = api.post(f"/conversations/{cid}/replies", json={"text": "still there?"}, headers=ALICE)
        assert (await refused(reply, 503)).startswith("Temporal is unavailable")
