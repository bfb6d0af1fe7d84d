"""Suggested replies for the agent holding a conversation (issue 14, item 1): from the knowledge
base and from what an agent answered in a resolved conversation; never a reply holding personal
data, never one from a conversation not resolved; only for the holder; read from the database."""

from __future__ import annotations

from typing import Any

import httpx

from handoff.models import Status
from handoff.store import Store
from tests.api.helpers import ALICE, BOB, ok, refused, start
from tests.helpers import eventually

DISCOUNT_REPLY = "Discount codes don't apply to sale items: remove the sale item from the basket and the code works."
PERSONAL_REPLY = "I have sent the new discount code to jane.doe@example.com, please check your inbox."
UNRESOLVED_REPLY = "Sorry, the discount code system is broken today, try again tomorrow."
PASSWORD_ANSWER = (
    'You can reset your password from the sign-in page: choose "Forgot password?" and follow the link we email '
    "you. The link is valid for one hour."
)


async def held_by_alice(api: httpx.AsyncClient, store: Store, customer: str, question: str) -> str:
    body = await start(api, question, customer)
    conversation = str(body["id"])
    await ok(
        api.post(
            f"/conversations/{conversation}/request-human",
            headers={"Authorization": f"Bearer {body['customer_token']}"},
        ),
        202,
    )
    await ok(api.post(f"/conversations/{conversation}/takeover", headers=ALICE))

    async def stored() -> tuple[Status | None, list[str]]:
        summary = store.summary(conversation)
        return (summary.status if summary else None), [e.text for e in store.transcript(conversation)]

    # What the agent UI shows once the take-over is recorded: the conversation in My conversations.
    await eventually(
        stored, lambda seen: seen[0] is Status.HUMAN and question in seen[1], what="the take-over in the database"
    )
    return conversation


async def resolved(api: httpx.AsyncClient, store: Store, customer: str, question: str, reply: str, outcome: str) -> str:
    conversation = await held_by_alice(api, store, customer, question)
    await ok(api.post(f"/conversations/{conversation}/replies", json={"text": reply}, headers=ALICE))
    await ok(api.post(f"/conversations/{conversation}/close", json={"outcome": outcome}, headers=ALICE))

    async def summary() -> Any:
        return store.summary(conversation)

    await eventually(summary, lambda s: s is not None and s.status is Status.CLOSED, what="closed in the database")
    return conversation


async def test_an_agent_gets_a_past_resolved_reply_and_never_personal_data(
    own_api: tuple[httpx.AsyncClient, Store],
) -> None:
    api, store = own_api
    solved = await resolved(
        api, store, "sugg-1", "My discount code is not accepted at checkout", DISCOUNT_REPLY, "resolved"
    )
    await resolved(api, store, "sugg-2", "The discount code is not accepted at checkout", PERSONAL_REPLY, "resolved")
    await resolved(api, store, "sugg-3", "discount code not accepted at checkout", UNRESOLVED_REPLY, "not_resolved")

    current = await held_by_alice(api, store, "sugg-4", "why is my discount code not accepted at checkout?")
    body = await ok(api.get(f"/conversations/{current}/suggestions", headers=ALICE))
    assert body["based_on"] == ["why is my discount code not accepted at checkout?"]
    texts = [s["text"] for s in body["suggestions"]]
    assert texts[0] == DISCOUNT_REPLY, body
    first = body["suggestions"][0]
    assert first["source"] == {"kind": "past_reply", "conversation_id": solved}
    assert 0 < first["score"] <= 1 and len(first["id"]) == 16
    assert PERSONAL_REPLY not in texts and UNRESOLVED_REPLY not in texts
    # The same suggestion keeps its id (feedback refers to it).
    again = await ok(api.get(f"/conversations/{current}/suggestions", headers=ALICE))
    assert again["suggestions"][0]["id"] == first["id"]


