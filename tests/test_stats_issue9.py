"""The issue 9 figures: inactive closes, hand-off and bot-resolution rates, queue abandonment,
SLA breaches, transfers and ratings, from conversations played through the real rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handoff.lifecycle import Conversation, new_state
from handoff.models import (
    AgentReply,
    BotAnswered,
    Close,
    Command,
    CustomerMessage,
    Outcome,
    RecordBatch,
    RequestHuman,
    TakeOver,
    TimerSettings,
    Transfer,
)
from handoff.stats import RatingStats, compute_stats
from handoff.store import Rating, Store
from tests.helpers import ALICE, BOB

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
TIMERS = TimerSettings(
    bot_idle_close=timedelta(hours=1), waiting_sla=timedelta(minutes=2), first_reply_sla=timedelta(minutes=5)
)


def play(store: Store, conversation_id: str, steps: list[tuple[int, Command | str]]) -> None:
    """Apply each command at T0 + seconds; "timer" fires the next pending timer at its deadline."""
    conv = Conversation(new_state(conversation_id, "customer-1", T0, timers=TIMERS))
    for seconds, command in steps:
        if command == "timer":
            fired = conv.next_timer()
            assert fired is not None
            facts = conv.apply(fired, fired.deadline)
        else:
            assert not isinstance(command, str)
            facts = conv.apply(command, T0 + timedelta(seconds=seconds))
        store.record(RecordBatch(summary=conv.state.summary(), facts=facts))


def test_new_figures_over_four_conversations(empty_store: Store) -> None:
    store = empty_store
    hello = CustomerMessage(text="hello")
    # A: the bot alone; the customer goes quiet and it closes as inactive.
    play(store, "a", [(0, hello), (1, BotAnswered(reply_to=1, text="hi")), (0, "timer")])
    # B: asks for a person, nobody comes: overdue, then closed from the queue.
    play(store, "b", [(0, hello), (1, RequestHuman()), (0, "timer"), (0, "timer")])
    # C: Alice takes it but does not reply in time, transfers to Bob, who replies and resolves it.
    play(
        store,
        "c",
        [
            (0, hello),
            (1, RequestHuman()),
            (10, TakeOver(agent=ALICE)),
            (0, "timer"),
            (400, Transfer(agent=ALICE, to=BOB, request_id="t1")),
            (420, AgentReply(agent=BOB, text="Bob here")),
            (500, Close(agent=BOB, outcome=Outcome.RESOLVED)),
        ],
    )
    # D: Alice takes it, replies, closes as not resolved.
    play(
        store,
        "d",
        [
            (0, hello),
            (1, RequestHuman()),
            (10, TakeOver(agent=ALICE)),
            (20, AgentReply(agent=ALICE, text="hi")),
            (30, Close(agent=ALICE, outcome=Outcome.NOT_RESOLVED)),
        ],
    )
    assert store.add_rating(Rating("c", 4, "thanks", T0 + timedelta(hours=1), BOB))
    assert not store.add_rating(Rating("c", 1, "changed my mind", T0 + timedelta(hours=2), BOB))

    totals = compute_stats(store).totals
    assert totals.conversations_started == 4
    assert (totals.closed_resolved, totals.closed_not_resolved, totals.closed_inactive) == (1, 1, 2)
    assert totals.handoff_rate == 3 / 4  # B, C, D asked for a person
    assert totals.bot_resolution_rate == 1 / 4  # A of the four closed
    assert totals.abandoned_in_queue == 1  # B
    assert (totals.waiting_sla_breaches, totals.first_reply_sla_breaches, totals.transfers) == (1, 1, 1)
    assert totals.rating == RatingStats(
        count=1, mean=4.0, distribution={1: 0, 2: 0, 3: 0, 4: 1, 5: 0}, response_rate=1 / 2
    )
    # B's wait ended when it closed: it is not still open.
    assert totals.waiting_time.open == 0

    alice, bob = compute_stats(store).per_agent
    assert (alice.agent_id, alice.transfers, alice.first_reply_sla_breaches) == (ALICE.id, 1, 1)
    assert (alice.rating.count, alice.rating.response_rate) == (0, 0.0)  # closed D, not rated
    assert (bob.agent_id, bob.rating.count, bob.rating.mean, bob.rating.response_rate) == (BOB.id, 1, 4.0, 1.0)
    # Alice's handling of C ended with the transfer, Bob's with the close.
    assert alice.handling_time.count == 2 and bob.handling_time.count == 1

    # A window after everything: nothing counted, ratings included.
    later = compute_stats(store, since=T0 + timedelta(days=1))
    assert later.totals.rating.count == 0 and later.totals.closed_inactive == 0
