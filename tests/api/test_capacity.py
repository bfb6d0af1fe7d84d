"""Issue 10: agents' status and capacity through the API, on SQLite and PostgreSQL (the session's
store and worker; agents of the test's own, so no other test's conversations count for them)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from handoff import presence
from handoff.agents import AgentDirectory
from handoff.api import create_app
from handoff.availability import AgentStatus
from handoff.client import AgentUnavailable, HandoffClient, InvalidCommand
from handoff.config import Settings
from handoff.models import Agent, TakeOver, TimerSettings
from handoff.store import Store
from tests.api.helpers import bearer, ok, refused, start
from tests.helpers import eventually, new_id
from workflows.conversation import ConversationWorkflow

TEAM = """
[[agents]]
id = "{p}-ben"
name = "Ben Stone"
token = "{p}-ben-long-random-token"
max_conversations = 3

[[agents]]
id = "{p}-cleo"
name = "Cleo Park"
token = "{p}-cleo-long-random-token"
max_conversations = 1

[[agents]]
id = "{p}-dev"
name = "Dev Rao"
token = "{p}-dev-long-random-token"
"""


@dataclass
class Team:
    api: httpx.AsyncClient
    store: Store
    handoff: HandoffClient
    prefix: str
    settings: Settings

    def token(self, who: str) -> dict[str, str]:
        return bearer(f"{self.prefix}-{who}-long-random-token")

    def id(self, who: str) -> str:
        return f"{self.prefix}-{who}"

    async def member(self, who: str) -> dict[str, object]:
        listed = await ok(self.api.get("/agents", headers=self.token("dev")))
        member: dict[str, object] = next(m for m in listed["agents"] if m["agent"]["id"] == self.id(who))
        return member


@pytest.fixture
async def team(tmp_path: Path, handoff: HandoffClient, store: Store) -> AsyncIterator[Team]:
    prefix = uuid.uuid4().hex[:8]
    path = tmp_path / "team.toml"
    path.write_text(TEAM.format(p=prefix))
    settings = Settings(
        task_queue=handoff.task_queue,
        customer_token_secret=SecretStr("test-secret-for-customer-tokens"),
        api_temporal_timeout=20.0,
        agents_file=path,
        agent_capacity=4,
    )
    # A client of its own, counting this team's capacities (as the API's own client does).
    capacities = AgentDirectory.from_file(path).capacities(settings.agent_capacity)
    client = HandoffClient(handoff.temporal, handoff.task_queue, store, capacities=capacities)
    app = create_app(settings, client=client, store=store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://handoff.test", timeout=60) as api,
    ):
        yield Team(api, store, client, prefix, settings)


async def conversations(api: httpx.AsyncClient, count: int) -> list[str]:
    started = await asyncio.gather(*(start(api, "hello", f"customer-{i}") for i in range(count)))
    return [c["id"] for c in started]


async def test_every_agent_is_offline_until_they_set_a_status_which_survives_a_restart(team: Team) -> None:
    listed = await ok(team.api.get("/agents", headers=team.token("ben")))
    mine = {m["agent"]["id"]: m for m in listed["agents"]}
    assert [mine[team.id(w)]["status"] for w in ("ben", "cleo", "dev")] == ["offline"] * 3
    assert [mine[team.id(w)]["capacity"] for w in ("ben", "cleo", "dev")] == [3, 1, 4]
    assert mine[team.id("ben")]["holding"] == 0

    changed = await ok(team.api.put("/agents/me/status", json={"status": "away"}, headers=team.token("ben")))
    assert changed["status"] == "away"
    assert (await team.member("ben"))["status"] == "away"
    # An unknown status is refused with the reason; no token, no answer.
    assert "online" in await refused(
        team.api.put("/agents/me/status", json={"status": "busy"}, headers=team.token("ben")), 422
    )
    await refused(team.api.get("/agents"), 401)

    # A new API process on the same database (a restart) knows the status.
    app = create_app(
        team.settings, client=HandoffClient(team.handoff.temporal, team.handoff.task_queue), store=team.store
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://handoff.test") as api,
    ):
        listed = await ok(api.get("/agents", headers=team.token("dev")))
        assert next(m for m in listed["agents"] if m["agent"]["id"] == team.id("ben"))["status"] == "away"


async def test_twenty_concurrent_take_overs_by_an_agent_of_capacity_three_give_exactly_three(team: Team) -> None:
    ids = await conversations(team.api, 20)
    answers = await asyncio.gather(
        *(team.api.post(f"/conversations/{c}/takeover", headers=team.token("ben")) for c in ids)
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 3 + [409] * 17, [a.text for a in answers]
    assert {a.json()["detail"] for a in answers if a.status_code == 409} == {"Ben Stone is at capacity (3 of 3)"}
    taken = [c for c, a in zip(ids, answers, strict=True) if a.status_code == 200]
    ben = await team.member("ben")
    assert (ben["holding"], ben["status"]) == (3, "online")  # a manual take-over makes them online
    assert presence.slots(team.store) == [] or all(s.agent_id != team.id("ben") for s in presence.slots(team.store))

    # A hand-back frees a slot at once; the next take-over gets it, and the one after is refused.
    await ok(team.api.post(f"/conversations/{taken[0]}/hand-back", headers=team.token("ben")))
    rest = [c for c in ids if c not in taken]
    await ok(team.api.post(f"/conversations/{rest[0]}/takeover", headers=team.token("ben")))
    await refused(team.api.post(f"/conversations/{rest[1]}/takeover", headers=team.token("ben")), 409)
    # Taking again a conversation they hold changes nothing and is not refused.
    await ok(team.api.post(f"/conversations/{rest[0]}/takeover", headers=team.token("ben")))
    # A close frees a slot too.
    await ok(team.api.post(f"/conversations/{taken[1]}/close", json={"outcome": "resolved"}, headers=team.token("ben")))
    await ok(team.api.post(f"/conversations/{rest[1]}/takeover", headers=team.token("ben")))
    assert (await team.member("ben"))["holding"] == 3


async def test_a_transfer_needs_an_online_agent_with_a_free_slot(team: Team) -> None:
    first, second, third = await conversations(team.api, 3)
    for c in (first, second):
        await ok(team.api.post(f"/conversations/{c}/takeover", headers=team.token("dev")))
    to_cleo = {"agent_id": team.id("cleo")}
    detail = await refused(
        team.api.post(f"/conversations/{first}/transfer", json=to_cleo, headers=team.token("dev")), 409
    )
    assert detail == "Cleo Park is offline: a conversation can only be transferred to an agent who is online"
    await ok(team.api.put("/agents/me/status", json={"status": "online"}, headers=team.token("cleo")))
    moved = await ok(team.api.post(f"/conversations/{first}/transfer", json=to_cleo, headers=team.token("dev")))
    assert moved["agent"]["id"] == team.id("cleo")
    assert [(await team.member(w))["holding"] for w in ("cleo", "dev")] == [1, 1]
    detail = await refused(
        team.api.post(f"/conversations/{second}/transfer", json=to_cleo, headers=team.token("dev")), 409
    )
    assert detail == "Cleo Park is at capacity (1 of 1)"
    # Cleo is still online, at capacity: a manual take-over is refused for the same reason.
    assert "at capacity (1 of 1)" in await refused(
        team.api.post(f"/conversations/{third}/takeover", headers=team.token("cleo")), 409
    )
    # Returning it to the queue frees her slot at once.
    await ok(team.api.post(f"/conversations/{first}/release", headers=team.token("cleo")))
    assert (await team.member("cleo"))["holding"] == 0
    await ok(team.api.post(f"/conversations/{second}/transfer", json=to_cleo, headers=team.token("dev")))


async def test_the_python_client_counts_the_same_and_heals_a_slot_whose_outcome_was_lost(team: Team) -> None:
    ids = await conversations(team.api, 8)
    ben = team.handoff  # the API's own client: capacities from the team's agents file
    agent = Agent(id=team.id("ben"), name="Ben Stone")
    outcomes = await asyncio.gather(*(ben.take_over(c, agent) for c in ids[:6]), return_exceptions=True)
    refusals = [o for o in outcomes if isinstance(o, AgentUnavailable)]
    assert len(refusals) == 3 and {r.message for r in refusals} == {"Ben Stone is at capacity (3 of 3)"}
    for c, o in zip(ids[:6], outcomes, strict=True):
        if not isinstance(o, Exception):
            await ben.hand_back(c, agent)
    await eventually(lambda: team.member("ben"), lambda m: m["holding"] == 0, what="hand-backs recorded")

    # A take-over whose caller died after Temporal applied it, before anything was written: its
    # slot counts until it is healed from the update's outcome, which writes the facts.
    long_ago = datetime.now(UTC) - presence.STALE_SLOT * 2
    assert await asyncio.to_thread(presence.reserve, team.store, agent, ids[6], "lost-update-1", 3, now=long_ago)
    await ben.handle(ids[6]).execute_update(ConversationWorkflow.take_over, TakeOver(agent=agent), id="lost-update-1")
    # And one whose update never reached Temporal.
    assert await asyncio.to_thread(presence.reserve, team.store, agent, ids[7], "lost-update-2", 3, now=long_ago)
    assert presence.held_counts(team.store)[agent.id] == 2
    assert await ben.heal_slots(agent.id) == 2
    assert not [s for s in presence.slots(team.store) if s.agent_id == agent.id]
    assert (await team.member("ben"))["holding"] == 1
    assert presence.held_counts(team.store)[agent.id] == 1


async def test_the_python_client_sets_and_lists_statuses(team: Team) -> None:
    client = team.handoff
    cleo = Agent(id=team.id("cleo"), name="Cleo Park")
    dev = Agent(id=team.id("dev"), name="Dev Rao")
    assert (await client.set_status(cleo, "online")).status is AgentStatus.ONLINE
    with pytest.raises(InvalidCommand, match="unknown status 'busy'"):
        await client.set_status(cleo, "busy")
    listed = await client.agents([cleo, dev])
    assert [(a.agent.name, a.status, a.holding, a.capacity) for a in listed] == [
        ("Cleo Park", AgentStatus.ONLINE, 0, 1),
        ("Dev Rao", AgentStatus.OFFLINE, 0, 4),
    ]
    (cid,) = await conversations(team.api, 1)
    await client.take_over(cid, cleo)
    with pytest.raises(AgentUnavailable, match="Cleo Park is at capacity \\(1 of 1\\)"):
        (other,) = await conversations(team.api, 1)
        await client.take_over(other, cleo)
    work = {w.agent.id: w for w in await client.agent_stats([cleo, dev])}
    assert work[cleo.id].manual_assignments == 1 and work[cleo.id].online_seconds > 0
    assert work[dev.id].online_seconds == 0 and work[dev.id].occupancy is None


async def test_a_timer_that_returns_a_conversation_to_the_queue_frees_the_slot(team: Team) -> None:
    """HANDOFF_FIRST_REPLY_SLA_RETURN: the workflow's own timer returns it; the count follows the row."""
    timers = TimerSettings(first_reply_sla=timedelta(seconds=1), first_reply_sla_return=True)
    client = HandoffClient(
        team.handoff.temporal, team.handoff.task_queue, team.store, timers, capacities=team.handoff.capacities
    )
    cleo = Agent(id=team.id("cleo"), name="Cleo Park")
    first, second = new_id(), new_id()
    for cid in (first, second):
        await client.start_or_message(cid, "customer-timer", "hello")
    await client.take_over(first, cleo)
    with pytest.raises(AgentUnavailable):
        await client.take_over(second, cleo)
    await eventually(lambda: team.member("cleo"), lambda m: m["holding"] == 0, what="returned by the timer")
    await client.take_over(second, cleo)
    assert (await team.member("cleo"))["holding"] == 1
