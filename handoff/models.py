"""The data that crosses boundaries: workflow inputs, commands, transcript entries, facts.

Everything here is a small pydantic model so the Temporal pydantic data converter,
the HTTP API and the database layer all speak the same shapes. No Temporal imports:
the lifecycle rules and their tests use these models without a server.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Status(StrEnum):
    BOT = "bot"
    WAITING = "waiting"
    HUMAN = "human"
    CLOSED = "closed"


class Outcome(StrEnum):
    RESOLVED = "resolved"
    NOT_RESOLVED = "not_resolved"


class EntryKind(StrEnum):
    """Who wrote a transcript entry. Customers never see `system` entries."""

    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class FactKind(StrEnum):
    """What the statistics are computed from; one row per fact, keyed per event."""

    STARTED = "conversation_started"
    MESSAGE = "message"
    NOTE = "note"
    HUMAN_REQUESTED = "human_requested"
    TAKEN_OVER = "taken_over"
    HANDED_BACK = "handed_back"
    CLOSED = "closed"


class Model(BaseModel):
    model_config = ConfigDict(frozen=False, extra="forbid")


class Agent(Model):
    id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)


# --- Commands: everything that can happen to a conversation from outside (or from the bot).


class CustomerMessage(Model):
    kind: Literal["customer_message"] = "customer_message"
    text: str
    # The sender's idempotency key: a message delivered twice is kept once.
    message_id: str | None = None


class RequestHuman(Model):
    kind: Literal["request_human"] = "request_human"


class AgentCommand(Model):
    # The caller's idempotency key (the Temporal update id on the update path): a command
    # retried after continue-as-new or a lost response is applied once.
    request_id: str | None = None
    # The caller writes the facts it gets back in the update's `CommandResult` to the database
    # itself (the API does), so the workflow need not record them at once (issue 8).
    caller_records: bool = False


class TakeOver(AgentCommand):
    kind: Literal["take_over"] = "take_over"
    agent: Agent


class AgentReply(AgentCommand):
    kind: Literal["agent_reply"] = "agent_reply"
    agent: Agent
    text: str


class HandBack(AgentCommand):
    kind: Literal["hand_back"] = "hand_back"
    agent: Agent


class Close(AgentCommand):
    kind: Literal["close"] = "close"
    agent: Agent
    outcome: Outcome


class BotAnswered(Model):
    """The bot activity's answer to the customer message `reply_to` (an entry seq)."""

    kind: Literal["bot_answered"] = "bot_answered"
    reply_to: int
    text: str
    wants_human: bool = False
    # Read-side conversations (issue 8): the answer's entry seq and fact number, reserved when
    # the question was put to the bot, which wrote the answer under them; and when it answered.
    answer_seq: int | None = None
    answer_fact: int | None = None
    answered_at: datetime | None = None


Command = Annotated[
    CustomerMessage | RequestHuman | TakeOver | AgentReply | HandBack | Close | BotAnswered,
    Field(discriminator="kind"),
]


# --- State and what it is made of.


class TranscriptEntry(Model):
    seq: int
    at: datetime
    kind: EntryKind
    author: str
    text: str


class Fact(Model):
    """One recorded event; `key` makes every database write idempotent."""

    conversation_id: str
    number: int
    kind: FactKind
    at: datetime
    entry: TranscriptEntry | None = None
    agent: Agent | None = None
    outcome: Outcome | None = None

    @property
    def key(self) -> str:
        return f"{self.conversation_id}:{self.number}"


class ConversationSummary(Model):
    """Everything about a conversation but its transcript: the live columns and history rows."""

    conversation_id: str
    customer_id: str
    status: Status
    agent: Agent | None = None
    outcome: Outcome | None = None
    closed_by: Agent | None = None
    started_at: datetime
    updated_at: datetime
    waiting_since: datetime | None = None
    assigned_at: datetime | None = None
    closed_at: datetime | None = None
    # Number of the last fact this summary reflects: lets the store apply summaries in order.
    last_fact: int = 0


class ConversationState(ConversationSummary):
    """The whole durable state of one conversation, carried across continue-as-new."""

    # The transcript from entry `transcript_offset + 1` on: continue-as-new drops older entries
    # once they are in the database, so the carried state stays small however long it runs.
    transcript: list[TranscriptEntry] = Field(default_factory=list)
    transcript_offset: int = 0
    # Customer message seqs the bot still has to answer, oldest first.
    bot_queue: list[int] = Field(default_factory=list)
    # Facts not yet written to the database, oldest first.
    outbox: list[Fact] = Field(default_factory=list)
    # Recent message ids and agent request ids, to apply a redelivered command once.
    seen_request_ids: list[str] = Field(default_factory=list)
    # Commands refused on the fire-and-forget signal path, for ops to see in queries.
    rejected_signals: int = 0
    # Issue 8: the database is the read side, so every fact is written promptly (by the API for
    # an update's facts, by the recorder for the rest). Set for new conversations only: a
    # conversation started before keeps its recording rhythm, so its history replays.
    read_side: bool = False
    # The entry seq and fact number reserved for the bot answer in flight (0: none).
    reserved_seq: int = 0
    reserved_fact: int = 0
    # Numbers of outbox facts the caller of an update writes itself (it got them back in the
    # update's `CommandResult`): the recorder writes them later, as the backstop, not at once.
    caller_writes: list[int] = Field(default_factory=list)

    def summary(self) -> ConversationSummary:
        return ConversationSummary.model_validate(self.model_dump(include=set(ConversationSummary.model_fields)))


class ConversationInput(Model):
    """Workflow input: a new conversation, or the state carried by continue-as-new."""

    conversation_id: str
    customer_id: str
    state: ConversationState | None = None
    # Continue-as-new once history reaches this many events, besides when Temporal suggests it.
    # Production leaves it unset; tests set it low to exercise continue-as-new quickly.
    continue_as_new_after_events: int | None = None
    # New conversations record every fact promptly: the API reads the database only (issue 8).
    read_side: bool = False


class CommandResult(ConversationSummary):
    """What an agent update answers: the summary, plus the facts the command produced, which
    the caller writes to the database at once (the recorder writes them again later: a no-op)."""

    facts: list[Fact] = Field(default_factory=list)

    def summary(self) -> ConversationSummary:
        return ConversationSummary.model_validate(self.model_dump(include=set(ConversationSummary.model_fields)))


class RecordBatch(Model):
    """What the record activity writes in one transaction: facts plus the latest summary."""

    summary: ConversationSummary
    facts: list[Fact]


class BotQuestion(Model):
    text: str
    # Facts the bot activity writes on the way, saving a RecordFacts call; see the workflow.
    record: RecordBatch | None = None
    # Read-side conversations: the answer's fact, text still empty, for the activity to write
    # with its answer as soon as it has it (the customer sees it without waiting for a recorder).
    answer: Fact | None = None


class BotReply(Model):
    text: str
    wants_human: bool = False
    # Whether the question's `record` was written (the database may be down: then the
    # workflow's recorder writes those facts, retrying, and the bot still answers).
    recorded: bool = False
    # Whether the question's `answer` was written with this text, and when.
    answer_recorded: bool = False
    answered_at: datetime | None = None
