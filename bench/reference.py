"""The reference conversation, defined once: every benchmark drives exactly these steps.

The customer opens with a message (bot answers), writes 3 more (bot answers each), asks for a
person; agent A takes over, writes 3 replies while the customer writes 3 messages; A hands
back; the customer writes 2 messages (bot answers each), asks for a person again; agent B
takes over, replies once and closes as resolved: 19 inputs from outside, 6 bot answers.

Messages are chosen so the knowledge-base bot answers them without asking for a person itself
(the customer asks explicitly, with the `RequestHuman` signal), so the shape never depends on
the bot's wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from handoff.models import Agent, EntryKind, Outcome

AGENT_A = Agent(id="agent-bench-a", name="Agent A")
AGENT_B = Agent(id="agent-bench-b", name="Agent B")
CUSTOMER_ID = "customer-bench"
OUTCOME = Outcome.RESOLVED


class Kind(StrEnum):
    """How an input reaches the workflow: agent inputs are updates; customer inputs are updates
    when the driver writes their facts as the API does (the cost phase), signals otherwise."""

    START = "start"  # the opening customer message: signal-with-start
    MESSAGE = "message"  # signal CustomerMessage
    REQUEST_HUMAN = "request_human"  # signal RequestHuman
    TAKE_OVER = "take_over"  # update TakeOver
    REPLY = "reply"  # update Reply
    HAND_BACK = "hand_back"  # update HandBack
    CLOSE = "close"  # update Close


@dataclass(frozen=True)
class Step:
    kind: Kind
    text: str = ""
    agent: Agent | None = None
    # The bot owes an answer to this message; the driver waits for it before going on, as a
    # customer reading the chat would (and a request for a person before it would drop it).
    bot_answers: bool = False


def _customer(text: str, *, start: bool = False, bot: bool = True) -> Step:
    return Step(Kind.START if start else Kind.MESSAGE, text, bot_answers=bot)


STEPS: tuple[Step, ...] = (
    _customer("Hello", start=True),
    _customer("Where is my order?"),
    _customer("How do I get a refund?"),
    _customer("Can I download an invoice?"),
    Step(Kind.REQUEST_HUMAN),
    Step(Kind.TAKE_OVER, agent=AGENT_A),
    Step(Kind.REPLY, "Hi, I'm looking at your order now.", agent=AGENT_A),
    _customer("It was due on Monday.", bot=False),
    Step(Kind.REPLY, "It is at the depot and leaves today.", agent=AGENT_A),
    _customer("Great, and the refund for the old one?", bot=False),
    Step(Kind.REPLY, "Issued this morning, 5 business days.", agent=AGENT_A),
    _customer("Perfect.", bot=False),
    Step(Kind.HAND_BACK, agent=AGENT_A),
    _customer("What are your opening hours?"),
    _customer("Thanks!"),
    Step(Kind.REQUEST_HUMAN),
    Step(Kind.TAKE_OVER, agent=AGENT_B),
    Step(Kind.REPLY, "Hi, anything else I can do?", agent=AGENT_B),
    Step(Kind.CLOSE, agent=AGENT_B),
)

INPUTS = len(STEPS)
BOT_ANSWERS = sum(step.bot_answers for step in STEPS)
SIGNALS = sum(step.kind in (Kind.MESSAGE, Kind.REQUEST_HUMAN) for step in STEPS)
UPDATES = sum(step.kind in (Kind.TAKE_OVER, Kind.REPLY, Kind.HAND_BACK, Kind.CLOSE) for step in STEPS)

assert INPUTS == 19 and BOT_ANSWERS == 6, "the issue defines 19 inputs and 6 bot answers"
assert 1 + SIGNALS + UPDATES == INPUTS


def expected_transcript_kinds() -> list[EntryKind]:
    """The entry kinds a finished reference conversation's transcript holds, in order:
    one per input that writes text, one per bot answer, one note per transition."""
    kinds: list[EntryKind] = []
    for step in STEPS:
        match step.kind:
            case Kind.START | Kind.MESSAGE:
                kinds.append(EntryKind.CUSTOMER)
                if step.bot_answers:
                    kinds.append(EntryKind.BOT)
            case Kind.REPLY:
                kinds.append(EntryKind.AGENT)
            case Kind.REQUEST_HUMAN | Kind.TAKE_OVER | Kind.HAND_BACK | Kind.CLOSE:
                kinds.append(EntryKind.SYSTEM)
    return kinds
