"""The data that crosses boundaries: workflow inputs, commands, transcript entries, facts.

Everything here is a small pydantic model so the Temporal pydantic data converter,
the HTTP API and the database layer all speak the same shapes. No Temporal imports:
the lifecycle rules and their tests use these models without a server.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
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
    # Closed by a timer (no customer message for too long): not an agent's outcome.
    INACTIVE = "inactive"


class EntryKind(StrEnum):
    """Who wrote a transcript entry. Customers never see `system` entries."""

    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"
    # An agent's internal note: shown to agents, never to the customer.
    INTERNAL = "internal"


CUSTOMER_VISIBLE = frozenset({EntryKind.CUSTOMER, EntryKind.BOT, EntryKind.AGENT})
"""The entries a customer sees: never system notes, never agents' internal notes."""


class FactKind(StrEnum):
    """What the statistics are computed from; one row per fact, keyed per event."""

    STARTED = "conversation_started"
    MESSAGE = "message"
    NOTE = "note"
    HUMAN_REQUESTED = "human_requested"
    TAKEN_OVER = "taken_over"
    HANDED_BACK = "handed_back"
    CLOSED = "closed"
    # Issue 9: people and timers.
    TRANSFERRED = "transferred"  # agent = the new holder
    RELEASED = "released"  # back to the queue; agent = who held it
    WAITING_SLA_BREACHED = "waiting_sla_breached"
    FIRST_REPLY_SLA_BREACHED = "first_reply_sla_breached"  # agent = the holder


class TimerKind(StrEnum):
    """The conversation's durable timers (see `handoff.lifecycle`, section timers)."""

    BOT_IDLE_CLOSE = "bot_idle_close"
    HUMAN_IDLE_CLOSE = "human_idle_close"
    WAITING_SLA = "waiting_sla"
    FIRST_REPLY_SLA = "first_reply_sla"


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
    # Sent as an update (the `SendMessage` update): the caller writes the facts it gets back in
    # the `CommandResult` itself (the API does), as for an agent command (issue 8).
    caller_records: bool = False


class RequestHuman(Model):
    kind: Literal["request_human"] = "request_human"
    # The sender's idempotency key: a request delivered twice (an update that timed out, then
    # the same request as a signal) is applied once.
    request_id: str | None = None
    # As for `CustomerMessage`: the caller writes the request's facts itself.
    caller_records: bool = False


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
    # Issue 10: given by automatic assignment (HANDOFF_ASSIGNMENT=auto): only from Waiting, and its
    # note says so. False by default, so the take-overs of saved histories replay as they ran.
    automatic: bool = False


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


class Transfer(AgentCommand):
    """The holder gives the conversation to another agent; `note` is internal."""

    kind: Literal["transfer"] = "transfer"
    agent: Agent
    to: Agent
    note: str | None = None


class Release(AgentCommand):
    """The holder puts the conversation back in the Waiting column."""

    kind: Literal["release"] = "release"
    agent: Agent
    # Issue 10: the holder went offline (HANDOFF_OFFLINE_RETURNS=true): back at the front of the
    # queue, with a note saying why. False by default, so saved histories replay as they ran.
    offline: bool = False


class AddNote(AgentCommand):
    """Any agent's internal note on a conversation that is not closed."""

    kind: Literal["add_note"] = "add_note"
    agent: Agent
    text: str


class TimerFired(Model):
    """A durable timer elapsed. `deadline` names which one: a timer that was since moved or
    cancelled (its deadline is no longer pending) changes nothing."""

    kind: Literal["timer_fired"] = "timer_fired"
    timer: TimerKind
    deadline: datetime


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
    # The reserved answer's cause (conversations keyed by cause): "answer:<question's cause>".
    answer_cause: str | None = None
    # The bot had no answer (its fallback, or no answer at all): the handover summary says so.
    fallback: bool = False


