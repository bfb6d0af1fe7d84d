"""Stop 21 in the rules layer: which `SendMessage` waits for the bot's answer inside the task.

The workflow runs the bot as a local activity only for the message it answers next, when a
`SendMessage` caller waits for it; any other message keeps the `BotAnswer` activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handoff.lifecycle import Conversation, new_state
from handoff.models import BotAnswered, CustomerMessage, RequestHuman, TakeOver
from tests.helpers import ALICE

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def conversation(*, local_bot_answers: bool = True) -> Conversation:
    state = new_state("c1", "customer-1", T0)
    state.read_side = True
    state.facts_by_cause = True
    state.local_bot_answers = local_bot_answers
    return Conversation(state)


def send(conv: Conversation, text: str, message_id: str, seconds: float = 0) -> int | None:
    facts = conv.apply(CustomerMessage(text=text, message_id=message_id), T0 + timedelta(seconds=seconds))
    return conv.answer_owed_to(facts)


def test_the_message_the_bot_answers_next_is_answered_for_its_caller() -> None:
    conv = conversation()
    asked = send(conv, "hello", "m-1")
    assert asked is not None and conv.entry(asked).text == "hello"
    assert conv.owes_answer(asked)
    conv.apply(BotAnswered(reply_to=asked, text="Hi!"), T0 + timedelta(seconds=1))
    assert not conv.owes_answer(asked)
    # Answered: the next message is the next one the bot answers.
    assert send(conv, "where is my order?", "m-2", 2) is not None


def test_a_message_behind_an_unanswered_one_is_not_waited_for() -> None:
    conv = conversation()
    first = send(conv, "hello", "m-1")  # e.g. sent as a signal: nobody waits for it
    assert first is not None
    assert send(conv, "are you there?", "m-2", 1) is None  # its answer comes from the activity


def test_nothing_is_waited_for_when_the_bot_does_not_answer() -> None:
    conv = conversation()
    conv.apply(RequestHuman(request_id="r-1"), T0)
    assert send(conv, "hello?", "m-1", 1) is None  # waiting for a person: the bot is silent
    conv.apply(TakeOver(agent=ALICE), T0 + timedelta(seconds=2))
    assert send(conv, "hi Alice", "m-2", 3) is None


def test_a_duplicate_message_is_not_waited_for_again() -> None:
    conv = conversation()
    assert send(conv, "hello", "m-1") is not None
    assert send(conv, "hello", "m-1") is None  # the same message id: no facts, nothing owed


def test_conversations_started_before_answer_every_message_by_activity() -> None:
    assert send(conversation(local_bot_answers=False), "hello", "m-1") is None


def answered_for_its_caller(conv: Conversation) -> None:
    """What the workflow does for a `SendMessage` (caller_records) the bot answers locally."""
    facts = conv.apply(CustomerMessage(text="hello", message_id="m-1", caller_records=True), T0)
    conv.caller_writes(facts)
    asked = conv.answer_owed_to(facts)
    assert asked is not None
    conv.caller_writes(conv.apply(BotAnswered(reply_to=asked, text="Hi!"), T0 + timedelta(seconds=1)))


def test_facts_left_to_the_caller_wait_for_the_next_write() -> None:
    conv = conversation()
    answered_for_its_caller(conv)
    assert len(conv.state.outbox) == 3  # started, the message, the answer
    assert not conv.recording_due()  # the caller writes them; the recorder only as the backstop
    # The update, delivered again (e.g. after continue-as-new): its caller has the first answer.
    assert conv.apply(CustomerMessage(text="hello", message_id="m-1", caller_records=True), T0) == []
    assert not conv.recording_due()


def test_the_same_message_sent_again_as_a_signal_means_its_caller_gave_up() -> None:
    """The API sends the signal when the update's answer did not come in time: nobody will write
    what the update left to its caller, so the recorder writes it at once."""
    conv = conversation()
    answered_for_its_caller(conv)
    assert conv.apply(CustomerMessage(text="hello", message_id="m-1"), T0 + timedelta(seconds=3)) == []
    assert conv.recording_due()  # the recorder writes the whole outbox
    left = [f.entry.text for f in conv.state.outbox if f.entry and f.number not in conv.state.caller_writes]
    assert left == ["hello", "Hi!"]  # each once


def test_a_signal_for_another_message_leaves_the_callers_facts_alone() -> None:
    conv = conversation()
    answered_for_its_caller(conv)
    conv.apply(RequestHuman(request_id="r-1"), T0 + timedelta(seconds=2))
    written_by_caller = list(conv.state.caller_writes)
    conv.apply(CustomerMessage(text="anyone?", message_id="m-2"), T0 + timedelta(seconds=3))
    assert conv.state.caller_writes == written_by_caller