async def test_knowledge_base_answers_are_suggested_and_only_to_the_holder(
    own_api: tuple[httpx.AsyncClient, Store],
) -> None:
    api, store = own_api
    current = await held_by_alice(api, store, "sugg-5", "I lost my password and can't sign in")
    body = await ok(api.get(f"/conversations/{current}/suggestions", headers=ALICE))
    assert body["suggestions"][0]["text"] == PASSWORD_ANSWER
    assert body["suggestions"][0]["source"] == {"kind": "knowledge_base", "conversation_id": None}

    assert "holding the conversation" in await refused(
        api.get(f"/conversations/{current}/suggestions", headers=BOB), 403
    )
    await ok(api.post(f"/conversations/{current}/close", json={"outcome": "resolved"}, headers=ALICE))

    async def suggestions_status() -> dict[str, Any]:
        response = await api.get(f"/conversations/{current}/suggestions", headers=ALICE)
        return {"status": response.status_code}

    await eventually(suggestions_status, lambda r: r["status"] == 409, what="suggestions refused once closed")
    await refused(api.get("/conversations/no-such-conversation/suggestions", headers=ALICE), 404)


async def test_feedback_and_a_reply_close_to_a_suggestion_count_in_the_statistics(
    own_api: tuple[httpx.AsyncClient, Store],
) -> None:
    api, store = own_api
    await resolved(api, store, "sugg-6", "My discount code is not accepted at checkout", DISCOUNT_REPLY, "resolved")
    current = await held_by_alice(api, store, "sugg-7", "the discount code is not accepted, I forgot my password")
    shown = (await ok(api.get(f"/conversations/{current}/suggestions", headers=ALICE)))["suggestions"]
    by_text = {s["text"]: s["id"] for s in shown}
    assert {DISCOUNT_REPLY, PASSWORD_ANSWER} <= set(by_text), shown

    feedback = f"/conversations/{current}/suggestions/{by_text[PASSWORD_ANSWER]}/feedback"
    dismissed = await ok(api.post(feedback, json={"action": "dismissed"}, headers=ALICE))
    assert dismissed["action"] == "dismissed" and dismissed["implicit"] is False
    await refused(api.post(feedback, json={"action": "loved"}, headers=ALICE), 422)
    await refused(api.post(feedback, json={"action": "used"}, headers=BOB), 404)  # never shown to Bob
    await refused(
        api.post(
            f"/conversations/{current}/suggestions/0123456789abcdef/feedback", json={"action": "used"}, headers=ALICE
        ),
        404,
    )
    # Alice sends the past reply with one word changed: it counts as that suggestion edited.
    await ok(
        api.post(
            f"/conversations/{current}/replies", json={"text": DISCOUNT_REPLY.replace("basket", "cart")}, headers=ALICE
        )
    )
    await ok(api.post(f"/conversations/{current}/close", json={"outcome": "resolved"}, headers=ALICE))

    async def alice_stats() -> dict[str, Any]:
        return await ok(api.get("/stats/assist", params={"agent": "alice"}, headers=ALICE))

    stats = await eventually(
        alice_stats,
        lambda s: s["first_response_with_suggestion"]["count"] == 1,
        what="the assisted first reply in the statistics",
    )
    totals = stats["totals"]
    assert totals["shown"] == len(shown)
    assert (totals["used"], totals["edited"], totals["dismissed"]) == (0, 1, 1)
    assert totals["acceptance_rate"] == round(1 / len(shown), 4)
    assert stats["per_agent"]["alice"] == totals and sum(d["shown"] for d in stats["per_day"].values()) == len(shown)
    # The earlier conversation's first reply was made without suggestions.
    assert stats["first_response_without_suggestion"]["count"] == 1
    bob = await ok(api.get("/stats/assist", params={"agent": "bob"}, headers=ALICE))
    assert bob["totals"] == {"shown": 0, "used": 0, "edited": 0, "dismissed": 0, "acceptance_rate": None}
