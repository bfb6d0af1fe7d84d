"""Custom search attributes: what ops filter conversations by in the Temporal UI and CLI.

Search attributes are not encrypted, so they hold no personal data: a status, an agent's
id (staff, not customer), an outcome. Registered by `handoff.devserver` when the embedded
server starts, e.g. `temporal workflow list --query "ConversationStatus='waiting'"`.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from handoff.models import ConversationSummary, Status

STATUS = SearchAttributeKey.for_keyword("ConversationStatus")
AGENT = SearchAttributeKey.for_keyword("ConversationAgent")
OUTCOME = SearchAttributeKey.for_keyword("ConversationOutcome")

ALL = (STATUS, AGENT, OUTCOME)


def values(summary: ConversationSummary) -> dict[str, str]:
    """The search attribute values for a conversation ('' where there is none)."""
    return {
        STATUS.name: summary.status.value,
        AGENT.name: summary.agent.id if summary.agent else "",
        OUTCOME.name: summary.outcome.value if summary.outcome else "",
    }


def for_new_conversation() -> TypedSearchAttributes:
    """Set at start, so a conversation is listed as `bot` before its first workflow task."""
    return TypedSearchAttributes([SearchAttributePair(STATUS, Status.BOT.value)])
