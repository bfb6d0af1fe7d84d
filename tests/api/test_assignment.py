"""Issue 10: automatic assignment (HANDOFF_ASSIGNMENT=auto) and offline returns through the API,
on a store and worker of the test's own (each backend): the assigner serves the whole Waiting
column, so no other test's conversations may be in it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from handoff import presence
from handoff.agents import AgentDirectory
from handoff.api import create_app
from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.store import Store
from tests.api.helpers import bearer, ok, start
from tests.helpers import eventually
from worker import build_worker

TEAM = """
[[agents]]
id = "ana"
name = "Ana Lima"
token = "ana-long-random-token-for-tests"
max_conversations = 2

[[agents]]
id = "ben"
name = "Ben Stone"
token = "ben-long-random-token-for-tests"
max_conversations = 1
"""


@dataclass
class Desk:
    api: httpx.AsyncClient
    store: Store

    @staticmethod
    def token(who: str) -> dict[str, str]:
        return bearer(f"{who}-long-random-token-for-tests")

    async def status(self, who: str, status: str) -> None:
        await ok(self.api.put("/agents/me/status", json={"status": status}, headers=self.token(who)))

    async def waiting_for_a_person(self, customer: str) -> str:
        created = await start(self.api, "hello", customer)
        await ok(
            self.api.post(f"/conversations/{created['id']}/request-human", headers=bearer(created["customer_token"])),
            202,
        )
        await eventually(lambda: self.conversation(created["id"]), lambda c: c["status"] != "bot", what="waiting")
        return str(created["id"])

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        return await ok(self.api.get(f"/conversations/{conversation_id}", headers=self.token("ana")))

    async def held_by(self, conversation_id: str, who: str | None) -> dict[str, Any]:
        def holds(c: dict[str, Any]) -> bool:
            holder = c["agent"]["id"] if c["agent"] else None
            return holder == who and c["status"] == ("human" if who else "waiting")

        return await eventually(lambda: self.conversation(conversation_id), holds, what=f"held by {who}")

    async def holding(self) -> dict[str, int]:
        listed = await ok(self.api.get("/agents", headers=self.token("ana")))
        return {m["agent"]["id"]: m["holding"] for m in listed["agents"]}


@pytest.fixture
async def desk(
    temporal_env: WorkflowEnvironment, bot: KnowledgeBaseBot, empty_store: Store, tmp_path: Path
) -> AsyncIterator[Desk]:
    path = tmp_path / "team.toml"
    path.write_text(TEAM)
    task_queue = f"handoff-auto-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        task_queue=task_queue,
        customer_token_secret=SecretStr("test-secret-for-customer-tokens"),
        api_temporal_timeout=20.0,
        agents_file=path,
        assignment="auto",
        offline_returns=True,
    )
    capacities = AgentDirectory.from_file(path).capacities(settings.agent_capacity)
    client = HandoffClient(temporal_env.client, task_queue, empty_store, capacities=capacities)
    app = create_app(settings, client=client, store=empty_store)
    async with (
        build_worker(temporal_env.client, task_queue, empty_store, bot),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://handoff.test", timeout=60) as api,
    ):
        yield Desk(api, empty_store)


def notes(conversation: dict[str, Any]) -> list[str]:
    return [e["text"] for e in conversation["transcript"] if e["kind"] == "system"]


async def test_waiting_conversations_go_to_online_agents_with_free_slots_oldest_first(desk: Desk) -> None:
    first, second, third, fourth = [await desk.waiting_for_a_person(f"customer-{i}") for i in range(4)]
    # Nobody is online: they wait.
    assert (await desk.conversation(first))["status"] == "waiting"

    await desk.status("ana", "online")  # two free slots: the two oldest
    for c in (first, second):
        held = await desk.held_by(c, "ana")
        assert notes(held)[-1] == "Ana Lima joined the conversation (assigned automatically)"
    await desk.status("ben", "online")
    await desk.held_by(third, "ben")
    assert (await desk.conversation(fourth))["status"] == "waiting"

    # A hand-back frees a slot: the next in line gets it at once.
    await ok(desk.api.post(f"/conversations/{first}/hand-back", headers=desk.token("ana")))
    await desk.held_by(fourth, "ana")

    # Ben goes offline (HANDOFF_OFFLINE_RETURNS=true): his conversation is back at the front of
    # the queue with a note, and waits, as Ana is full; her close frees a slot, and she gets it.
    await desk.status("ben", "offline")
    back = await desk.held_by(third, None)
    assert "Ben Stone went offline; the conversation is back in the queue" in notes(back)
    await ok(desk.api.post(f"/conversations/{second}/close", json={"outcome": "resolved"}, headers=desk.token("ana")))
    await desk.held_by(third, "ana")
    assert await desk.holding() == {"ana": 2, "ben": 0}

    # Manual take-over still works in auto: Ben (offline) takes the bot's conversation back.
    await ok(desk.api.post(f"/conversations/{first}/takeover", headers=desk.token("ben")))
    assert await desk.holding() == {"ana": 2, "ben": 1}
    assert [s for s in presence.slots(desk.store)] == []
    counts = presence.assignment_counts(desk.store)
    assert counts == {"ana": {"automatic": 4, "manual": 0}, "ben": {"automatic": 1, "manual": 1}}

    # The per-agent statistics: time online, occupancy, assignments automatic and manual.
    work = await ok(desk.api.get("/stats/agents", headers=desk.token("ana")))
    by_id = {row["agent"]["id"]: row for row in work["agents"]}
    assert by_id["ana"]["assignments"] == {"automatic": 4, "manual": 0}
    assert by_id["ben"]["assignments"] == {"automatic": 1, "manual": 1}
    for row in by_id.values():
        assert row["online_seconds"] > 0 and row["held_seconds"] > 0
        assert row["occupancy"] == pytest.approx(
            row["held_seconds"] / (row["capacity"] * row["online_seconds"]), abs=0.01
        )
    # Ana never held more than her capacity while online.
    assert 0 < by_id["ana"]["occupancy"] <= 1
    # Nothing before the window.
    empty = await ok(desk.api.get("/stats/agents", params={"until": "2000-01-01T00:00:00Z"}, headers=desk.token("ana")))
    assert [(r["online_seconds"], r["held_seconds"], r["occupancy"]) for r in empty["agents"]] == [(0, 0, None)] * 2
