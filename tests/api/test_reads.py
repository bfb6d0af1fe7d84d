"""The agent UI's reads: the history a page at a time, a conversation Temporal no longer has,
the statistics, and the OpenAPI description."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from handoff.models import Agent, ConversationSummary, EntryKind, Fact, FactKind, RecordBatch, Status, TranscriptEntry
from handoff.store import Store
from tests.api.helpers import ALICE, BOB, ids, ok, refused, start
from tests.helpers import eventually, new_id


async def test_history_is_newest_first_one_page_at_a_time(own_api: tuple[httpx.AsyncClient, Store]) -> None:
    api, _ = own_api  # a store of its own: every row it lists is one of these three
    since = datetime.now(UTC) - timedelta(seconds=1)
    created = [(await start(api, "hello", f"history-{n}"))["id"] for n in range(3)]
    newest_first = list(reversed(created))
    window = {"since": since.isoformat(), "until": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()}

    async def everything() -> dict[str, Any]:
        return await ok(api.get("/conversations", params=window, headers=ALICE))

    # The rows appear once the first facts are recorded.
    await eventually(everything, lambda page: set(created) <= set(ids(page)))
    assert ids(await ok(api.get("/conversations", headers=ALICE))) == newest_first
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {**window, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await ok(api.get("/conversations", params=params, headers=BOB))
        pages.append(ids(page))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [newest_first[:2], newest_first[2:]]
    started = [r["started_at"] for r in (await everything())["conversations"]]
    assert started == sorted(started, reverse=True)
    # Filters narrow it: none of these was taken over or closed.
    for query in ({"status": "closed"}, {"agent": "alice"}, {"outcome": "resolved"}):
        assert ids(await ok(api.get("/conversations", params={**window, **query}, headers=ALICE))) == []
    bot_only = await ok(api.get("/conversations", params={**window, "status": "bot"}, headers=ALICE))
    assert ids(bot_only) == newest_first
    # A window that ended before they started has none of them.
    before = {"until": since.isoformat()}
    assert ids(await ok(api.get("/conversations", params=before, headers=ALICE))) == []


async def test_a_conversation_temporal_no_longer_has_is_read_from_the_database(
    own_api: tuple[httpx.AsyncClient, Store],
) -> None:
    """E.g. its workflow was terminated and purged while an agent held it: the recorded facts
    remain. Written into a store of the test's own, so no other test sees the invented row."""
    api, store = own_api
    cid, then = new_id(), datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    former = Agent(id="former-agent", name="Former Agent")
    entry = TranscriptEntry(seq=1, at=then, kind=EntryKind.CUSTOMER, author="customer", text="an old question")
    summary = ConversationSummary(
        conversation_id=cid,
        customer_id="old",
        status=Status.HUMAN,
        agent=former,
        started_at=then,
        updated_at=then,
        assigned_at=then,
        last_fact=1,
    )
    store.record(
        RecordBatch(
            summary=summary, facts=[Fact(conversation_id=cid, number=1, kind=FactKind.MESSAGE, at=then, entry=entry)]
        )
    )
    detail = await ok(api.get(f"/conversations/{cid}", headers=ALICE))
    assert (detail["live"], detail["status"], detail["agent"]) == (False, "human", former.model_dump())
    assert [e["text"] for e in detail["transcript"]] == ["an old question"]
    # Commands still go to Temporal, which does not know it.
    await refused(api.post(f"/conversations/{cid}/takeover", headers=ALICE), 404)


async def test_stats_answer_for_a_window_and_an_agent(own_api: tuple[httpx.AsyncClient, Store]) -> None:
    api, _ = own_api  # a store of its own: the statistics count this one conversation only
    since = datetime.now(UTC) - timedelta(seconds=1)
    cid = (await start(api))["id"]
    await ok(api.post(f"/conversations/{cid}/takeover", headers=BOB))
    await ok(api.post(f"/conversations/{cid}/close", json={"outcome": "not_resolved"}, headers=BOB))
    window = {"since": since.isoformat()}
    stats = await eventually(
        lambda: ok(api.get("/stats", params={**window, "agent": "bob"}, headers=ALICE)),
        lambda s: s["totals"]["closed_not_resolved"] >= 1,
    )
    assert stats["agent_id"] == "bob"
    assert stats["totals"]["closed_not_resolved"] == 1
    assert [a["agent_id"] for a in stats["per_agent"]] == ["bob"]
    everyone = await ok(api.get("/stats", params=window, headers=ALICE))
    assert everyone["totals"]["conversations_started"] == 1
    # Naive times are UTC: a window that ends before now, written without a zone, excludes it.
    naive = {"until": since.replace(tzinfo=None).isoformat(), "agent": "bob"}
    earlier = await ok(api.get("/stats", params=naive, headers=ALICE))
    assert earlier["totals"]["closed_not_resolved"] == 0
    await refused(api.get("/stats"), 401)


async def test_the_api_describes_itself(api: httpx.AsyncClient) -> None:
    spec = await ok(api.get("/openapi.json"))
    assert set(spec["paths"]) >= {
        "/conversations",
        "/conversations/{conversation_id}",
        "/conversations/{conversation_id}/messages",
        "/conversations/{conversation_id}/request-human",
        "/conversations/{conversation_id}/takeover",
        "/conversations/{conversation_id}/replies",
        "/conversations/{conversation_id}/hand-back",
        "/conversations/{conversation_id}/close",
        "/live/waiting",
        "/live/mine",
        "/stats",
    }
    assert set(spec["components"]["securitySchemes"]) >= {"CustomerToken", "AgentToken"}
    docs = await api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
