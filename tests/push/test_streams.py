"""The live streams over real HTTP: what a customer's widget and an agent's Live support tab see
as a conversation goes bot -> waiting -> human -> closed, and what a reconnect resumes."""

from __future__ import annotations

import httpx

from tests.api.helpers import ALICE, bearer, ids, ok, seen_eventually, start
from tests.push.conftest import PushApi
from tests.push.sse_client import Event, Stream


def seen(events: list[Event]) -> list[tuple[str, str]]:
    """What each event shows: a message's author kind and text, or the new status."""
    return [
        (e.name, e.data["entry"]["kind"] + ": " + e.data["entry"]["text"] if "entry" in e.data else e.data["status"])
        for e in events
    ]


def closed(event: Event) -> bool:
    return event.name == "status" and event.data["status"] == "closed"


async def test_customer_stream_shows_messages_and_status_never_notes_and_resumes_after_last_event_id(
    push_api: PushApi,
) -> None:
    api = push_api.api
    conversation = await start(api, "hello")
    cid, customer = conversation["id"], bearer(conversation["customer_token"])
    async with api.stream("GET", f"/conversations/{cid}/events", headers=customer) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        await ok(api.post(f"/conversations/{cid}/request-human", headers=customer), 202)
        await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))
        await ok(api.post(f"/conversations/{cid}/replies", json={"text": "Alice here, how can I help?"}, headers=ALICE))
        await ok(api.post(f"/conversations/{cid}/close", json={"outcome": "resolved"}, headers=ALICE))
        events = await stream.take_until(closed)

    shown = seen(events)
    bot_answer = conversation["messages"][1]["text"]
    assert shown == [
        ("status", "bot"),
        ("message", "customer: hello"),
        ("message", f"bot: {bot_answer}"),
        ("status", "waiting"),
        ("status", "human"),
        ("message", "agent: Alice here, how can I help?"),
        ("status", "closed"),
    ]
    # Status events tell the customer nothing about who or how.
    assert {tuple(sorted(e.data)) for e in events if e.name == "status"} == {("at", "conversation_id", "status")}
    ids = [e.id for e in events]
    assert all(i is not None for i in ids) and ids == sorted(set(ids))  # type: ignore[type-var]

    # A widget that lost its connection after the third event gets exactly the rest.
    resume = {**customer, "Last-Event-ID": str(events[2].id)}
    async with api.stream("GET", f"/conversations/{cid}/events", headers=resume) as response:
        rest = await Stream(response).take_until(closed)
    assert [(e.id, e.name, e.data) for e in rest] == [(e.id, e.name, e.data) for e in events[3:]]

    # Polling with `after` still answers the same messages.
    polled = await ok(api.get(f"/conversations/{cid}/messages", params={"after": 0}, headers=customer))
    assert [m["text"] for m in polled["messages"]] == [e.data["entry"]["text"] for e in events if e.name == "message"]


async def test_agent_stream_shows_the_waiting_column_changes_and_the_open_conversations_entries(
    push_api: PushApi,
) -> None:
    api = push_api.api
    waiting_before = await start(api, "I need a person", customer_id="customer-waiting")
    wid = waiting_before["id"]
    await ok(api.post(f"/conversations/{wid}/request-human", headers=bearer(waiting_before["customer_token"])), 202)
    await _until_waiting(api, wid)
    async with api.stream("GET", "/live/events", headers=ALICE) as response:
        assert response.status_code == 200
        stream = Stream(response)
        (snapshot,) = await stream.take(1)
        assert snapshot.name == "snapshot"
        assert [c["conversation_id"] for c in snapshot.data["waiting"]] == [wid]
        assert snapshot.data["mine"] == []

        conversation = await start(api, "hello", customer_id="customer-2")
        cid, customer = conversation["id"], bearer(conversation["customer_token"])
        await ok(api.post(f"/conversations/{cid}/request-human", headers=customer), 202)
        await ok(api.post(f"/conversations/{wid}/takeover", headers=ALICE))
        changes = await stream.take_until(lambda e: e.data["conversation_id"] == wid and e.data["status"] == "human")

    # The column's changes, in order; entries only of followed conversations (none here).
    assert {e.name for e in changes} == {"status"}
    assert [(e.data["conversation_id"], e.data["status"]) for e in changes] == [
        (cid, "bot"),
        (cid, "waiting"),
        (wid, "human"),
    ]
    assert changes[-1].data["agent"] == {"id": "alice", "name": "Alice Martin"}
    assert snapshot.id is not None and all(e.id is not None and e.id > snapshot.id for e in changes)

    # Following the conversation Alice opened: its entries too, system notes included.
    follow = {**ALICE, "Last-Event-ID": str(snapshot.id)}
    async with api.stream("GET", "/live/events", params={"conversation": wid}, headers=follow) as response:
        stream = Stream(response)
        await ok(api.post(f"/conversations/{wid}/replies", json={"text": "On it"}, headers=ALICE))
        await ok(api.post(f"/conversations/{wid}/close", json={"outcome": "resolved"}, headers=ALICE))
        followed = await stream.take_until(lambda e: e.data["conversation_id"] == wid and closed(e))
    # Every conversation's status changes since the snapshot, the followed one's entries as well.
    assert [(e.data["conversation_id"], *shown) for e, shown in zip(followed, seen(followed), strict=True)] == [
        (cid, "status", "bot"),
        (cid, "status", "waiting"),
        (wid, "status", "human"),
        (wid, "note", "system: Alice Martin joined the conversation"),
        (wid, "message", "agent: On it"),
        (wid, "status", "closed"),
    ]


async def _until_waiting(api: httpx.AsyncClient, conversation_id: str) -> None:
    await seen_eventually(
        lambda: ok(api.get("/live/waiting", headers=ALICE)), lambda column: conversation_id in ids(column)
    )


async def test_streams_refuse_wrong_tokens(push_api: PushApi) -> None:
    api = push_api.api
    conversation = await start(api, "hello")
    other = await start(api, "hello", customer_id="customer-other")
    answer = await api.get(f"/conversations/{conversation['id']}/events", headers=bearer(other["customer_token"]))
    assert answer.status_code == 401
    assert (await api.get("/live/events", headers=bearer("not-an-agent-token-at-all"))).status_code == 401
    assert (await api.get("/live/events")).status_code == 401


async def test_the_openapi_description_names_the_streams_and_their_resume_header(push_api: PushApi) -> None:
    spec = await ok(push_api.api.get("/openapi.json"))
    for path, scheme in (("/conversations/{conversation_id}/events", "CustomerToken"), ("/live/events", "AgentToken")):
        operation = spec["paths"][path]["get"]
        assert "text/event-stream" in operation["responses"]["200"]["content"]
        assert "Last-Event-ID" in [p["name"] for p in operation["parameters"]]
        assert operation["security"] == [{scheme: []}]
        assert "Server-Sent Events" in operation["description"]