Command = Annotated[
    CustomerMessage
    | RequestHuman
    | TakeOver
    | AgentReply
    | HandBack
    | Close
    | BotAnswered
    | Transfer
    | Release
    | AddNote
    | TimerFired,
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
    # What caused the fact, unique within the conversation (e.g. "timer:waiting_sla:<deadline>",
    # "update:<id>"): facts added with issue 9 are keyed by it, so a key never depends on numbering.
    cause: str | None = None

    @property
    def key(self) -> str:
        if self.cause is not None:
            # A digest of the cause: keys stay within the column's 120 characters (ids take up to 100).
            return f"{self.conversation_id}:~{hashlib.blake2b(self.cause.encode(), digest_size=8).hexdigest()}"
        return f"{self.conversation_id}:{self.number}"


class TimerSettings(Model):
    """The timers of one conversation, fixed when it starts (see `handoff.config`); None = off."""

    bot_idle_close: timedelta | None = None
    human_idle_close: timedelta | None = None
    waiting_sla: timedelta | None = None
    waiting_notice: str | None = None
    first_reply_sla: timedelta | None = None
    first_reply_sla_return: bool = False

    def duration(self, timer: TimerKind) -> timedelta | None:
        return {
            TimerKind.BOT_IDLE_CLOSE: self.bot_idle_close,
            TimerKind.HUMAN_IDLE_CLOSE: self.human_idle_close,
            TimerKind.WAITING_SLA: self.waiting_sla,
            TimerKind.FIRST_REPLY_SLA: self.first_reply_sla,
        }[timer]


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
    # Issue 9. The timer settings this conversation started with (None: no timers), and the
    # absolute deadline of each pending timer: carried across continue-as-new as deadlines, so a
    # timer keeps its remaining time rather than starting over.
    timers: TimerSettings | None = None
    pending_timers: dict[TimerKind, datetime] = Field(default_factory=dict)
    # When the customer first asked for a person in the current stretch of support: a released
    # conversation goes back to the Waiting column at this position.
    requested_at: datetime | None = None
    # Whether the holder has replied since taking the conversation (the first-reply SLA).
    replied_since_assigned: bool = False
    # The conversation this one reopens (a customer wrote to it after it closed).
    previous_conversation_id: str | None = None
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
    # Issue 14: a take-over (or transfer) adds an internal handover summary of the bot session
    # (set for new conversations only, so older histories replay); the bot answers that were
    # its fallback, by entry seq (the latest few).
    handover_summaries: bool = False
    fallback_seqs: list[int] = Field(default_factory=list)
    # Issue 8 (cost): the search attributes say only open or closed (and the outcome), one upsert
    # per conversation instead of one per transition; who is waiting or held by whom is in the
    # database. Set for new conversations only, so older histories replay.
    search_attributes_at_close: bool = False
    # Issue 8, item 3: every fact is keyed by its cause (the message id, the update id, the bot
    # answer's question) rather than by its number. Set for new conversations only: a conversation
    # already writing number keys keeps them, or its facts would be written twice. The causes of
    # the customer messages the bot still owes an answer, by entry seq (its answer's cause).
    facts_by_cause: bool = False
    question_causes: dict[int, str] = Field(default_factory=dict)
    # The armed Temporal timer is kept while deadlines move later (`Conversation.replaces_armed_timer`):
    # one timer per idle period, not one per customer message. Set for new conversations only, so
    # older histories replay (a flag, not `workflow.patched`, whose search-attribute upsert is
    # itself a billable action per run).
    lazy_timers: bool = False
    # The bot answers inside the workflow task (a local activity that writes nothing), and a
    # `SendMessage` update waits for the answer and returns its facts with the message's, for
    # the caller to write: no activity task, no second workflow task per answer. A message sent
    # as a signal is answered by the `BotAnswer` activity, as before. Read-side conversations
    # only; set for new ones, so older histories replay.
    local_bot_answers: bool = False

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
    # Issue 9: timers (a new conversation's; a continued one carries them in `state`) and the
    # closed conversation this one reopens.
    timers: TimerSettings | None = None
    previous_conversation_id: str | None = None
    # New conversations record every fact promptly: the API reads the database only (issue 8).
    read_side: bool = False
    # Issue 14: new conversations get a handover summary at each take-over.
    handover_summaries: bool = False
    # Issue 8 (cost): new conversations upsert their search attributes only when they close.
    search_attributes_at_close: bool = False
    # Issue 8: new conversations key every fact by its cause.
    facts_by_cause: bool = False
    # New conversations keep their armed timer while deadlines move later.
    lazy_timers: bool = False
    # New (read-side) conversations answer inside the workflow task; see `ConversationState`.
    local_bot_answers: bool = False


class CommandResult(ConversationSummary):
    """What an update (an agent's command, or a customer's message or request for a person sent
    as an update) answers: the summary, plus the facts the command produced, which the caller
    writes to the database at once (the recorder writes them again later: a no-op)."""

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
    # The knowledge base had no answer: `text` is its fallback (issue 14, the handover summary).
    fallback: bool = False
    # Whether the question's `record` was written (the database may be down: then the
    # workflow's recorder writes those facts, retrying, and the bot still answers).
    recorded: bool = False
    # Whether the question's `answer` was written with this text; when the bot answered.
    answer_recorded: bool = False
    answered_at: datetime | None = None
