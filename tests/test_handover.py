"""The handover summary (issue 14, item 2): the agent taking over reads, in an internal note,
what the customer asked the bot, what it answered, where it had no answer and when a person
was asked for; the customer never sees it; it rides along with the take-over's facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from handoff.api import create_app
from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.handover import AUTHOR
from handoff.lifecycle import Conversation, new_state
from handoff.models import BotAnswered, CustomerMessage, EntryKind, FactKind, HandBack, TakeOver
from handoff.store import Store
from tests.api.conftest import TEST_SECRET
from tests.api.helpers import ALICE, ok, start
from tests.helpers import ALICE as ALICE_AGENT
from tests.helpers import eventually, new_id
from worker import build_worker

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
WARRANTY = "Does my warranty cover accidental damage to the screen?"


def conversation(summaries: bool = True) -> Conversation:
    state = new_state("c-1", "customer-1", T0)
    state.handover_summaries = summaries
    return Conversation(state)


def bot_session(conv: Conversation) -> None:
    conv.apply(CustomerMessage(text="How do I reset my password?"), T0)
    conv.apply(BotAnswered(reply_to=1, text="You can reset it from the sign-in page."), T0 + timedelta(seconds=1))
    conv.apply(CustomerMessage(text=WARRANTY), T0 + timedelta(seconds=2))
    conv.apply(BotAnswered(reply_to=3, text="Sorry, I don't know.", fallback=True), T0 + timedelta(seconds=3))
    conv.apply(CustomerMessage(text="talk to a human"), T0 + timedelta(minutes=1))
    conv.apply(BotAnswered(reply_to=5, text="Connecting you.", wants_human=True), T0 + timedelta(minutes=1, seconds=1))


def test_a_take_over_adds_the_summary_of_the_bot_session_as_an_internal_note() -> None:
    conv = conversation()
    bot_session(conv)
    facts = conv.apply(TakeOver(agent=ALICE_AGENT), T0 + timedelta(minutes=3))
    summary = conv.state.transcript[-1]
    assert (summary.kind, summary.author) == (EntryKind.INTERNAL, AUTHOR)
    assert summary.text == (
        "The customer wrote 3 messages to the bot:\n"
        "- “How do I reset my password?”\n"
        f"- “{WARRANTY}”\n"
        "- “talk to a human”\n"
        "The bot answered 2 from the knowledge base; it had no answer to 1:\n"
        f"- “{WARRANTY}”\n"
        "A person was requested at 10:01 UTC."
    )
    # Written with the take-over's facts, in the same step: no activity of its own.
    assert [f.kind for f in facts] == [FactKind.TAKEN_OVER, FactKind.NOTE, FactKind.NOTE]
    assert facts[-1].entry == summary


def test_a_second_take_over_summarises_only_what_came_after_the_agent() -> None:
    conv = conversation()
    conv.apply(CustomerMessage(text="hello"), T0)
    conv.apply(TakeOver(agent=ALICE_AGENT), T0 + timedelta(seconds=5))
    from handoff.models import AgentReply

    conv.apply(AgentReply(agent=ALICE_AGENT, text="Hi, how can I help?"), T0 + timedelta(seconds=6))
    conv.apply(HandBack(agent=ALICE_AGENT), T0 + timedelta(seconds=7))
    conv.apply(CustomerMessage(text="where is my parcel?"), T0 + timedelta(seconds=8))
    conv.apply(TakeOver(agent=ALICE_AGENT), T0 + timedelta(seconds=9))
    notes = [e.text for e in conv.state.transcript if e.kind is EntryKind.INTERNAL]
    assert notes[-1].startswith("The customer wrote 1 message to the bot:\n- “where is my parcel?”")
    assert notes[-1].endswith("the agent took the conversation from the bot.")


def test_no_summary_for_conversations_started_before_it_or_without_a_bot_session() -> None:
    old = conversation(summaries=False)
    bot_session(old)
    old.apply(TakeOver(agent=ALICE_AGENT), T0 + timedelta(minutes=3))
    assert not [e for e in old.state.transcript if e.kind is EntryKind.INTERNAL]


@pytest.mark.parametrize("empty_store", ["sqlite"], indirect=True)
async def test_through_the_api_the_agent_reads_the_summary_and_the_customer_never_does(
    temporal_env: WorkflowEnvironment, bot: KnowledgeBaseBot, empty_store: Store
) -> None:
    task_queue = f"handoff-summary-{new_id()[:8]}"
    settings = Settings(task_queue=task_queue, customer_token_secret=SecretStr(TEST_SECRET), api_temporal_timeout=20.0)
    handoff = HandoffClient(temporal_env.client, task_queue, empty_store, handover_summaries=True)
    app = create_app(settings, client=handoff, store=empty_store)
    async with build_worker(temporal_env.client, task_queue, empty_store, bot):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://handoff.test", timeout=60) as api:
            created = await start(api, WARRANTY, "customer-summary")
            customer = {"Authorization": f"Bearer {created['customer_token']}"}
            cid = created["id"]
            await ok(api.post(f"/conversations/{cid}/request-human", headers=customer), 202)

            async def waiting() -> str:
                return str((await ok(api.get(f"/conversations/{cid}", headers=ALICE)))["status"])

            await eventually(waiting, lambda status: status == "waiting", what="the request in the database")
            await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))
            detail = await ok(api.get(f"/conversations/{cid}", headers=ALICE))
            notes = [e for e in detail["transcript"] if e["kind"] == "internal"]
            assert len(notes) == 1 and notes[0]["author"] == AUTHOR
            assert f"it had no answer to 1:\n- “{WARRANTY}”" in notes[0]["text"]
            seen = await ok(api.get(f"/conversations/{cid}/messages", headers=customer))
            assert not any(m["author"] == AUTHOR or "knowledge base" in m["text"] for m in seen["messages"])
