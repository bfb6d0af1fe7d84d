"""A whole conversation driven over HTTP, as the chat widget and two agents' UIs would."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import ALICE, BOB, bearer, ids, ok, refused, seen_eventually, start, texts, transcript
from tests.helpers import HANDOFF_ANSWER, PASSWORD_ANSWER, eventually


@pytest.fixture
def api(served_api: httpx.AsyncClient) -> httpx.AsyncClient:
    """Through a real uvicorn server, as the agents' UIs and the widget would call it."""
    return served_api


async def test_a_conversation_from_the_bot_to_a_person_and_closed(api: httpx.AsyncClient) -> None:
    # The customer starts: the 201 already shows the bot's answer.
    question = "How do I reset my password?"
    created = await start(api, question, customer_id="walkthrough-customer")
    cid, customer = created["id"], bearer(created["customer_token"])
    assert created["status"] == "bot"
    assert [(m["kind"], m["text"]) for m in created["messages"]] == [
        ("customer", question),
        ("bot", PASSWORD_ANSWER),
    ]

    # The customer asks for a person; the bot's hand-over answer follows and the Waiting column shows it.
    await ok(api.post(f"/conversations/{cid}/messages", json={"text": "talk to a human please"}, headers=customer), 202)
    seen = await eventually(
        lambda: ok(api.get(f"/conversations/{cid}/messages", headers=customer)),
        lambda body: body["status"] == "waiting",
    )
    assert texts(seen["messages"]) == [
        question,
        PASSWORD_ANSWER,
        "talk to a human please",
        HANDOFF_ANSWER,
    ]
    waiting = await eventually(lambda: ok(api.get("/live/waiting", headers=BOB)), lambda c: cid in ids(c))
    mine = next(c for c in waiting["conversations"] if c["conversation_id"] == cid)
    assert mine["waiting_since"] is not None and mine["waiting_seconds"] >= 0

    # Alice takes over: gone from Waiting, in her My conversations.
    taken = await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))
    assert (taken["status"], taken["agent"]) == ("human", {"id": "alice", "name": "Alice Martin"})
    await seen_eventually(lambda: ok(api.get("/live/waiting", headers=BOB)), lambda c: cid not in ids(c))
    await seen_eventually(lambda: ok(api.get("/live/mine", headers=ALICE)), lambda c: cid in ids(c))
    assert cid not in ids(await ok(api.get("/live/mine", headers=BOB)))

    # Bob cannot take it, reply, hand it back or close it while Alice holds it.
    assert "Alice Martin" in await refused(api.post(f"/conversations/{cid}/takeover", headers=BOB), 409)
    await refused(api.post(f"/conversations/{cid}/replies", json={"text": "hi"}, headers=BOB), 403)
    await refused(api.post(f"/conversations/{cid}/hand-back", headers=BOB), 403)
    await refused(api.post(f"/conversations/{cid}/close", json={"outcome": "resolved"}, headers=BOB), 403)

    # Alice replies; the customer sees it under her name, and never the system notes.
    await ok(api.post(f"/conversations/{cid}/replies", json={"text": "Hi, Alice here. Sending a link."}, headers=ALICE))
    await ok(api.post(f"/conversations/{cid}/messages", json={"text": "Thanks!"}, headers=customer), 202)
    seen = await eventually(
        lambda: ok(api.get(f"/conversations/{cid}/messages", headers=customer)),
        lambda body: len(body["messages"]) == 6,
    )
    assert [(m["kind"], m["author"], m["text"]) for m in seen["messages"][4:]] == [
        ("agent", "Alice Martin", "Hi, Alice here. Sending a link."),
        ("customer", "customer", "Thanks!"),
    ]
    assert all(m["kind"] != "system" for m in seen["messages"])
    later = await ok(
        api.get(f"/conversations/{cid}/messages", params={"after": seen["messages"][-2]["seq"]}, headers=customer)
    )
    assert texts(later["messages"]) == ["Thanks!"]

    # Alice hands back to the bot: out of her column.
    back = await ok(api.post(f"/conversations/{cid}/hand-back", headers=ALICE))
    assert (back["status"], back["agent"]) == ("bot", None)
    await seen_eventually(lambda: ok(api.get("/live/mine", headers=ALICE)), lambda c: cid not in ids(c))

    # Bob takes it straight from the bot and closes it as resolved.
    await ok(api.post(f"/conversations/{cid}/takeover", headers=BOB))
    await seen_eventually(lambda: ok(api.get("/live/mine", headers=BOB)), lambda c: cid in ids(c))
    closed = await ok(api.post(f"/conversations/{cid}/close", json={"outcome": "resolved"}, headers=BOB))
    assert (closed["status"], closed["outcome"], closed["closed_by"]) == (
        "closed",
        "resolved",
        {"id": "bob", "name": "Bob Stone"},
    )
    await seen_eventually(lambda: ok(api.get("/live/mine", headers=BOB)), lambda c: cid not in ids(c))

    # The agent view holds the whole transcript, notes included, each entry numbered and attributed.
    entries = await transcript(api, cid)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert texts(entries, "system") == [
        "The customer asked for a person",
        "Alice Martin joined the conversation",
        "Alice Martin left the conversation",
        "Bob Stone joined the conversation",
        "Bob Stone closed the conversation as resolved",
    ]
    assert {e["kind"] for e in entries} == {"customer", "bot", "agent", "system"}
    assert all(e["at"] and e["author"] for e in entries)

    # Once closed and recorded, it is read from the database, the same as it was live.
    detail = await eventually(lambda: ok(api.get(f"/conversations/{cid}", headers=ALICE)), lambda d: d["live"] is False)
    assert detail["transcript"] == entries
    assert (detail["status"], detail["outcome"], detail["closed_at"] is not None) == ("closed", "resolved", True)

    # The history finds it by status, outcome and by either agent who held it.
    for query in (
        {"status": "closed", "outcome": "resolved", "agent": "bob"},
        {"agent": "alice"},
    ):
        page = await ok(api.get("/conversations", params={**query, "limit": 200}, headers=ALICE))
        assert cid in ids(page), query
    assert cid not in ids(await ok(api.get("/conversations", params={"outcome": "not_resolved"}, headers=ALICE)))

    # A closed conversation accepts nothing more, from either side; a customer's message starts a new
    # conversation, linked to it (issue 9).
    reopened = await ok(api.post(f"/conversations/{cid}/messages", json={"text": "one more"}, headers=customer), 201)
    assert reopened["previous_conversation_id"] == cid
    await refused(api.post(f"/conversations/{cid}/request-human", headers=customer), 409)
    await refused(api.post(f"/conversations/{cid}/takeover", headers=ALICE), 409)
    await refused(api.post(f"/conversations/{cid}/replies", json={"text": "hello?"}, headers=BOB), 409)
    await refused(api.post(f"/conversations/{cid}/hand-back", headers=BOB), 409)
    await refused(api.post(f"/conversations/{cid}/close", json={"outcome": "not_resolved"}, headers=BOB), 409)
    assert await transcript(api, cid) == entries
