"""The store's reads behind the live columns and the history, on SQLite and PostgreSQL:
orders, filters, and keyset pages that neither skip nor repeat a row when start times tie."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from handoff.models import (
    BotAnswered,
    Close,
    Command,
    CustomerMessage,
    HandBack,
    Outcome,
    RequestHuman,
    Status,
    TakeOver,
)
from handoff.store import InvalidCursor, Store
from tests.helpers import ALICE, BOB, play

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ASK: list[Command] = [CustomerMessage(text="hello"), BotAnswered(reply_to=1, text="Hi!"), RequestHuman()]


def record(store: Store, cid: str, start: datetime, commands: list[Command]) -> None:
    """Play commands through the real rules, one second apart, and record them as the workflow does."""
    for batch in play(cid, start, commands, customer_id=f"customer-of-{cid}")[1]:
        store.record(batch)


def test_the_live_columns(empty_store: Store) -> None:
    # Recorded in another order than they started waiting in.
    record(empty_store, "late", T0, ASK)
    record(empty_store, "early", T0 - timedelta(minutes=5), ASK)
    record(empty_store, "middle", T0 - timedelta(minutes=1), ASK)
    record(empty_store, "taken", T0, [*ASK, TakeOver(agent=ALICE)])
    record(empty_store, "taken-later", T0 + timedelta(minutes=1), [*ASK, TakeOver(agent=ALICE)])
    record(empty_store, "bobs", T0, [*ASK, TakeOver(agent=BOB)])
    record(empty_store, "closed", T0, [*ASK, TakeOver(agent=ALICE), Close(agent=ALICE, outcome=Outcome.RESOLVED)])
    record(empty_store, "bot", T0, [CustomerMessage(text="hello")])
    waiting = empty_store.waiting()
    assert [c.conversation_id for c in waiting] == ["early", "middle", "late"]
    assert all(c.status is Status.WAITING and c.waiting_since for c in waiting)
    assert [c.conversation_id for c in empty_store.assigned_to(ALICE.id)] == ["taken", "taken-later"]
    assert [c.conversation_id for c in empty_store.assigned_to(BOB.id)] == ["bobs"]
    assert empty_store.assigned_to("nobody") == []


def test_history_pages_filters_and_windows(empty_store: Store) -> None:
    handled_by_alice = [*ASK, TakeOver(agent=ALICE), HandBack(agent=ALICE)]
    closed_by_bob = [*ASK, TakeOver(agent=BOB), Close(agent=BOB, outcome=Outcome.NOT_RESOLVED)]
    starts = {  # three conversations share each of two start times
        "a": T0,
        "b": T0,
        "c": T0,
        "d": T0 + timedelta(hours=1),
        "e": T0 + timedelta(hours=1),
        "f": T0 + timedelta(hours=1),
        "g": T0 + timedelta(hours=2),
    }
    for cid, start in starts.items():
        record(empty_store, cid, start, closed_by_bob if cid in "bf" else handled_by_alice if cid == "d" else ASK)
    newest_first = ["g", "f", "e", "d", "c", "b", "a"]

    for limit in (1, 2, 3, 7, 50):
        seen: list[str] = []
        cursor = None
        while True:
            page = empty_store.history(limit=limit, cursor=cursor)
            assert len(page.conversations) <= limit
            seen += [c.conversation_id for c in page.conversations]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == newest_first, limit

    def ids(**filters: object) -> list[str]:
        return [c.conversation_id for c in empty_store.history(**filters).conversations]  # type: ignore[arg-type]

    assert ids(status=Status.CLOSED) == ["f", "b"]
    assert ids(outcome=Outcome.NOT_RESOLVED) == ["f", "b"]
    assert ids(outcome=Outcome.RESOLVED) == []
    assert ids(agent_id=BOB.id) == ["f", "b"]
    assert ids(agent_id=ALICE.id) == ["d"]  # handed back: no holder now, but she took it over
    assert ids(status=Status.WAITING, since=T0 + timedelta(hours=1)) == ["g", "e"]
    assert ids(since=T0, until=T0 + timedelta(hours=1)) == ["c", "b", "a"]
    assert ids(until=T0) == []
    # A later page keeps its filters.
    first = empty_store.history(status=Status.WAITING, limit=2)
    assert [c.conversation_id for c in first.conversations] == ["g", "e"]
    second = empty_store.history(status=Status.WAITING, limit=2, cursor=first.next_cursor)
    assert [c.conversation_id for c in second.conversations] == ["c", "a"]
    assert second.next_cursor is None


@pytest.mark.parametrize("cursor", ["", "garbage", "e30", "eyJzIjogMX0", "WyJhIl0"])
def test_a_cursor_the_store_did_not_make_is_refused(empty_store: Store, cursor: str) -> None:
    with pytest.raises(InvalidCursor, match="next_cursor"):
        empty_store.history(cursor=cursor)
