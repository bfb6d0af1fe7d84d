"""The events table: written with the facts that cause them, once, in order (each backend)."""

from __future__ import annotations

from datetime import UTC, datetime

from handoff.models import BotAnswered, Close, Command, CustomerMessage, Outcome, RequestHuman, TakeOver
from handoff.store import Store
from tests.helpers import ALICE, new_id, play

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCRIPT: list[Command] = [
    CustomerMessage(text="hello"),
    BotAnswered(reply_to=1, text="Hi!"),
    RequestHuman(),
    TakeOver(agent=ALICE),
    Close(agent=ALICE, outcome=Outcome.RESOLVED),
]


def test_each_new_fact_is_published_once_in_order_and_a_retried_batch_publishes_nothing(empty_store: Store) -> None:
    cid = new_id()
    _, batches = play(cid, T0, SCRIPT)
    for batch in batches:
        empty_store.record(batch)
    first = empty_store.events_after(0)
    for batch in batches:  # the recorder's retry, or the other writer's copy
        empty_store.record(batch)
    assert empty_store.events_after(0) == first
    assert [(e.kind, e.audience, e.payload.get("status") or e.payload["entry"]["text"]) for e in first] == [
        ("status", "customer", "bot"),
        ("message", "customer", "hello"),
        ("message", "customer", "Hi!"),
        ("status", "customer", "waiting"),
        ("note", "agents", "The customer asked for a person"),
        ("status", "customer", "human"),
        ("note", "agents", "Alice Martin joined the conversation"),
        ("status", "customer", "closed"),
        ("note", "agents", "Alice Martin closed the conversation as resolved"),
    ]
    assert [e.id for e in first] == sorted({e.id for e in first})
    assert empty_store.last_event_id() == first[-1].id
    assert empty_store.events_after(first[2].id, audience="customer", limit=2) == [first[3], first[5]]


def test_only_one_process_holds_the_webhooks_lease_until_it_expires(empty_store: Store) -> None:
    assert empty_store.take_lease("webhooks", "process-a", 60)
    assert not empty_store.take_lease("webhooks", "process-b", 60)
    assert empty_store.take_lease("webhooks", "process-a", 60)  # renewal
    assert empty_store.take_lease("webhooks", "process-a", -1)  # now expired
    assert empty_store.take_lease("webhooks", "process-b", 60)
    empty_store.release_lease("webhooks", "process-b")
    assert empty_store.take_lease("webhooks", "process-a", 60)


def test_internal_notes_are_for_agents_and_a_superseded_status_is_not_streamed() -> None:
    """An internal note (or the handover summary) never reaches a customer's stream; a transition
    recorded after a later one (two writers) does not move the streams backwards."""
    from datetime import UTC, datetime

    from handoff.models import EntryKind, Fact, FactKind, TranscriptEntry
    from handoff.push import events_for

    at = datetime(2026, 12, 1, tzinfo=UTC)
    note = TranscriptEntry(seq=3, at=at, kind=EntryKind.INTERNAL, author="Alice Martin", text="VIP customer")
    rows = events_for(
        "c-1",
        [
            Fact(conversation_id="c-1", number=3, kind=FactKind.NOTE, at=at, entry=note),
            Fact(conversation_id="c-1", number=4, kind=FactKind.HUMAN_REQUESTED, at=at),
        ],
        current_status="human",
    )
    assert [(r["kind"], r["audience"]) for r in rows] == [("note", "agents")]
