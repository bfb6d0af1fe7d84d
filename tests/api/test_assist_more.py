"""AI assist through the API and the Python client (issue 14, items 1 and 5): a team's language
model rewrites the suggestions and the handover summary (the note itself stays as written); the
client gives the same suggestions, takes feedback, and keeps a conversation out of the index, as
`POST /conversations/{id}/exclude-from-suggestions` does."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from handoff.api import create_app
from handoff.bot import KnowledgeBaseBot
from handoff.client import ConversationNotFound, HandoffClient, NotAssignedAgent
from handoff.config import Settings
from handoff.handover import AUTHOR
from handoff.models import Agent
from handoff.store import Store
from tests.api.conftest import TEST_SECRET
from tests.api.helpers import ALICE, ok, refused, start
from tests.api.test_suggestions import DISCOUNT_REPLY, PASSWORD_ANSWER, held_by_alice, resolved
from tests.fake_openai import server
from tests.helpers import eventually, new_id
from worker import build_worker

__all__ = ["server"]  # the fixture

ALICE_AGENT = Agent(id="alice", name="Alice")  # the API's demo agents
BOB_AGENT = Agent(id="bob", name="Bob")
WARRANTY = "Does my warranty cover accidental damage to the screen?"


async def test_a_teams_language_model_rewrites_suggestions_and_the_handover_summary(
    temporal_env: WorkflowEnvironment, bot: KnowledgeBaseBot, empty_store: Store, server: str
) -> None:
    task_queue = f"handoff-llm-{new_id()[:8]}"
    settings = Settings(
        task_queue=task_queue,
        customer_token_secret=SecretStr(TEST_SECRET),
        api_temporal_timeout=20.0,
        llm_base_url=server,
        llm_model="good",
        llm_api_key=SecretStr("sk-team-key"),
    )
    handoff = HandoffClient(temporal_env.client, task_queue, empty_store, handover_summaries=True)
    app = create_app(settings, client=handoff, store=empty_store)
    async with build_worker(temporal_env.client, task_queue, empty_store, bot):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://handoff.test", timeout=60) as api:
            created = await start(api, WARRANTY, "customer-llm")
            cid = created["id"]
            customer = {"Authorization": f"Bearer {created['customer_token']}"}
            await ok(api.post(f"/conversations/{cid}/request-human", headers=customer), 202)

            async def status() -> str:
                return str((await ok(api.get(f"/conversations/{cid}", headers=ALICE)))["status"])

            await eventually(status, lambda s: s == "waiting", what="the request in the database")
            await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))
            await eventually(status, lambda s: s == "human", what="the take-over in the database")
            await ok(
                api.post(
                    f"/conversations/{cid}/messages", json={"text": "Also I forgot my password"}, headers=customer
                ),
                202,
            )

            async def transcript() -> list[str]:
                detail = await ok(api.get(f"/conversations/{cid}", headers=ALICE))
                return [e["text"] for e in detail["transcript"]]

            await eventually(transcript, lambda texts: "Also I forgot my password" in texts, what="the message stored")

            summary = await ok(api.get(f"/conversations/{cid}/handover-summary", headers=ALICE))
            assert summary["rewritten"] is True and summary["text"].startswith("Rewritten: ")
            detail = await ok(api.get(f"/conversations/{cid}", headers=ALICE))
            [note] = [e for e in detail["transcript"] if e["author"] == AUTHOR]
            assert summary["seq"] == note["seq"] and WARRANTY in note["text"]  # the note as written

            body = await ok(api.get(f"/conversations/{cid}/suggestions", headers=ALICE))
            assert body["suggestions"], body
            for suggestion in body["suggestions"]:
                assert suggestion["rewritten"] is True and suggestion["text"].startswith("Rewritten: ")
            await refused(api.get("/conversations/no-such-one/handover-summary", headers=ALICE), 404)


async def test_the_client_suggests_takes_feedback_and_excludes_like_the_api(
    own_api: tuple[httpx.AsyncClient, Store], temporal_env: WorkflowEnvironment
) -> None:
    api, store = own_api
    solved = await resolved(
        api, store, "assist-1", "My discount code is not accepted at checkout", DISCOUNT_REPLY, "resolved"
    )
    current = await held_by_alice(api, store, "assist-2", "the discount code is not accepted, I forgot my password")
    # A client of the same database (suggestions read it only: no Temporal action).
    client = HandoffClient(temporal_env.client, "unused-task-queue", store)

    suggested = await client.suggestions(current, ALICE_AGENT)
    by_text = {s.text: s for s in suggested.suggestions}
    assert {DISCOUNT_REPLY, PASSWORD_ANSWER} <= set(by_text)
    assert by_text[DISCOUNT_REPLY].source.conversation_id == solved
    through_api = await ok(api.get(f"/conversations/{current}/suggestions", headers=ALICE))
    assert [s["id"] for s in through_api["suggestions"]] == [s.id for s in suggested.suggestions]
    feedback = await client.suggestion_feedback(current, ALICE_AGENT, by_text[PASSWORD_ANSWER].id, "dismissed")
    assert feedback.action == "dismissed" and not feedback.implicit
    try:
        await client.suggestions(current, BOB_AGENT)
        raise AssertionError("Bob does not hold the conversation")
    except NotAssignedAgent:
        pass

    # Excluded through the API: the past reply is no longer suggested, to anyone.
    excluded = await ok(api.post(f"/conversations/{solved}/exclude-from-suggestions", headers=ALICE))
    assert excluded == {"conversation_id": solved, "replies_removed": 1}
    after = await ok(api.get(f"/conversations/{current}/suggestions", headers=ALICE))
    assert DISCOUNT_REPLY not in [s["text"] for s in after["suggestions"]]
    await refused(api.post("/conversations/no-such-one/exclude-from-suggestions", headers=ALICE), 404)

    # Excluded through the client before its close: a close as resolved does not index it.
    other = await held_by_alice(api, store, "assist-3", "My voucher is not accepted at checkout")
    assert await client.exclude_from_suggestions(other, ALICE_AGENT) == 0
    await ok(api.post(f"/conversations/{other}/replies", json={"text": "Vouchers expire after a year."}, headers=ALICE))
    await ok(api.post(f"/conversations/{other}/close", json={"outcome": "resolved"}, headers=ALICE))

    async def closed() -> Any:
        return store.summary(other)

    await eventually(closed, lambda s: s is not None and s.status.value == "closed", what="closed in the database")
    again = await client.suggestions(current, ALICE_AGENT)
    assert "Vouchers expire after a year." not in [s.text for s in again.suggestions]
    try:
        await client.exclude_from_suggestions("no-such-one", ALICE_AGENT)
        raise AssertionError("no such conversation")
    except ConversationNotFound:
        pass
