"""The lifecycle rules on their own: every transition, every refusal, and random sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.lifecycle import (
    HUMAN_REQUESTED_NOTE,
    MAX_MESSAGE_CHARS,
    UNRECORDED_FACTS_KEPT,
    Conversation,
    Rejected,
    RejectionCode,
    closed_note,
    joined_note,
    left_note,
    new_state,
)
from handoff.models import (
    Agent,
    AgentReply,
    BotAnswered,
    Close,
    Command,
    CustomerMessage,
    EntryKind,
    FactKind,
    HandBack,
    Outcome,
    RequestHuman,
    Status,
    TakeOver,
)
from tests.helpers import ALICE, BOB

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def fresh() -> Conversation:
    return Conversation(new_state("c1", "customer-1", T0))


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def texts(conv: Conversation, kind: EntryKind) -> list[str]:
    return [e.text for e in conv.state.transcript if e.kind is kind]


def test_new_conversation_is_with_the_bot_and_queues_each_message_for_an_answer() -> None:
    conv = fresh()
    facts = conv.apply(CustomerMessage(text="hello"), at(0))
    assert conv.status is Status.BOT
    assert [f.kind for f in facts] == [FactKind.STARTED, FactKind.MESSAGE]
    assert conv.state.bot_queue == [1]
    conv.apply(BotAnswered(reply_to=1, text="Hi!"), at(1))
    assert conv.state.bot_queue == []
    assert [(e.kind, e.text) for e in conv.state.transcript] == [
        (EntryKind.CUSTOMER, "hello"),
        (EntryKind.BOT, "Hi!"),
    ]


def test_bot_recognising_a_request_for_a_person_moves_to_waiting() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="talk to a human"), at(0))
    conv.apply(BotAnswered(reply_to=1, text="Connecting you", wants_human=True), at(1))
    assert conv.status is Status.WAITING
    assert conv.state.waiting_since == at(1)
    assert texts(conv, EntryKind.SYSTEM) == [HUMAN_REQUESTED_NOTE]


def test_waiting_keeps_messages_for_the_agent_and_the_bot_stays_silent() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    conv.apply(RequestHuman(), at(1))
    conv.apply(CustomerMessage(text="are you there?"), at(2))
    assert conv.status is Status.WAITING
    assert conv.state.bot_queue == []
    assert texts(conv, EntryKind.CUSTOMER) == ["hi", "are you there?"]
    # The bot's answer to the first message arrives late: dropped, the bot has stopped.
    assert conv.apply(BotAnswered(reply_to=1, text="late"), at(3)) == []
    assert texts(conv, EntryKind.BOT) == []


def test_request_human_twice_records_one_request() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    conv.apply(RequestHuman(), at(1))
    assert conv.apply(RequestHuman(), at(2)) == []
    assert conv.state.waiting_since == at(1)


@pytest.mark.parametrize("from_waiting", [True, False])
def test_take_over_from_waiting_or_straight_from_the_bot(from_waiting: bool) -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    if from_waiting:
        conv.apply(RequestHuman(), at(1))
    facts = conv.apply(TakeOver(agent=ALICE), at(5))
    assert conv.status is Status.HUMAN
    assert conv.state.agent == ALICE
    assert conv.state.assigned_at == at(5)
    assert conv.state.waiting_since is None
    assert conv.state.bot_queue == []  # the unanswered "hi" will not be answered by the bot
    assert [f.kind for f in facts] == [FactKind.TAKEN_OVER, FactKind.NOTE]
    assert conv.state.transcript[-1].text == "Alice Martin joined the conversation" == joined_note(ALICE)


def test_only_the_holder_acts_and_another_agent_is_told_who_holds_it() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    conv.apply(TakeOver(agent=ALICE), at(1))
    for command in (
        TakeOver(agent=BOB),
        AgentReply(agent=BOB, text="hello"),
        HandBack(agent=BOB),
        Close(agent=BOB, outcome=Outcome.RESOLVED),
    ):
        with pytest.raises(Rejected) as refused:
            conv.apply(command, at(2))
        assert refused.value.holder == ALICE
        assert "Alice Martin" in refused.value.message
    assert conv.state.agent == ALICE
    # The holder taking over again changes nothing and records nothing.
    assert conv.apply(TakeOver(agent=ALICE), at(3)) == []


def test_while_human_the_bot_is_silent_and_both_sides_go_to_the_transcript() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    conv.apply(TakeOver(agent=ALICE), at(1))
    conv.apply(CustomerMessage(text="my order is late"), at(2))
    conv.apply(AgentReply(agent=ALICE, text="Let me check"), at(3))
    assert conv.state.bot_queue == []
    agent_entry = conv.state.transcript[-1]
    assert (agent_entry.kind, agent_entry.author, agent_entry.text) == (EntryKind.AGENT, "Alice Martin", "Let me check")


def test_hand_back_returns_to_the_bot_pool_silently_and_the_bot_answers_next() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    conv.apply(RequestHuman(), at(1))
    conv.apply(TakeOver(agent=ALICE), at(2))
    customer_saw = [e for e in conv.state.transcript if e.kind is not EntryKind.SYSTEM]
    facts = conv.apply(HandBack(agent=ALICE), at(3))
    assert conv.status is Status.BOT
    assert conv.state.agent is None
    assert [f.kind for f in facts] == [FactKind.HANDED_BACK, FactKind.NOTE]
    assert conv.state.transcript[-1].text == "Alice Martin left the conversation" == left_note(ALICE)
    assert [e for e in conv.state.transcript if e.kind is not EntryKind.SYSTEM] == customer_saw
    conv.apply(CustomerMessage(text="thanks"), at(4))
    assert conv.state.bot_queue == [conv.state.transcript[-1].seq]
    assert conv.status is Status.BOT  # not waiting: only a new request puts it back there


@pytest.mark.parametrize(
    ("outcome", "note"),
    [
        (Outcome.RESOLVED, "Alice Martin closed the conversation as resolved"),
        (Outcome.NOT_RESOLVED, "Alice Martin closed the conversation as not resolved"),
    ],
)
def test_close_keeps_outcome_and_agent_and_then_accepts_nothing(outcome: Outcome, note: str) -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    conv.apply(TakeOver(agent=ALICE), at(1))
    facts = conv.apply(Close(agent=ALICE, outcome=outcome), at(2))
    assert (conv.status, conv.state.outcome, conv.state.closed_by, conv.state.closed_at) == (
        Status.CLOSED,
        outcome,
        ALICE,
        at(2),
    )
    assert facts[0].kind is FactKind.CLOSED and facts[0].outcome is outcome
    assert conv.state.transcript[-1].text == note == closed_note(ALICE, outcome)
    for command in (
        CustomerMessage(text="hello?"),
        RequestHuman(),
        TakeOver(agent=BOB),
        AgentReply(agent=ALICE, text="x"),
        HandBack(agent=ALICE),
        Close(agent=ALICE, outcome=Outcome.RESOLVED),
    ):
        with pytest.raises(Rejected) as refused:
            conv.check(command)
        assert refused.value.code is RejectionCode.CLOSED


@pytest.mark.parametrize("command", [HandBack(agent=ALICE), Close(agent=ALICE, outcome=Outcome.RESOLVED)])
def test_hand_back_and_close_need_a_holder(command: Command) -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    with pytest.raises(Rejected) as refused:
        conv.apply(command, at(1))
    assert refused.value.code is RejectionCode.WRONG_STATUS


@pytest.mark.parametrize("text", ["", "   \n", "x" * (MAX_MESSAGE_CHARS + 1), "nul\x00byte", "lone \ud800 surrogate"])
def test_empty_or_oversized_messages_are_refused(text: str) -> None:
    conv = fresh()
    with pytest.raises(Rejected) as refused:
        conv.apply(CustomerMessage(text=text), at(0))
    assert refused.value.code is RejectionCode.INVALID
    assert conv.state.transcript == [] and conv.state.outbox == []


def test_a_message_of_exactly_the_limit_is_accepted() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="x" * MAX_MESSAGE_CHARS), at(0))
    assert len(conv.state.transcript) == 1


def test_a_redelivered_message_is_kept_once() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi", message_id="m1"), at(0))
    assert conv.apply(CustomerMessage(text="hi", message_id="m1"), at(1)) == []
    assert len(conv.state.transcript) == 1


def test_outbox_batches_stay_under_the_size_limit_and_mark_recorded_removes_them() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="a" * 6000), at(0))
    conv.apply(TakeOver(agent=ALICE), at(1))
    conv.apply(CustomerMessage(text="b" * 6000), at(2))
    batch = conv.take_outbox(max_facts=100, max_chars=10_000)
    assert [f.kind for f in batch] == [FactKind.STARTED, FactKind.MESSAGE, FactKind.TAKEN_OVER, FactKind.NOTE]
    conv.mark_recorded(batch)
    assert [f.kind for f in conv.state.outbox] == [FactKind.MESSAGE]


# --- Random command sequences: the invariants hold whatever happens.

agents = st.sampled_from([ALICE, BOB, Agent(id="agent-carol", name="Carol")])
commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(CustomerMessage, text=st.sampled_from(["hi", "talk to a human", "", "x" * (MAX_MESSAGE_CHARS + 1)])),
    st.builds(RequestHuman),
    st.builds(TakeOver, agent=agents),
    st.builds(AgentReply, agent=agents, text=st.sampled_from(["On it", " "])),
    st.builds(HandBack, agent=agents),
    st.builds(Close, agent=agents, outcome=st.sampled_from(list(Outcome))),
    st.builds(BotAnswered, reply_to=st.integers(1, 8), text=st.just("bot says"), wants_human=st.booleans()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(commands, max_size=40))
def test_random_sequences_keep_every_invariant(sequence: list[Command]) -> None:
    conv = fresh()
    for i, command in enumerate(sequence):
        before = conv.state.model_copy(deep=True)
        try:
            conv.check(command)
        except Rejected:
            # check() and apply() agree, and a refused command changes nothing.
            with pytest.raises(Rejected):
                conv.apply(command, at(i))
            assert conv.state == before
            continue
        conv.apply(command, at(i))
        s = conv.state
        # Status and assignment agree.
        assert (s.status is Status.HUMAN) == (s.agent is not None)
        assert (s.status is Status.WAITING) == (s.waiting_since is not None)
        assert (s.status is Status.CLOSED) == (s.outcome is not None) == (s.closed_by is not None)
        # The bot owes answers only while it holds the conversation, and only to customer messages.
        if s.status is not Status.BOT:
            assert s.bot_queue == []
        assert all(conv.entry(seq).kind is EntryKind.CUSTOMER for seq in s.bot_queue)
        # Entries are numbered 1..n; facts are numbered 1..last_fact and never reused.
        assert [e.seq for e in s.transcript] == list(range(1, len(s.transcript) + 1))
        assert [f.number for f in s.outbox] == list(range(1, s.last_fact + 1))
        # Every transcript entry has exactly one fact.
        assert [f.entry for f in s.outbox if f.entry is not None] == s.transcript
        # Joined/left notes pair up with take-overs and hand-backs.
        kinds = [f.kind for f in s.outbox]
        assert kinds.count(FactKind.TAKEN_OVER) - kinds.count(FactKind.HANDED_BACK) - kinds.count(FactKind.CLOSED) == (
            1 if s.status is Status.HUMAN else 0
        )
        assert kinds.count(FactKind.STARTED) == (1 if kinds else 0)
        assert not kinds or kinds[0] is FactKind.STARTED
    # Once closed, it stays closed.
    closes = [i for i, f in enumerate(conv.state.outbox) if f.kind is FactKind.CLOSED]
    assert len(closes) <= 1


def test_an_agent_command_redelivered_with_its_request_id_is_applied_once() -> None:
    # Temporal may deliver an update again after continue-as-new; its id makes it a no-op.
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    conv.apply(TakeOver(agent=ALICE, request_id="u1"), at(1))
    conv.apply(AgentReply(agent=ALICE, text="Hello!", request_id="u2"), at(2))
    conv.apply(HandBack(agent=ALICE, request_id="u3"), at(3))
    before = conv.state.model_copy(deep=True)
    for command in (
        TakeOver(agent=ALICE, request_id="u1"),
        AgentReply(agent=ALICE, text="Hello!", request_id="u2"),
        HandBack(agent=ALICE, request_id="u3"),  # would be refused if it were new: nobody holds it
    ):
        conv.check(command)
        assert conv.apply(command, at(4)) == []
    assert conv.state.transcript == before.transcript and conv.status is Status.BOT


def test_transitions_are_recorded_at_once_and_messages_ride_along() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    conv.apply(BotAnswered(reply_to=1, text="Hello!"), at(1))
    assert not conv.recording_due()  # they go with the next bot answer
    conv.apply(TakeOver(agent=ALICE), at(2))
    assert conv.recording_due()  # the live columns must show it
    conv.mark_recorded(conv.take_outbox(100, 100_000))
    for i in range(UNRECORDED_FACTS_KEPT - 1):
        conv.apply(AgentReply(agent=ALICE, text=f"reply {i}"), at(3 + i))
    assert not conv.recording_due()
    conv.apply(CustomerMessage(text="one more"), at(100))
    assert conv.recording_due()  # a long backlog is written without waiting
    conv.mark_recorded(conv.take_outbox(100, 100_000))
    conv.apply(AgentReply(agent=ALICE, text="bye"), at(101))
    conv.apply(Close(agent=ALICE, outcome=Outcome.RESOLVED), at(102))
    assert conv.recording_due() and not conv.finished
    conv.mark_recorded(conv.take_outbox(100, 100_000))
    assert conv.finished


def test_compacting_keeps_recent_unrecorded_and_unanswered_entries_and_numbering() -> None:
    conv = fresh()
    conv.apply(CustomerMessage(text="hi"), at(0))
    conv.apply(TakeOver(agent=ALICE), at(1))
    for i in range(10):
        conv.apply(AgentReply(agent=ALICE, text=f"r{i}"), at(2 + i))
    conv.compact_transcript(keep=3)
    assert conv.state.transcript_offset == 0  # nothing recorded yet: nothing dropped
    conv.mark_recorded(conv.take_outbox(1000, 1_000_000))
    conv.compact_transcript(keep=3)
    assert [e.text for e in conv.state.transcript] == ["r7", "r8", "r9"]
    assert conv.state.transcript_offset == 9
    conv.apply(HandBack(agent=ALICE), at(20))
    conv.apply(CustomerMessage(text="still there?"), at(21))
    assert [e.seq for e in conv.entries_after(0)] == [10, 11, 12, 13, 14]
    assert conv.entry(14).text == "still there?" and conv.state.bot_queue == [14]
    conv.mark_recorded(conv.take_outbox(1000, 1_000_000))
    conv.compact_transcript(keep=0)
    assert [e.seq for e in conv.state.transcript] == [14]  # still owed a bot answer
