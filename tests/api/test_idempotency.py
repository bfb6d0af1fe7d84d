"""The Idempotency-Key is no password (issue 13, finding 5): two creates with the same customer
id and key but different texts got the same conversation, the same customer token and the
first sender's message. Now a different body under a used key is a 409, a faithful retry
answers only what the first call did, and short keys are refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx

from handoff.api.routes.customer import KEY_REUSED
from handoff.store import Store
from tests.api.helpers import ALICE, bearer, ok, refused, texts, transcript
from tests.helpers import eventually


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_a_create_reusing_a_key_with_another_text_is_a_409_that_gives_nothing_away(
    api: httpx.AsyncClient,
) -> None:
    key = new_key()
    first = await ok(
        api.post("/conversations", json={"customer_id": "c-409", "text": "my card is 4111"}, headers=key), 201
    )
    response = await api.post("/conversations", json={"customer_id": "c-409", "text": "what did I say?"}, headers=key)
    assert response.status_code == 409, response.text
    assert response.json() == {"detail": KEY_REUSED}
    assert "4111" not in response.text and first["customer_token"] not in response.text
    # The second text reached nobody.
    entries = await transcript(api, first["id"])
    assert texts(entries, "customer") == ["my card is 4111"]
    # The same key for another customer is another conversation, not a conflict.
    await ok(api.post("/conversations", json={"customer_id": "c-409-b", "text": "what did I say?"}, headers=key), 201)


async def test_two_first_creates_at_once_under_one_key_give_one_conversation_and_one_409(
    api: httpx.AsyncClient,
) -> None:
    key = new_key()
    answers = await asyncio.gather(
        *(api.post("/conversations", json={"customer_id": "c-race", "text": t}, headers=key) for t in ("one", "two"))
    )
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    [created] = [r.json() for r in answers if r.status_code == 201]
    assert texts(await transcript(api, created["id"]), "customer") == [created["messages"][0]["text"]]


async def test_a_retried_create_answers_only_what_the_first_call_did(api: httpx.AsyncClient) -> None:
    key, body = new_key(), {"customer_id": "c-retry-later", "text": "Hello"}
    first = await ok(api.post("/conversations", json=body, headers=key), 201)
    assert texts(first["messages"]) == ["Hello", "Hello! How can I help you today?"]
    cid, customer = first["id"], bearer(first["customer_token"])
    await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))
    await ok(api.post(f"/conversations/{cid}/messages", json={"text": "my IBAN is FR76 3000"}, headers=customer), 202)
    await ok(api.post(f"/conversations/{cid}/replies", json={"text": "Thanks, noted."}, headers=ALICE))
    await eventually(lambda: transcript(api, cid), lambda t: t[-1]["text"] == "Thanks, noted.")
    again = await ok(api.post("/conversations", json=body, headers=key), 201)
    assert (again["id"], again["customer_token"]) == (first["id"], first["customer_token"])
    assert again["messages"] == first["messages"]
    assert "IBAN" not in str(again) and "noted" not in str(again)


async def test_short_idempotency_keys_are_refused(api: httpx.AsyncClient) -> None:
    short = {"Idempotency-Key": "1"}
    detail = await refused(api.post("/conversations", json={"customer_id": "c", "text": "hi"}, headers=short), 422)
    assert "Idempotency-Key" in detail and "at least 16 characters" in detail
    created = await ok(api.post("/conversations", json={"customer_id": "c-short", "text": "hi"}), 201)
    customer = bearer(created["customer_token"])
    sent = api.post(f"/conversations/{created['id']}/messages", json={"text": "x"}, headers=customer | short)
    assert "at least 16 characters" in await refused(sent, 422)
    fifteen = {"Idempotency-Key": "x" * 15}
    await refused(api.post("/conversations", json={"customer_id": "c", "text": "hi"}, headers=fifteen), 422)


async def test_a_message_reusing_a_key_with_another_text_is_a_409(api: httpx.AsyncClient) -> None:
    created = await ok(api.post("/conversations", json={"customer_id": "c-msg-409", "text": "hello"}), 201)
    cid, key = created["id"], new_key()
    customer = bearer(created["customer_token"])
    await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))  # so the bot adds no answers
    await ok(api.post(f"/conversations/{cid}/messages", json={"text": "first"}, headers=customer | key), 202)
    await ok(api.post(f"/conversations/{cid}/messages", json={"text": "first"}, headers=customer | key), 202)
    reused = api.post(f"/conversations/{cid}/messages", json={"text": "second"}, headers=customer | key)
    assert await refused(reused, 409) == KEY_REUSED
    await ok(api.post(f"/conversations/{cid}/messages", json={"text": "then this"}, headers=customer), 202)
    entries = await eventually(lambda: transcript(api, cid), lambda t: t[-1]["text"] == "then this")
    assert texts(entries, "customer") == ["hello", "first", "then this"]


def test_the_store_keeps_the_first_request_under_an_id(empty_store: Store) -> None:
    now = datetime.now(UTC)
    assert empty_store.claim_request("r1", "digest-a", now)
    assert empty_store.claim_request("r1", "digest-a", now)  # a retry
    assert not empty_store.claim_request("r1", "digest-b", now)  # another request
    assert empty_store.claim_request("r2", "digest-b", now)
