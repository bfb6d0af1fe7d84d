"""Suggested replies for the agent holding a conversation (issue 14, item 1).

Two sources, searched with the same retrieval as the bot (handoff/retrieval.py):
- the **knowledge base**: its answers, as the bot would give them;
- **past replies**: what agents answered in conversations closed as *resolved*, indexed by the
  customer messages that came before each reply. A customer asking something an agent already
  solved gets that agent's words offered again.

Everything is read from the project database, never from Temporal: a suggestion costs no
billable action. The index of past replies lives in the API process and is rebuilt, off the
event loop, when conversations were resolved since it was built (at most every
`REFRESH_SECONDS`), so a busy API does not rebuild it per request.

**Kept out of the index**: a reply that holds what looks like personal data (an e-mail address,
a run of 6 or more digits: a card, a phone or an order number) is never offered to another
customer; nor is anything from a conversation not closed as resolved. To keep a whole
conversation out, close it as `not_resolved`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import re2
import sqlalchemy as sa

from handoff.bot import KnowledgeBaseBot
from handoff.models import EntryKind, Model, Outcome, Status, TranscriptEntry
from handoff.retrieval import TextIndex
from handoff.store import Store, conversations, facts

MAX_SUGGESTIONS = 3
MIN_SCORE = 0.2
"""Below this a suggestion is more noise than help; fewer than three (or none) are given."""

CONTEXT_MESSAGES = 3
"""The customer's latest messages a search uses (and that index a past reply)."""

REFRESH_SECONDS = 30.0

PERSONAL_DATA = re2.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|\d[\d \-]{4,}\d")
"""An e-mail address, or six or more digits (spaces and dashes allowed between them)."""


class SuggestionSource(Model):
    kind: Literal["knowledge_base", "past_reply"]
    conversation_id: str | None = None  # the resolved conversation a past reply comes from


class Suggestion(Model):
    id: str  # stable for the same text from the same source: feedback refers to it
    text: str
    score: float  # retrieval similarity with the customer's latest messages, 0..1
    source: SuggestionSource


class Suggestions(Model):
    conversation_id: str
    as_of: datetime
    based_on: list[str]  # the customer messages the search used, oldest first
    suggestions: list[Suggestion]


@dataclass(frozen=True)
class PastReply:
    conversation_id: str
    context: str  # the customer messages before the reply
    text: str


def suggestion_id(kind: str, source: str, text: str) -> str:
    return hashlib.sha256(f"{kind}\0{source}\0{text}".encode()).hexdigest()[:16]


def looks_personal(text: str) -> bool:
    return PERSONAL_DATA.search(text) is not None


def customer_context(transcript: Iterable[TranscriptEntry]) -> list[str]:
    """The customer's latest messages: those since the last agent reply, at most `CONTEXT_MESSAGES`
    (if the agent replied last, the ones before that reply: what the conversation is about)."""
    entries = [e for e in transcript if e.kind in (EntryKind.CUSTOMER, EntryKind.AGENT)]
    while entries and entries[-1].kind is EntryKind.AGENT and any(e.kind is EntryKind.CUSTOMER for e in entries):
        entries.pop()
    context: list[str] = []
    for entry in reversed(entries):
        if entry.kind is EntryKind.AGENT:
            break
        context.append(entry.text)
        if len(context) == CONTEXT_MESSAGES:
            break
    return list(reversed(context))


def past_replies(store: Store) -> list[PastReply]:
    """Each agent reply in a conversation closed as resolved, with the customer messages before it."""
    query = (
        sa.select(facts.c.conversation_id, facts.c.entry_kind, facts.c.text)
        .join(conversations, conversations.c.id == facts.c.conversation_id)
        .where(
            conversations.c.status == Status.CLOSED.value,
            conversations.c.outcome == Outcome.RESOLVED.value,
            facts.c.entry_kind.in_([EntryKind.CUSTOMER.value, EntryKind.AGENT.value]),
        )
        .order_by(facts.c.conversation_id, facts.c.entry_seq)
    )
    replies: list[PastReply] = []
    current: str | None = None
    pending: list[str] = []
    with store.engine.connect() as conn:
        for conversation_id, kind, text in conn.execute(query):
            if conversation_id != current:
                current, pending = conversation_id, []
            if kind == EntryKind.CUSTOMER.value:
                pending = [*pending, text][-CONTEXT_MESSAGES:]
            elif pending and not looks_personal(text):
                replies.append(PastReply(conversation_id, "\n".join(pending), text))
    return replies


def resolved_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(conversations)
                .where(conversations.c.outcome == Outcome.RESOLVED.value)
            ).scalar_one()
        )


class ReplyIndex:
    """Past replies, searchable by the customer messages that led to them."""

    def __init__(self, replies: list[PastReply]) -> None:
        self.replies = replies
        self.index = TextIndex([r.context for r in replies])


class Assistant:
    """Suggests replies from the knowledge base and from past resolved conversations."""

    def __init__(self, bot: KnowledgeBaseBot) -> None:
        self.bot = bot
        self._knowledge = TextIndex(["\n".join((*a.examples, a.text)) for a in bot.answers])
        self._replies = ReplyIndex([])
        self._built_for = -1  # resolved conversations when the index was built
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def refresh(self, store: Store, *, force: bool = False) -> None:
        """Rebuild the past-reply index if conversations were resolved since (blocking: call it
        in a thread). At most one rebuild at a time; others use the index they have."""
        if not force and time.monotonic() - self._checked_at < REFRESH_SECONDS:
            return
        if not self._lock.acquire(blocking=force):
            return
        try:
            self._checked_at = time.monotonic()
            count = resolved_count(store)
            if count != self._built_for:
                self._replies = ReplyIndex(past_replies(store))
                self._built_for = count
        finally:
            self._lock.release()

    def suggest(self, context: list[str], exclude_conversation: str | None = None) -> list[Suggestion]:
        """The best replies for `context` (the customer's latest messages), best first."""
        query = "\n".join(context)
        if not query.strip():
            return []
        candidates: list[Suggestion] = []
        for hit in self._knowledge.search(query, k=MAX_SUGGESTIONS):
            text = self.bot.answers[hit.index].text
            candidates.append(
                Suggestion(
                    id=suggestion_id("knowledge_base", str(hit.index), text),
                    text=text,
                    score=round(hit.score, 4),
                    source=SuggestionSource(kind="knowledge_base"),
                )
            )
        replies = self._replies
        for hit in replies.index.search(query, k=MAX_SUGGESTIONS * 3):
            past = replies.replies[hit.index]
            if past.conversation_id == exclude_conversation:
                continue
            candidates.append(
                Suggestion(
                    id=suggestion_id("past_reply", past.conversation_id, past.text),
                    text=past.text,
                    score=round(hit.score, 4),
                    source=SuggestionSource(kind="past_reply", conversation_id=past.conversation_id),
                )
            )
        chosen: list[Suggestion] = []
        seen: set[str] = set()
        for candidate in sorted(candidates, key=lambda s: (-s.score, s.source.kind, s.id)):
            key = " ".join(candidate.text.lower().split())
            if candidate.score < MIN_SCORE or key in seen:
                continue
            seen.add(key)
            chosen.append(candidate)
            if len(chosen) == MAX_SUGGESTIONS:
                break
        return chosen
