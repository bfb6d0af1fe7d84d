"""Every refusal the issue lists, over HTTP: the status code, a body saying what was wrong, and
that the refused call changed nothing the customer or an agent can see."""

from __future__ import annotations

import httpx

from handoff.customer_tokens import CustomerTokens
from handoff.lifecycle import MAX_MESSAGE_CHARS
from tests.api.helpers import ALICE, BOB, bearer, ok, refused, start, transcript
from tests.helpers import new_id


async def test_unknown_conversation_is_404_for_agents_and_for_a_valid_customer_token(
    api: httpx.AsyncClient, tokens: CustomerTokens
) -> None:
    ghost = new_id()
    assert ghost in await refused(api.get(f"/conversations/{ghost}", headers=ALICE), 404)
    await refused(api.post(f"/conversations/{ghost}/takeover", headers=ALICE), 404)
    await refused(api.post(f"/conversations/{ghost}/replies", json={"text": "hi"}, headers=ALICE), 404)
    await refused(api.post(f"/conversations/{ghost}/hand-back", headers=ALICE), 404)
    await refused(api.post(f"/conversations/{ghost}/close", json={"outcome": "resolved"}, headers=ALICE), 404)
    await refused(api.get(f"/conversations/{'x' * 300}", headers=ALICE), 404)
    # A token that is genuinely this id's, for a conversation that does not exist (e.g. long purged).
    customer = bearer(tokens.token(ghost))
    await refused(api.get(f"/conversations/{ghost}/messages", headers=customer), 404)
    await refused(api.post(f"/conversations/{ghost}/messages", json={"text": "hi"}, headers=customer), 404)
    await refused(api.post(f"/conversations/{ghost}/request-human", headers=customer), 404)
    # And nothing was started by trying.
    await refused(api.get(f"/conversations/{ghost}", headers=ALICE), 404)


async def test_missing_or_wrong_tokens_are_401_and_a_customer_token_opens_only_its_conversation(
    api: httpx.AsyncClient,
) -> None:
    mine, other = await start(api, "hello", "customer-a"), await start(api, "hello", "customer-b")
    cid, other_id = mine["id"], other["id"]
    before = await transcript(api, other_id)
    stolen = bearer(mine["customer_token"])
    for headers in ({}, bearer("nonsense"), stolen, {"Authorization": f"Basic {mine['customer_token']}"}):
        await refused(api.get(f"/conversations/{other_id}/messages", headers=headers), 401)
        await refused(api.post(f"/conversations/{other_id}/messages", json={"text": "hi"}, headers=headers), 401)
        await refused(api.post(f"/conversations/{other_id}/request-human", headers=headers), 401)
    response = await api.get(f"/conversations/{other_id}/messages")
    assert response.headers["www-authenticate"] == "Bearer"
    # Agent tokens do not open customer calls, and customer tokens open no agent call.
    await refused(api.get(f"/conversations/{cid}/messages", headers=ALICE), 401)
    for call in (
        api.get(f"/conversations/{cid}", headers=stolen),
        api.post(f"/conversations/{cid}/takeover", headers=stolen),
        api.post(f"/conversations/{cid}/replies", json={"text": "hi"}, headers=stolen),
        api.post(f"/conversations/{cid}/hand-back", headers=stolen),
        api.post(f"/conversations/{cid}/close", json={"outcome": "resolved"}, headers=stolen),
        api.get("/live/waiting", headers=stolen),
        api.get("/live/mine"),
        api.get("/conversations", headers=bearer("alice")),
        api.get("/stats", headers=bearer("")),
    ):
        await refused(call, 401)
    # The other customer's conversation is exactly as it was; the token still opens its own.
    assert await transcript(api, other_id) == before
    assert (await transcript(api, cid))[0]["text"] == "hello"
    await ok(api.get(f"/conversations/{cid}/messages", headers=stolen))


