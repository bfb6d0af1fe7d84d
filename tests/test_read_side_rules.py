"""Issue 8's rules in the pure lifecycle layer: a bot answer's place is reserved before the bot
is asked, and a read-side conversation records every fact promptly unless its writer did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handoff.lifecycle import Conversation, new_state
from handoff.models import BotAnswered, Command, CustomerMessage, EntryKind, RequestHuman, Status, TakeOver
from tests.helpers import ALICE

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def read_side() -> Conversation:
    state = new_state("c-read-side", "customer", T0)
    state.read_side = True
    return Conversation(state)


def answered(conv: Conversation, reply_to: int, text: str, seconds: int, wants_human: bool = False) -> BotAnswered:
    """Reserve the answer's place, as the workflow does before asking the bot; the bot's answer."""
    reserved = conv.reserve_bot_answer(reply_to)
    assert reserved.entry is not None
    return BotAnswered(
        reply_to=reply_to,
        text=text,
        wants_human=wants_human,
        answer_seq=reserved.entry.seq,
        answer_fact=reserved.number,
        answered_at=at(seconds),
    )


def shown(conv: Conversation) -> list[tuple[int, EntryKind, str]]:
    return [(e.seq, e.kind, e.text) for e in conv.state.transcript]


def test_a_message_sent_while_the_bot_answers_comes_after_the_answer_whenever_the_answer_lands() -> None:
    """The same seqs and fact numbers in both orders: what a replay after a restart may do."""
    results = []
    for answer_first in (True, False):
        conv = read_side()
        conv.apply(CustomerMessage(text="Hello"), at(0))
        answer = answered(conv, 1, "Hi!", 2)
        steps: list[tuple[Command, datetime]] = [(answer, at(2)), (CustomerMessage(text="Are you there?"), at(1))]
        for command, now in steps if answer_first else reversed(steps):
            conv.apply(command, now)
        facts = sorted((f.number, f.entry.seq if f.entry else None) for f in conv.state.outbox)
        results.append((shown(conv), facts))
    assert results[0] == results[1]
    assert results[0][0] == [
        (1, EntryKind.CUSTOMER, "Hello"),
        (2, EntryKind.BOT, "Hi!"),
        (3, EntryKind.CUSTOMER, "Are you there?"),
    ]


def test_an_answer_landing_after_a_take_over_is_kept_as_shown_but_changes_nothing() -> None:
    conv = read_side()
    conv.apply(CustomerMessage(text="I need help"), at(0))
    answer = answered(conv, 1, "Connecting you", 2, wants_human=True)
    conv.apply(TakeOver(agent=ALICE), at(1))
    conv.apply(answer, at(2))
    assert conv.status is Status.HUMAN and conv.state.agent == ALICE
    kinds = [(kind, text) for _, kind, text in shown(conv)]
    assert (EntryKind.BOT, "Connecting you") in kinds
    assert [seq for seq, _, _ in shown(conv)] == list(range(1, len(kinds) + 1))  # no gap, no repeat


def test_facts_whose_writer_recorded_them_wait_and_every_other_fact_is_due_at_once() -> None:
    conv = read_side()
    conv.apply(CustomerMessage(text="Hello"), at(0))
    assert not conv.recording_due()  # the bot answer about to start carries it
    conv.mark_recorded(conv.state.outbox)
    took = conv.apply(TakeOver(agent=ALICE), at(1))
    conv.caller_writes(took)  # the API wrote them
    assert not conv.recording_due()
    conv.apply(CustomerMessage(text="Thanks"), at(2))
    assert conv.recording_due()  # nobody else writes a customer message to a person


def test_a_request_for_a_person_is_due_at_once() -> None:
    conv = read_side()
    conv.apply(CustomerMessage(text="Hello"), at(0))
    conv.mark_recorded(conv.state.outbox)
    conv.apply(RequestHuman(), at(1))
    assert conv.recording_due()


def keyed_by_cause() -> Conversation:
    conv = read_side()
    conv.state.facts_by_cause = True
    return conv


def test_facts_keyed_by_cause_keep_their_keys_whatever_came_before() -> None:
    """Issue 8, item 3: a fact's key is its cause (message id, request or update id, the question
    a bot answer answers), so the same input gives the same key whatever the numbering."""
    keys: list[dict[str, str]] = []
    for earlier in ([], ["m0"]):
        conv = keyed_by_cause()
        for i, message_id in enumerate([*earlier, "m1"]):
            conv.apply(CustomerMessage(text=f"question {message_id}", message_id=message_id), at(i))
        seq_m1 = conv.state.bot_queue[-1]
        answer = conv.reserve_bot_answer(conv.state.bot_queue[0])
        assert answer.cause == f"answer:message:{earlier[0] if earlier else 'm1'}"
        conv.apply(RequestHuman(request_id="r1"), at(5))
        conv.apply(TakeOver(agent=ALICE, request_id="u1"), at(6))
        assert seq_m1 not in conv.state.question_causes  # a question no longer owed an answer
        facts = conv.state.outbox
        assert all(f.cause is not None for f in facts)
        assert len({f.key for f in facts}) == len(facts)
        keys.append({f.cause: f.key for f in facts if f.cause is not None})
    common = keys[0].keys() & keys[1].keys()
    assert {"message:m1", "human:r1:requested", "take_over:u1:taken_over", "started"} <= common
    assert all(keys[0][cause] == keys[1][cause] for cause in common)


def test_a_conversation_started_before_keeps_number_keys() -> None:
    conv = read_side()  # facts_by_cause not set: a conversation started before this change
    conv.apply(CustomerMessage(text="hello", message_id="m1"), at(0))
    conv.apply(RequestHuman(request_id="r1"), at(1))
    assert [f.key for f in conv.state.outbox] == [f"c-read-side:{n}" for n in range(1, 5)]
