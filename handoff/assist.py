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
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import re2
import sqlalchemy as sa

from handoff.bot import KnowledgeBaseBot
from handoff.models import EntryKind, FactKind, Model, Outcome, Status, TranscriptEntry
from handoff.retrieval import TextIndex, words
from handoff.stats import DurationStats, percentile
from handoff.store import Store, conversations, facts, suggestion_feedback, suggestions_shown

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
                self.index_replies(past_replies(store))
                self._built_for = count
        finally:
            self._lock.release()

    def index_replies(self, replies: list[PastReply]) -> None:
        """Search these past replies from now on (what `refresh` reads from the database)."""
        self._replies = ReplyIndex(replies)

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


# --- Feedback: what the agent made of a suggestion, said with a click or shown by the reply.

FeedbackAction = Literal["used", "edited", "dismissed"]

USED_SIMILARITY = 0.9
EDITED_SIMILARITY = 0.6
"""A reply whose content words overlap a shown suggestion's this much (Jaccard) counts as that
suggestion used (or, lower, edited), without a click."""

IMPLICIT_SLACK = timedelta(seconds=5)
"""How long after a reply its implicit feedback may be recorded and still belong to it."""


class UnknownSuggestion(LookupError):
    """Feedback on a suggestion this agent was never shown in this conversation."""


class Feedback(Model):
    conversation_id: str
    suggestion_id: str
    action: FeedbackAction
    implicit: bool
    at: datetime


def record_shown(store: Store, conversation_id: str, agent_id: str, shown: list[Suggestion], at: datetime) -> None:
    """Remember each suggestion shown to the agent (once: the first time counts)."""
    if not shown:
        return
    rows = [
        {
            "conversation_id": conversation_id,
            "suggestion_id": s.id,
            "agent_id": agent_id,
            "source_kind": s.source.kind,
            "text": s.text,
            "first_shown_at": at,
        }
        for s in shown
    ]
    with store.engine.begin() as conn:
        conn.execute(store._insert(suggestions_shown).on_conflict_do_nothing(), rows)


def record_feedback(
    store: Store, conversation_id: str, agent_id: str, suggestion_id: str, action: FeedbackAction, at: datetime
) -> Feedback:
    """The agent's verdict on a suggestion they were shown; a later click replaces an earlier one."""
    with store.engine.begin() as conn:
        shown = conn.execute(
            sa.select(suggestions_shown.c.suggestion_id).where(
                suggestions_shown.c.conversation_id == conversation_id,
                suggestions_shown.c.suggestion_id == suggestion_id,
                suggestions_shown.c.agent_id == agent_id,
            )
        ).first()
        if shown is None:
            raise UnknownSuggestion(f"suggestion {suggestion_id!r} was not shown to you in this conversation")
        values = {"action": action, "implicit": False, "at": at}
        insert = store._insert(suggestion_feedback).values(
            conversation_id=conversation_id, suggestion_id=suggestion_id, agent_id=agent_id, **values
        )
        conn.execute(
            insert.on_conflict_do_update(index_elements=["conversation_id", "suggestion_id", "agent_id"], set_=values)
        )
    return Feedback(conversation_id=conversation_id, suggestion_id=suggestion_id, action=action, implicit=False, at=at)


def similarity(a: str, b: str) -> float:
    """Jaccard overlap of the content words of two texts (1: the same words)."""
    left, right = set(words(a)), set(words(b))
    if not left or not right:
        return 1.0 if a.strip().lower() == b.strip().lower() else 0.0
    return len(left & right) / len(left | right)


def match_reply(store: Store, conversation_id: str, agent_id: str, reply: str, at: datetime) -> Feedback | None:
    """A reply close to a suggestion shown to its agent counts as that suggestion used (or
    edited), unless the agent already said what they made of it."""
    with store.engine.begin() as conn:
        pending = conn.execute(
            sa.select(suggestions_shown.c.suggestion_id, suggestions_shown.c.text)
            .outerjoin(
                suggestion_feedback,
                sa.and_(
                    suggestion_feedback.c.conversation_id == suggestions_shown.c.conversation_id,
                    suggestion_feedback.c.suggestion_id == suggestions_shown.c.suggestion_id,
                    suggestion_feedback.c.agent_id == suggestions_shown.c.agent_id,
                ),
            )
            .where(
                suggestions_shown.c.conversation_id == conversation_id,
                suggestions_shown.c.agent_id == agent_id,
                suggestion_feedback.c.action.is_(None),
            )
        ).all()
        scored = sorted(((similarity(reply, text), sid) for sid, text in pending), reverse=True)
        if not scored or scored[0][0] < EDITED_SIMILARITY:
            return None
        score, suggestion_id = scored[0]
        action: FeedbackAction = "used" if score >= USED_SIMILARITY else "edited"
        conn.execute(
            store._insert(suggestion_feedback)
            .values(
                conversation_id=conversation_id,
                suggestion_id=suggestion_id,
                agent_id=agent_id,
                action=action,
                implicit=True,
                at=at,
            )
            .on_conflict_do_nothing()
        )
    return Feedback(conversation_id=conversation_id, suggestion_id=suggestion_id, action=action, implicit=True, at=at)


# --- Statistics of AI assist (definitions in README, "AI assist").


class AcceptanceCounts(Model):
    shown: int = 0  # distinct suggestions shown (a suggestion shown again counts once)
    used: int = 0
    edited: int = 0
    dismissed: int = 0
    acceptance_rate: float | None = None  # (used + edited) / shown; null when none was shown