async def test_agent_commands_in_the_wrong_state_are_409_and_change_nothing(api: httpx.AsyncClient) -> None:
    cid = (await start(api))["id"]
    before = await transcript(api, cid)
    # The bot holds it: nobody can reply, hand back or close before taking over.
    for call in (
        api.post(f"/conversations/{cid}/replies", json={"text": "hi"}, headers=ALICE),
        api.post(f"/conversations/{cid}/hand-back", headers=ALICE),
        api.post(f"/conversations/{cid}/close", json={"outcome": "resolved"}, headers=ALICE),
    ):
        assert "take it over" in await refused(call, 409)
    assert await transcript(api, cid) == before
    # Held by Alice: Bob's take-over is refused with her name, and the holder in the body.
    await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))
    response = await api.post(f"/conversations/{cid}/takeover", headers=BOB)
    assert response.status_code == 409
    assert response.json() == {
        "detail": "the conversation is held by Alice Martin",
        "holder": {"id": "alice", "name": "Alice Martin"},
    }
    # Alice taking over again is harmless.
    assert (await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE)))["agent"]["id"] == "alice"
    detail = await ok(api.get(f"/conversations/{cid}", headers=BOB))
    assert (detail["status"], detail["agent"]["id"]) == ("human", "alice")
    assert [e["text"] for e in detail["transcript"][len(before) :]] == ["Alice Martin joined the conversation"]


async def test_malformed_bodies_are_422_and_change_nothing(api: httpx.AsyncClient) -> None:
    created = await start(api)
    cid, customer = created["id"], bearer(created["customer_token"])
    await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))
    before = await transcript(api, cid)
    too_long = "x" * (MAX_MESSAGE_CHARS + 1)

    assert "resolved" in await refused(
        api.post(f"/conversations/{cid}/close", json={"outcome": "maybe"}, headers=ALICE), 422
    )
    await refused(api.post(f"/conversations/{cid}/close", json={}, headers=ALICE), 422)
    assert "empty" in await refused(api.post(f"/conversations/{cid}/replies", json={"text": "   "}, headers=ALICE), 422)
    assert str(MAX_MESSAGE_CHARS) in await refused(
        api.post(f"/conversations/{cid}/replies", json={"text": too_long}, headers=ALICE), 422
    )
    assert "empty" in await refused(
        api.post(f"/conversations/{cid}/messages", json={"text": ""}, headers=customer), 422
    )
    assert str(MAX_MESSAGE_CHARS) in await refused(
        api.post(f"/conversations/{cid}/messages", json={"text": too_long}, headers=customer), 422
    )
    await refused(api.post(f"/conversations/{cid}/messages", json={"txt": "hi"}, headers=customer), 422)
    await refused(
        api.post(
            f"/conversations/{cid}/messages",
            content=b"{not json",
            headers={**customer, "Content-Type": "application/json"},
        ),
        422,
    )
    await refused(api.post("/conversations", json={"customer_id": "c", "text": ""}), 422)
    await refused(api.post("/conversations", json={"customer_id": "", "text": "hello"}), 422)
    await refused(api.post("/conversations", json={"text": "hello"}), 422)
    assert await transcript(api, cid) == before
    # A body far beyond any valid message is refused before it is read.
    huge = {"customer_id": "c", "text": "x" * (2 * 1024 * 1024)}
    await refused(api.post("/conversations", json=huge), 413)


async def test_history_and_stats_refuse_bad_filters_with_422(api: httpx.AsyncClient) -> None:
    assert "cursor" in await refused(api.get("/conversations", params={"cursor": "garbage"}, headers=ALICE), 422)
    await refused(api.get("/conversations", params={"status": "sleeping"}, headers=ALICE), 422)
    await refused(api.get("/conversations", params={"outcome": "maybe"}, headers=ALICE), 422)
    await refused(api.get("/conversations", params={"limit": 0}, headers=ALICE), 422)
    await refused(api.get("/conversations", params={"since": "yesterday"}, headers=ALICE), 422)
    await refused(api.get("/stats", params={"until": "not a date"}, headers=ALICE), 422)
