"""Issue 9 through the HTTP API: transfer, back to the queue, internal notes, reopening, ratings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from handoff.api import create_app
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.models import Status, TimerSettings
from handoff.store import Store
from tests.api.helpers import ALICE, BOB, bearer, ids, ok, refused, seen_eventually, start, texts, transcript
from tests.helpers import eventually


async def held_by_alice(api: httpx.AsyncClient) -> dict[str, Any]:
    created = await start(api)
    await ok(api.post(f"/conversations/{created['id']}/request-human", headers=bearer(created["customer_token"])), 202)
    await eventually(
        lambda: api.get(f"/conversations/{created['id']}", headers=ALICE),
        lambda r: r.json()["status"] == "waiting",
    )
    await ok(api.post(f"/conversations/{created['id']}/takeover", headers=ALICE))
    return created


async def customer_sees(api: httpx.AsyncClient, created: dict[str, Any]) -> list[str]:
    body = await ok(api.get(f"/conversations/{created['id']}/messages", headers=bearer(created["customer_token"])))
    return [m["text"] for m in body["messages"]]


async def closed_in_database(store: Store, conversation_id: str) -> None:
    await eventually(lambda: _summary(store, conversation_id), lambda s: s is not None and s.status is Status.CLOSED)


async def _summary(store: Store, conversation_id: str) -> Any:
    return store.summary(conversation_id)


async def test_transfer_then_release_with_internal_notes_the_customer_never_sees(api: httpx.AsyncClient) -> None:
    created = await held_by_alice(api)
    cid = created["id"]
    summary = await ok(
        api.post(f"/conversations/{cid}/transfer", json={"agent_id": "bob", "note": "wants a refund"}, headers=ALICE)
    )
    assert summary["agent"] == {"id": "bob", "name": "Bob Stone"}
    await seen_eventually(lambda: ok(api.get("/live/mine", headers=BOB)), lambda column: cid in ids(column))
    assert cid not in ids(await ok(api.get("/live/mine", headers=ALICE)))
    await ok(api.post(f"/conversations/{cid}/notes", json={"text": "refund approved"}, headers=ALICE))

    summary = await ok(api.post(f"/conversations/{cid}/release", headers=BOB))
    assert summary["status"] == "waiting" and summary["agent"] is None
    await seen_eventually(lambda: ok(api.get("/live/waiting", headers=ALICE)), lambda column: cid in ids(column))

    entries = await transcript(api, cid)
    assert texts(entries, "internal") == ["wants a refund", "refund approved"]
    assert texts(entries, "system")[-2:] == [
        "Alice Martin transferred the conversation to Bob Stone",
        "Bob Stone returned the conversation to the queue",
    ]
    seen = await customer_sees(api, created)
    assert "wants a refund" not in seen and "refund approved" not in seen
    assert not any("transferred" in text for text in seen)


async def test_bad_transfers_release_and_notes_are_refused_and_change_nothing(api: httpx.AsyncClient) -> None:
    created = await held_by_alice(api)
    cid = created["id"]
    before = await transcript(api, cid)
    transfer = f"/conversations/{cid}/transfer"
    assert "no agent" in await refused(api.post(transfer, json={"agent_id": "nobody"}, headers=ALICE), 409)
    assert "already holds" in await refused(api.post(transfer, json={"agent_id": "alice"}, headers=ALICE), 409)
    assert "Alice Martin" in await refused(api.post(transfer, json={"agent_id": "bob"}, headers=BOB), 403)
    await refused(api.post(transfer, json={"agent_id": "bob", "note": ""}, headers=ALICE), 422)
    await refused(api.post(f"/conversations/{cid}/release", headers=BOB), 403)
    await refused(api.post(f"/conversations/{cid}/notes", json={"text": " "}, headers=BOB), 422)
    await refused(api.post(f"/conversations/{cid}/notes", json={"text": "x"}), 401)
    assert await transcript(api, cid) == before
    detail = await ok(api.get(f"/conversations/{cid}", headers=ALICE))
    assert detail["agent"]["id"] == "alice"

    assert "timers" in await refused(
        api.post(f"/conversations/{cid}/close", json={"outcome": "inactive"}, headers=ALICE), 422
    )
    await ok(api.post(f"/conversations/{cid}/close", json={"outcome": "resolved"}, headers=ALICE))
    await refused(api.post(f"/conversations/{cid}/notes", json={"text": "too late"}, headers=BOB), 409)


async def test_a_message_to_a_closed_conversation_starts_a_new_linked_one(api: httpx.AsyncClient, store: Store) -> None:
    created = await held_by_alice(api)
    old = created["id"]
    await ok(api.post(f"/conversations/{old}/close", json={"outcome": "resolved"}, headers=ALICE))
    await closed_in_database(store, old)

    customer = bearer(created["customer_token"])
    reopened = await ok(api.post(f"/conversations/{old}/messages", json={"text": "hello again"}, headers=customer), 201)
    assert reopened["previous_conversation_id"] == old and reopened["id"] != old
    assert reopened["messages"][0]["text"] == "hello again"
    new = await ok(api.get(f"/conversations/{reopened['id']}", headers=ALICE))
    assert new["status"] == "bot" and new["previous_conversation_id"] == old
    assert "hello" in texts(new["previous_transcript"], "customer")
    # The new token opens the new conversation; the closed one is as it was.
    await ok(api.get(f"/conversations/{reopened['id']}/messages", headers=bearer(reopened["customer_token"])))
    assert (await ok(api.get(f"/conversations/{old}", headers=ALICE)))["outcome"] == "resolved"


async def test_a_customer_rates_once_in_range_and_in_time(
    api: httpx.AsyncClient, api_settings: Settings, handoff: HandoffClient, store: Store
) -> None:
    created = await held_by_alice(api)
    cid, customer = created["id"], bearer(created["customer_token"])
    rating = f"/conversations/{cid}/rating"
    assert "closed" in await refused(api.post(rating, json={"score": 5}, headers=customer), 409)
    await ok(api.post(f"/conversations/{cid}/close", json={"outcome": "resolved"}, headers=ALICE))
    await closed_in_database(store, cid)

    await refused(api.post(rating, json={"score": 6}, headers=customer), 422)
    await refused(api.post(rating, json={"score": 0}, headers=customer), 422)
    await refused(api.post(rating, json={"score": 5}, headers=ALICE), 401)
    late_app: FastAPI = create_app(
        api_settings.model_copy(update={"rating_window": timedelta(0)}), client=handoff, store=store
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=late_app), base_url="http://handoff.test") as late:
        assert "over" in await refused(late.post(rating, json={"score": 5}, headers=customer), 410)

    body = await ok(api.post(rating, json={"score": 4, "comment": "quick, thanks"}, headers=customer), 201)
    assert body["score"] == 4
    assert "already" in await refused(api.post(rating, json={"score": 5}, headers=customer), 409)
    stored = store.rating(cid)
    assert stored is not None and (stored.score, stored.comment) == (4, "quick, thanks")
    assert stored.agent is not None and stored.agent.id == "alice"


async def test_overdue_conversations_are_flagged_in_the_live_columns(
    api_settings: Settings, handoff: HandoffClient, store: Store
) -> None:
    short = TimerSettings(waiting_sla=timedelta(seconds=1), first_reply_sla=timedelta(seconds=1))
    timed = HandoffClient(handoff.temporal, handoff.task_queue, store, short)
    app = create_app(api_settings, client=timed, store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://handoff.test") as api:
        created = await start(api)
        cid, customer = created["id"], bearer(created["customer_token"])
        await ok(api.post(f"/conversations/{cid}/request-human", headers=customer), 202)

        def flagged(column: dict[str, Any]) -> bool:
            return any(c["conversation_id"] == cid and c["overdue"] for c in column["conversations"])

        await seen_eventually(lambda: ok(api.get("/live/waiting", headers=ALICE)), flagged)
        await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))
        await seen_eventually(lambda: ok(api.get("/live/mine", headers=ALICE)), flagged)