class AssistStats(Model):
    since: datetime | None
    until: datetime | None
    totals: AcceptanceCounts
    per_agent: dict[str, AcceptanceCounts]
    per_day: dict[str, AcceptanceCounts]
    first_response_with_suggestion: DurationStats
    first_response_without_suggestion: DurationStats


@dataclass
class _Counts:
    shown: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def out(self) -> AcceptanceCounts:
        accepted = self.verdicts["used"] + self.verdicts["edited"]
        return AcceptanceCounts(
            shown=self.shown,
            used=self.verdicts["used"],
            edited=self.verdicts["edited"],
            dismissed=self.verdicts["dismissed"],
            acceptance_rate=round(accepted / self.shown, 4) if self.shown else None,
        )


def _durations(values: list[float]) -> DurationStats:
    values = sorted(values)
    median, p90 = percentile(values, 0.5), percentile(values, 0.9)
    return DurationStats(
        count=len(values),
        median_seconds=None if median is None else round(median, 3),
        p90_seconds=None if p90 is None else round(p90, 3),
    )


def assist_stats(
    store: Store, *, since: datetime | None = None, until: datetime | None = None, agent_id: str | None = None
) -> AssistStats:
    """Acceptance of suggestions by agent and by day (of first showing), and first-response
    times of assignments whose first reply used a suggestion, against the others."""
    shown_query = sa.select(
        suggestions_shown.c.agent_id,
        suggestions_shown.c.first_shown_at,
        suggestion_feedback.c.action,
    ).outerjoin(
        suggestion_feedback,
        sa.and_(
            suggestion_feedback.c.conversation_id == suggestions_shown.c.conversation_id,
            suggestion_feedback.c.suggestion_id == suggestions_shown.c.suggestion_id,
            suggestion_feedback.c.agent_id == suggestions_shown.c.agent_id,
        ),
    )
    if since is not None:
        shown_query = shown_query.where(suggestions_shown.c.first_shown_at >= since)
    if until is not None:
        shown_query = shown_query.where(suggestions_shown.c.first_shown_at < until)
    if agent_id is not None:
        shown_query = shown_query.where(suggestions_shown.c.agent_id == agent_id)
    totals = _Counts()
    per_agent: dict[str, _Counts] = defaultdict(_Counts)
    per_day: dict[str, _Counts] = defaultdict(_Counts)
    with store.engine.connect() as conn:
        for agent, first_shown_at, action in conn.execute(shown_query):
            for counts in (totals, per_agent[agent], per_day[first_shown_at.date().isoformat()]):
                counts.shown += 1
                if action is not None:
                    counts.verdicts[action] += 1
        with_suggestion, without_suggestion = _first_responses(conn, since, until, agent_id)
    return AssistStats(
        since=since,
        until=until,
        totals=totals.out(),
        per_agent={a: c.out() for a, c in sorted(per_agent.items())},
        per_day={d: c.out() for d, c in sorted(per_day.items())},
        first_response_with_suggestion=_durations(with_suggestion),
        first_response_without_suggestion=_durations(without_suggestion),
    )


def _first_responses(
    conn: sa.Connection, since: datetime | None, until: datetime | None, agent_id: str | None
) -> tuple[list[float], list[float]]:
    """First-response times (take-over to that agent's first reply, counted on the reply's
    time), split by whether a suggestion was used or edited by then."""
    query = (
        sa.select(facts.c.conversation_id, facts.c.kind, facts.c.at, facts.c.agent_id, facts.c.entry_kind)
        .where(
            sa.or_(
                facts.c.kind.in_([FactKind.TAKEN_OVER.value, FactKind.HANDED_BACK.value, FactKind.CLOSED.value]),
                sa.and_(facts.c.kind == FactKind.MESSAGE.value, facts.c.entry_kind == EntryKind.AGENT.value),
            )
        )
        .order_by(facts.c.conversation_id, facts.c.at, facts.c.number)
    )
    accepted: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for conversation_id, agent, at in conn.execute(
        sa.select(
            suggestion_feedback.c.conversation_id, suggestion_feedback.c.agent_id, suggestion_feedback.c.at
        ).where(suggestion_feedback.c.action.in_(["used", "edited"]))
    ):
        accepted[(conversation_id, agent)].append(at)
    with_suggestion: list[float] = []
    without_suggestion: list[float] = []
    held: dict[str, tuple[str, datetime]] = {}  # conversation -> (agent, taken over at), until the first reply
    for conversation_id, kind, at, agent, _entry_kind in conn.execute(query):
        if kind == FactKind.TAKEN_OVER.value:
            held[conversation_id] = (agent, at)
        elif kind in (FactKind.HANDED_BACK.value, FactKind.CLOSED.value):
            held.pop(conversation_id, None)
        elif conversation_id in held and held[conversation_id][0] == agent:
            holder, taken_at = held.pop(conversation_id)
            if (since is not None and at < since) or (until is not None and at >= until):
                continue
            if agent_id is not None and holder != agent_id:
                continue
            seconds = (at - taken_at).total_seconds()
            used = any(taken_at <= t <= at + IMPLICIT_SLACK for t in accepted[(conversation_id, holder)])
            (with_suggestion if used else without_suggestion).append(seconds)
    return with_suggestion, without_suggestion
