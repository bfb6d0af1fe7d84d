"""The chat widget's calls: asking for a person, retries that must not act twice."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import ALICE, bearer, ids, ok, start, texts, transcript
from tests.helpers import ORDER_ANSWER, eventually, new_id


@pytest.fixture
def api(served_api: httpx.AsyncClient) -> httpx.AsyncClient:
    """Through a real uvicorn server, as the widget would call it."""
    return served_api


async def test_request_human_puts_the_conversation_in_the_waiting_column(api: httpx.AsyncClient) -> None:
    created = await start(api, "Where is my order?")
    cid, customer = created["id"], bearer(created["customer_token"])
    assert texts(created["messages"]) == ["Where is my order?", ORDER_ANSWER]
    accepted = await ok(api.post(f"/conversations/{cid}/request-human", headers=customer), 202)
    assert accepted["conversation_id"] == cid
    await eventually(lambda: ok(api.get("/live/waiting", headers=ALICE)), lambda c: cid in ids(c))
    seen = await ok(api.get(f"/conversations/{cid}/messages", headers=customer))
    assert seen["status"] == "waiting"
    # The customer sees no note about it; the agent does.
    assert texts(seen["messages"]) == texts(created["messages"])
    assert texts(await transcript(api, cid), "system") == ["The customer asked for a person"]
    # Asking again while waiting changes nothing.
    await ok(api.post(f"/conversations/{cid}/request-human", headers=customer), 202)
    await ok(api.post(f"/conversations/{cid}/messages", json={"text": "still there?"}, headers=customer), 202)
    entries = await eventually(lambda: transcript(api, cid), lambda t: t[-1]["text"] == "still there?")
    assert texts(entries, "system") == ["The customer asked for a person"]


async def test_a_retried_create_with_the_same_idempotency_key_is_one_conversation(api: httpx.AsyncClient) -> None:
    body = {"customer_id": "retrying-customer", "text": "hello"}
    # Keys of this run only: the Temporal server outlives each backend's run of this test.
    key = {"Idempotency-Key": f"retry-test-{new_id()}"}
    first = await ok(api.post("/conversations", json=body, headers=key), 201)
    again = await ok(api.post("/conversations", json=body, headers=key), 201)
    assert (again["id"], again["customer_token"]) == (first["id"], first["customer_token"])
    assert texts(await transcript(api, first["id"]), "customer") == ["hello"]
    # The id says nothing about the key or the customer; another customer's same key is another conversation.
    assert "retry" not in first["id"] and "customer" not in first["id"]
    other = await ok(api.post("/conversations", json={**body, "customer_id": "someone-else"}, headers=key), 201)
    assert other["id"] != first["id"]
    # Without a key, every create is a new conversation.
    assert (await start(api))["id"] != (await start(api))["id"]


async def test_a_retried_message_with_the_same_idempotency_key_is_kept_once(api: httpx.AsyncClient) -> None:
    created = await start(api)
    cid, customer = created["id"], bearer(created["customer_token"])
    await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))  # so the bot adds no answers
    for _ in range(2):
        await ok(
            api.post(
                f"/conversations/{cid}/messages",
                json={"text": "sent twice"},
                headers={**customer, "Idempotency-Key": "message-key-0001-retry"},
            ),
            202,
        )
    await ok(api.post(f"/conversations/{cid}/messages", json={"text": "then this"}, headers=customer), 202)
    entries = await eventually(lambda: transcript(api, cid), lambda t: t[-1]["text"] == "then this")
    assert texts(entries, "customer") == ["hello", "sent twice", "then this"]


async def test_a_retried_create_after_the_conversation_closed_answers_with_it_closed(api: httpx.AsyncClient) -> None:
    body = {"customer_id": "late-retry", "text": "hello"}
    key = {"Idempotency-Key": f"late-retry-key-{new_id()}"}
    first = await ok(api.post("/conversations", json=body, headers=key), 201)
    await ok(api.post(f"/conversations/{first['id']}/takeover", headers=ALICE))
    await ok(api.post(f"/conversations/{first['id']}/close", json={"outcome": "not_resolved"}, headers=ALICE))
    # Wait until the workflow has completed, so the retry meets a closed workflow id.
    await eventually(lambda: ok(api.get(f"/conversations/{first['id']}", headers=ALICE)), lambda d: not d["live"])
    await eventually(
        lambda: ok(api.post("/conversations", json=body, headers=key), 201), lambda r: r["status"] == "closed"
    )
    again = await ok(api.post("/conversations", json=body, headers=key), 201)
    assert (again["id"], again["status"]) == (first["id"], "closed")
    assert texts(again["messages"], "customer") == ["hello"]
