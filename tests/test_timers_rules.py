"""Issue 9 in the rules layer: timers as absolute deadlines, transfer, release, internal notes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from handoff.config import Settings
from handoff.lifecycle import Conversation, Rejected, RejectionCode, new_state
from handoff.models import (
    AddNote,
    AgentReply,
    BotAnswered,
    Close,
    CustomerMessage,
    EntryKind,
    FactKind,
    Outcome,
    Release,
    RequestHuman,
    Status,
    TakeOver,
    TimerKind,
    TimerSettings,
    Transfer,
)
from tests.helpers import ALICE, BOB

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TIMERS = TimerSettings(
    bot_idle_close=timedelta(hours=24),
    human_idle_close=timedelta(minutes=30),
    waiting_sla=timedelta(minutes=2),
    waiting_notice="Everyone is busy; we will be with you soon.",
    first_reply_sla=timedelta(minutes=5),
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fresh(timers: TimerSettings = TIMERS) -> Conversation:
    conv = Conversation(new_state("c1", "customer-1", T0, timers=timers))
    conv.apply(CustomerMessage(text="hello"), T0)
    return conv


def fire_next(conv: Conversation) -> None:
    timer = conv.next_timer()
    assert timer is not None
    conv.apply(timer, timer.deadline)


def texts(conv: Conversation, kind: EntryKind) -> list[str]:
    return [e.text for e in conv.state.transcript if e.kind is kind]


def test_a_silent_customer_with_the_bot_is_closed_as_inactive_after_the_idle_time() -> None:
    conv = fresh()
    conv.apply(BotAnswered(reply_to=1, text="hi"), at(1))
    assert conv.next_timer() is not None and conv.next_timer().deadline == T0 + timedelta(hours=24)  # type: ignore[union-attr]
    fire_next(conv)
    assert conv.status is Status.CLOSED and conv.state.outcome is Outcome.INACTIVE
    assert conv.state.closed_by is None
    assert texts(conv, EntryKind.SYSTEM) == ["Closed after 24h without a message"]
    assert conv.next_timer() is None


def test_a_customer_message_moves_the_idle_deadline_and_the_old_one_changes_nothing() -> None:
    conv = fresh()
    old = conv.next_timer()
    assert old is not None
    conv.apply(CustomerMessage(text="still there"), at(3600))
    assert conv.next_timer() == old.model_copy(update={"deadline": at(3600) + timedelta(hours=24)})
    assert conv.apply(old, old.deadline) == []  # the moot timer, had it fired anyway
    assert conv.status is Status.BOT


def test_an_armed_timer_is_kept_while_deadlines_move_later_and_replaced_by_an_earlier_one_or_none() -> None:
    """One Temporal timer serves a customer who keeps writing: each message moves the idle
    deadline later, which keeps the timer armed for the first one (the workflow re-arms when it
    fires); a request for a person brings an earlier deadline (the waiting SLA), which replaces it."""
    conv = fresh(TIMERS.model_copy(update={"human_idle_close": None}))
    conv.state.lazy_timers = True
    armed = conv.next_timer()
    assert armed is not None and armed.deadline == at(0) + timedelta(hours=24)
    for minute in range(1, 6):
        conv.apply(CustomerMessage(text=f"message {minute}"), at(60 * minute))
        assert not conv.replaces_armed_timer(armed)
    # When the armed timer fires, nothing is due: the idle close is 5 minutes later.
    assert conv.apply(armed, armed.deadline) == []
    later = conv.next_timer()
    assert later is not None and later.deadline == at(300) + timedelta(hours=24)
    conv.apply(RequestHuman(), at(400))
    assert conv.replaces_armed_timer(later)  # the waiting SLA is due first
    sla = conv.next_timer()
    assert sla is not None and sla.deadline == at(400) + timedelta(minutes=2)
    conv.apply(TakeOver(agent=ALICE), at(420))  # the first-reply SLA, later than the waiting SLA was
    assert not conv.replaces_armed_timer(sla)
    conv.apply(AgentReply(agent=ALICE, text="hi"), at(440))  # no timer left (human idle is off)
    assert conv.next_timer() is None and conv.replaces_armed_timer(sla)


def test_conversations_started_before_lazy_timers_replace_the_armed_timer_at_every_change() -> None:
    conv = fresh()
    armed = conv.next_timer()
    assert armed is not None and not conv.replaces_armed_timer(armed)
    conv.apply(CustomerMessage(text="still there"), at(60))
    assert conv.replaces_armed_timer(armed)


def test_waiting_sla_flags_once_and_sends_the_notice_then_the_idle_close_counts_as_abandoned() -> None:
    conv = fresh()
    conv.apply(RequestHuman(), at(10))
    fire_next(conv)  # the waiting SLA, 2 minutes after the request
    breaches = [f for f in conv.state.outbox if f.kind is FactKind.WAITING_SLA_BREACHED]
    assert [f.at for f in breaches] == [at(130)]
    assert texts(conv, EntryKind.BOT) == ["Everyone is busy; we will be with you soon."]
    assert conv.state.status is Status.WAITING
    fire_next(conv)  # nobody came, the customer said nothing: closed from the queue
    assert conv.state.model_dump()["status"] == "closed" and conv.state.outcome is Outcome.INACTIVE


def test_a_take_over_cancels_the_waiting_sla_and_starts_the_first_reply_sla() -> None:
    conv = fresh()
    conv.apply(RequestHuman(), at(10))
    conv.apply(TakeOver(agent=ALICE), at(20))
    assert set(conv.state.pending_timers) == {TimerKind.FIRST_REPLY_SLA}
    conv.apply(AgentReply(agent=ALICE, text="hi"), at(30))
    assert set(conv.state.pending_timers) == {TimerKind.HUMAN_IDLE_CLOSE}


def test_first_reply_sla_breach_returns_the_conversation_to_the_front_when_asked() -> None:
    conv = fresh(TIMERS.model_copy(update={"first_reply_sla_return": True}))
    conv.apply(RequestHuman(), at(10))
    conv.apply(TakeOver(agent=ALICE), at(20))
    fire_next(conv)
    assert conv.status is Status.WAITING and conv.state.agent is None
    assert conv.state.waiting_since == at(10)  # where it first asked
    assert texts(conv, EntryKind.SYSTEM)[-1] == (
        "Alice Martin did not reply in time; the conversation is back in the queue"
    )
    kinds = [f.kind for f in conv.state.outbox if f.kind is not FactKind.NOTE]
    assert kinds[-2:] == [FactKind.FIRST_REPLY_SLA_BREACHED, FactKind.RELEASED]


def test_a_silent_customer_after_the_agents_reply_is_closed_and_the_assignment_ends() -> None:
    conv = fresh()
    conv.apply(TakeOver(agent=ALICE), at(5))
    conv.apply(AgentReply(agent=ALICE, text="how can I help?"), at(6))
    fire_next(conv)
    assert conv.status is Status.CLOSED and conv.state.outcome is Outcome.INACTIVE and conv.state.agent is None
    assert texts(conv, EntryKind.SYSTEM)[-1] == "Closed after 30m without a message"
    closed = [f for f in conv.state.outbox if f.kind is FactKind.CLOSED]
    assert [(f.agent, f.at) for f in closed] == [(ALICE, at(6) + timedelta(minutes=30))]


def test_timer_facts_are_keyed_by_their_cause() -> None:
    conv = fresh()
    conv.apply(RequestHuman(), at(10))
    fire_next(conv)
    breach = next(f for f in conv.state.outbox if f.kind is FactKind.WAITING_SLA_BREACHED)
    assert breach.cause == f"timer:waiting_sla:{at(130).isoformat()}:breached"
    assert breach.key.startswith("c1:~") and len(breach.key) == len("c1:~") + 16


def test_transfer_release_and_internal_notes() -> None:
    conv = fresh()
    conv.apply(RequestHuman(), at(10))
    conv.apply(TakeOver(agent=ALICE), at(20))
    conv.apply(Transfer(agent=ALICE, to=BOB, note="VIP customer", request_id="u1"), at(30))
    assert conv.state.agent == BOB and conv.state.assigned_at == at(30)
    assert texts(conv, EntryKind.SYSTEM)[-1] == "Alice Martin transferred the conversation to Bob Stone"
    assert texts(conv, EntryKind.INTERNAL) == ["VIP customer"]
    conv.apply(AddNote(agent=ALICE, text="refund approved"), at(35))
    conv.apply(Release(agent=BOB), at(40))
    assert conv.status is Status.WAITING and conv.state.waiting_since == at(10)
    assert texts(conv, EntryKind.SYSTEM)[-1] == "Bob Stone returned the conversation to the queue"
    assert texts(conv, EntryKind.INTERNAL) == ["VIP customer", "refund approved"]
    transferred = next(f for f in conv.state.outbox if f.kind is FactKind.TRANSFERRED)
    assert transferred.cause == "transfer:u1:transferred"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (Transfer(agent=ALICE, to=ALICE), RejectionCode.INVALID_TARGET),
        (Transfer(agent=BOB, to=ALICE), RejectionCode.NOT_ASSIGNED),
        (Transfer(agent=ALICE, to=BOB, note=" "), RejectionCode.INVALID),
        (Release(agent=BOB), RejectionCode.NOT_ASSIGNED),
        (AddNote(agent=BOB, text=""), RejectionCode.INVALID),
        (Close(agent=ALICE, outcome=Outcome.INACTIVE), RejectionCode.INVALID),
    ],
)
def test_refused_commands_change_nothing(command: Transfer | Release | AddNote | Close, code: RejectionCode) -> None:
    conv = fresh()
    conv.apply(TakeOver(agent=ALICE), at(5))
    before = conv.state.model_copy(deep=True)
    with pytest.raises(Rejected) as refused:
        conv.apply(command, at(6))
    assert refused.value.code is code
    assert conv.state == before


def test_notes_are_refused_on_a_closed_conversation() -> None:
    conv = fresh()
    conv.apply(TakeOver(agent=ALICE), at(5))
    conv.apply(Close(agent=ALICE, outcome=Outcome.RESOLVED), at(6))
    with pytest.raises(Rejected) as refused:
        conv.apply(AddNote(agent=BOB, text="late"), at(7))
    assert refused.value.code is RejectionCode.CLOSED


def test_without_timer_settings_nothing_is_ever_pending() -> None:
    conv = Conversation(new_state("c1", "customer-1", T0))
    conv.apply(CustomerMessage(text="hello"), T0)
    conv.apply(RequestHuman(), at(1))
    assert conv.next_timer() is None


def test_settings_parse_durations_and_zero_turns_a_timer_off() -> None:
    settings = Settings(bot_idle_close="90s", human_idle_close="0", waiting_sla="10m", first_reply_sla="24h")
    timers = settings.timers()
    assert timers.bot_idle_close == timedelta(seconds=90)
    assert timers.human_idle_close is None
    assert timers.waiting_sla == timedelta(minutes=10)
    assert timers.first_reply_sla == timedelta(hours=24)
    with pytest.raises(ValueError, match="not a duration"):
        Settings(waiting_sla="soon")


def test_asking_again_while_overdue_does_not_start_the_waiting_sla_again() -> None:
    conv = fresh()
    conv.apply(RequestHuman(), at(10))
    fire_next(conv)
    conv.apply(RequestHuman(), at(200))
    assert TimerKind.WAITING_SLA not in conv.state.pending_timers
