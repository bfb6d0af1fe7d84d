"""Custom search attributes: what ops filter conversations by in the Temporal UI and CLI.

Search attributes are not encrypted, so they hold no personal data: a status, an agent's
id (staff, not customer), an outcome. Registered by `handoff.devserver` when the embedded
server starts, e.g. `temporal workflow list --query "ConversationStatus='closed'"`.

Each upsert is a billable Temporal action. Conversations started since issue 8's cost work
(`search_attributes_at_close` in their state) are listed as `open` from their start (set with
the start: free) until they close, when one upsert sets `closed` and the outcome: who is waiting
and who holds what is answered by the database (`GET /live/waiting`, `GET /live/mine`), for free.
Older conversations keep one upsert per transition (`bot`, `waiting`, `human` and the agent's id).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from handoff.models import ConversationSummary, Status

STATUS = SearchAttributeKey.for_keyword("ConversationStatus")
AGENT = SearchAttributeKey.for_keyword("ConversationAgent")
OUTCOME = SearchAttributeKey.for_keyword("ConversationOutcome")

ALL = (STATUS, AGENT, OUTCOME)

OPEN = "open"
"""`ConversationStatus` of a running conversation that upserts only at close."""


def values(summary: ConversationSummary, *, at_close_only: bool = False) -> dict[str, str]:
    """The search attribute values for a conversation ('' where there is none).

    `at_close_only`: a running conversation is `open` with no agent, whatever its status, so
    only the close changes anything (one upsert per conversation)."""
    if at_close_only and summary.status is not Status.CLOSED:
        return {STATUS.name: OPEN, AGENT.name: "", OUTCOME.name: ""}
    return {
        STATUS.name: summary.status.value,
        AGENT.name: summary.agent.id if summary.agent else "",
        OUTCOME.name: summary.outcome.value if summary.outcome else "",
    }


def for_new_conversation(*, at_close_only: bool = False) -> TypedSearchAttributes:
    """Set at start, so a conversation is listed (as `bot`, or `open`) before its first workflow task."""
    return TypedSearchAttributes([SearchAttributePair(STATUS, OPEN if at_close_only else Status.BOT.value)])
