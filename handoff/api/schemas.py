"""The bodies the HTTP API accepts and returns (pydantic, so /openapi.json documents them).

Message texts are checked with the lifecycle's own `check_text`, so an empty or oversized
message is a 422 naming the problem before anything reaches Temporal, by the same rule the
workflow applies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from handoff.lifecycle import MAX_MESSAGE_CHARS, Rejected, check_text
from handoff.models import Agent, ConversationSummary, Outcome, Status, TranscriptEntry


def _checked(what: str) -> AfterValidator:
    def check(text: str) -> str:
        try:
            check_text(text, what)
        except Rejected as rejected:
            raise ValueError(rejected.message) from None
        return text

    return AfterValidator(check)


MessageText = Annotated[str, _checked("the message"), Field(description=f"At most {MAX_MESSAGE_CHARS} characters.")]
NoteText = Annotated[str, _checked("the note"), Field(description=f"At most {MAX_MESSAGE_CHARS} characters.")]
ReplyText = Annotated[str, _checked("the reply"), Field(description=f"At most {MAX_MESSAGE_CHARS} characters.")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- Requests.


class StartConversation(Body):
    customer_id: str = Field(min_length=1, max_length=200, description="Your id for the customer (opaque to Handoff).")
    text: MessageText


class NewMessage(Body):
    text: MessageText


class NewReply(Body):
    text: ReplyText


class CloseRequest(Body):
    outcome: Outcome

    @field_validator("outcome")
    @classmethod
    def _an_agents_outcome(cls, outcome: Outcome) -> Outcome:
        if outcome is Outcome.INACTIVE:
            raise ValueError("inactive is set by the timers, not an agent's outcome; use resolved or not_resolved")
        return outcome


class TransferRequest(Body):
    agent_id: str = Field(min_length=1, max_length=200, description="The agent who holds the conversation next.")
    note: NoteText | None = Field(default=None, description="An internal note for agents (never the customer).")


class NoteRequest(Body):
    text: NoteText


class RatingRequest(Body):
    score: int = Field(ge=1, le=5, description="1 (bad) to 5 (excellent).")
    comment: Annotated[str, _checked("the comment")] | None = None


# --- Responses.


AS_OF = "When the database was read: the answer holds everything recorded by then (reads never ask Temporal)."


class CreatedConversation(Body):
    id: str
    status: Status
    customer_token: str = Field(description="Bearer token for this conversation's customer calls, and no other.")
    messages: list[TranscriptEntry] = Field(
        description="What the customer sees so far: their message and, normally, the bot's answer."
    )


class ReopenedConversation(CreatedConversation):
    """A message to a closed conversation starts a new one, linked to it."""

    previous_conversation_id: str


class RatingOut(Body):
    conversation_id: str
    score: int
    comment: str | None
    at: datetime


class Accepted(Body):
    conversation_id: str
    detail: str


class CustomerMessages(Body):
    conversation_id: str
    status: Status
    messages: list[TranscriptEntry] = Field(description="Customer, bot and agent messages; never system notes.")
    as_of: datetime = Field(description=AS_OF)


class ConversationDetail(ConversationSummary):
    transcript: list[TranscriptEntry] = Field(description="Every entry, system notes included, in order.")
    live: bool = Field(
        description="Always false: every read is served from the database (kept for clients of earlier versions)."
    )
    as_of: datetime = Field(description=AS_OF)
    previous_conversation_id: str | None = Field(
        default=None, description="The closed conversation the customer wrote to, which this one reopens."
    )
    previous_transcript: list[TranscriptEntry] = Field(
        default_factory=list, description="That earlier conversation's transcript, for context."
    )


class WaitingConversation(ConversationSummary):
    waiting_seconds: float
    overdue: bool = Field(default=False, description="Waiting longer than HANDOFF_WAITING_SLA.")


class HeldConversation(ConversationSummary):
    overdue: bool = Field(default=False, description="Not replied to within HANDOFF_FIRST_REPLY_SLA.")


class WaitingColumn(Body):
    as_of: datetime
    conversations: list[WaitingConversation] = Field(description="Longest-waiting first.")


class MyConversations(Body):
    agent: Agent
    conversations: list[HeldConversation]
    as_of: datetime | None = None


class HistoryPageOut(Body):
    conversations: list[ConversationSummary] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class ErrorBody(Body):
    detail: str
    holder: Agent | None = None
