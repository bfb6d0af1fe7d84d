"""Suggested replies for the agent holding a conversation (issue 14, items 1 and 5).

Two sources:
- the **knowledge base**: its answers, as the bot would give them (an in-process index: a few
  dozen answers);
- **past replies**: what agents answered in conversations closed as *resolved*, indexed by the
  customer messages before each reply (handoff/reply_index.py). The database's own full-text
  search (SQLite FTS5 with bm25, PostgreSQL tsvector with a GIN index and ts_rank) finds the
  `CANDIDATES` best; the index grows in the transaction that records each close, so nothing is
  rebuilt and nothing waits for a rebuild.

The few candidates are then **scored in process**, on a 0..1 scale comparable across sources and
databases: the TF-IDF cosine of `handoff.retrieval` (typos corrected, unknown words lowering the
score) and, when `embeddings` is on (`HANDOFF_ASSIST_EMBEDDINGS`), blended with the cosine of
WordLlama embeddings (a 16 MB model inside the `wordllama` wheel, loaded from the installed
package with downloads disabled: meaning as well as words). `python -m bench assist` measures
both ways.

Everything is read from the project database, never from Temporal: a suggestion costs no
billable action. Optionally a language model rewrites the chosen suggestions (handoff/llm.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from handoff import reply_index
from handoff.bot import KnowledgeBaseBot
from handoff.models import EntryKind, FactKind, Model, Status, TranscriptEntry
from handoff.reply_index import CONTEXT_MESSAGES, PastReply, looks_personal
from handoff.retrieval import TextIndex, counts, words
from handoff.stats import DurationStats, percentile
from handoff.store import Store, facts, suggestion_feedback, suggestions_shown

if TYPE_CHECKING:
    from handoff.llm import Rewriter

__all__ = ["CONTEXT_MESSAGES", "PastReply", "looks_personal"]

MAX_SUGGESTIONS = 3
MIN_SCORE = 0.2
"""Below this a suggestion is more noise than help; fewer than three (or none) are given."""

CANDIDATES = 20
"""Past replies the full-text search hands over for scoring (the best by bm25 / ts_rank)."""

SEMANTIC_WEIGHT = 0.5
"""With embeddings on, a suggestion's score is (1 - this) × its word score + this × its meaning
score (the cosine of the embeddings, negatives as 0). Chosen with `python -m bench assist`."""


class SuggestionSource(Model):
    kind: Literal["knowledge_base", "past_reply"]
    conversation_id: str | None = None  # the resolved conversation a past reply comes from


class Suggestion(Model):
    id: str  # stable for the same text from the same source: feedback refers to it
    text: str
    score: float  # similarity with the customer's latest messages, 0..1
    source: SuggestionSource
    rewritten: bool = False  # the text was rewritten by the team's language model (HANDOFF_LLM_*)


class Suggestions(Model):
    conversation_id: str
    as_of: datetime
    based_on: list[str]  # the customer messages the search used, oldest first
    suggestions: list[Suggestion]


def suggestion_id(kind: str, source: str, text: str) -> str:
    return hashlib.sha256(f"{kind}\0{source}\0{text}".encode()).hexdigest()[:16]


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


class Embedder:
    """WordLlama, loaded from the installed `wordllama` package: its model ships inside the wheel,
    and downloads are disabled, so a missing file is an error at load, never a download."""

    def __init__(self) -> None:
        # Importing wordllama calls `logging.basicConfig(level=INFO)`: the process's own logging
        # setup (handlers, level) is put back as it was.
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            import wordllama
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
        self.model: Any = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)

    def vectors(self, texts: Sequence[str]) -> Any:
        """Unit-length embeddings, one row per text (a numpy array)."""
        return self.model.embed(list(texts), norm=True)


class Assistant:
    """Suggests replies from the knowledge base and from past resolved conversations."""

    def __init__(
        self, bot: KnowledgeBaseBot, *, embeddings: bool = True, semantic_weight: float = SEMANTIC_WEIGHT
    ) -> None:
        self.bot = bot
        self._knowledge_texts = ["\n".join((*a.examples, a.text)) for a in bot.answers]
        self._knowledge_counts = [counts(text) for text in self._knowledge_texts]
        self._knowledge = TextIndex((), counted=self._knowledge_counts)
        self.embeddings = embeddings
        self.semantic_weight = semantic_weight
        self._embedder: Embedder | None = None
        self._knowledge_vectors: Any = None
        self._lock = threading.Lock()

    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (once per process; blocking: call it in a thread)."""
        with self._lock:
            if self._embedder is None:
                embedder = Embedder()
                self._knowledge_vectors = embedder.vectors(self._knowledge_texts)
                self._embedder = embedder
            return self._embedder

    def suggest(self, store: Store, context: list[str], exclude_conversation: str | None = None) -> list[Suggestion]:
        """The best replies for `context` (the customer's latest messages), best first (blocking:
        one full-text query; call it in a thread)."""
        query = "\n".join(context)
        if not query.strip():
            return []
        with store.engine.connect() as conn:
            found = reply_index.search(conn, query, CANDIDATES, exclude_conversation)
        return self.rank(query, [PastReply(f.conversation_id, f.context, f.text) for f in found])

    def rank(self, query: str, past: Sequence[PastReply]) -> list[Suggestion]:
        """Score the knowledge base's answers and these past replies (the full-text search's
        candidates) against `query`; the best `MAX_SUGGESTIONS` above `MIN_SCORE`."""
        answers = self.bot.answers
        knowledge_words = {hit.index: hit.score for hit in self._knowledge.search(query, k=len(answers))}
        # The candidates' word scores, with the knowledge base as background for word weights: a
        # word every candidate shares still weighs what it weighs among the team's topics.
        local = TextIndex([p.context for p in past], counted=self._knowledge_counts)
        past_words = {
            hit.index - len(answers): hit.score
            for hit in local.search(query, k=local.size)
            if hit.index >= len(answers)
        }
        knowledge_scores = [knowledge_words.get(i, 0.0) for i in range(len(answers))]
        past_scores = [past_words.get(i, 0.0) for i in range(len(past))]
        if self.embeddings:
            embedder = self.embedder()
            question = embedder.vectors([query])[0]
            w = self.semantic_weight
            meaning = (self._knowledge_vectors @ question).tolist()
            knowledge_scores = [(1 - w) * s + w * max(m, 0.0) for s, m in zip(knowledge_scores, meaning, strict=True)]
            if past:
                meaning = (embedder.vectors([p.context for p in past]) @ question).tolist()
                past_scores = [(1 - w) * s + w * max(m, 0.0) for s, m in zip(past_scores, meaning, strict=True)]
        candidates = [
            Suggestion(
                id=suggestion_id("knowledge_base", str(i), answer.text),
                text=answer.text,
                score=round(score, 4),
                source=SuggestionSource(kind="knowledge_base"),
            )
            for i, (answer, score) in enumerate(zip(answers, knowledge_scores, strict=True))
        ]
        candidates += [
            Suggestion(
                id=suggestion_id("past_reply", reply.conversation_id, reply.text),
                text=reply.text,
                score=round(score, 4),
                source=SuggestionSource(kind="past_reply", conversation_id=reply.conversation_id),
            )
            for reply, score in zip(past, past_scores, strict=True)
        ]
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


async def suggestions_for(
    store: Store, assistant: Assistant, conversation_id: str, agent_id: str, rewriter: Rewriter | None = None
) -> Suggestions:
    """Suggestions for the agent holding `conversation_id` (the API's, the client's): the
    customer's latest messages searched, the choice optionally rewritten, and remembered as shown
    (feedback refers to them; a reply close to one counts as using it). Raises
    ConversationNotFound, ConversationClosed, or NotAssignedAgent for an agent not holding it."""
    from handoff.client import ConversationClosed, ConversationNotFound, NotAssignedAgent

    found = await asyncio.to_thread(store.conversation, conversation_id)
    if found is None:
        raise ConversationNotFound(f"no conversation {conversation_id!r}")
    summary, transcript = found
    if summary.status is Status.CLOSED:
        raise ConversationClosed(f"conversation {conversation_id!r} is closed")
    if summary.status is not Status.HUMAN or summary.agent is None or summary.agent.id != agent_id:
        raise NotAssignedAgent("suggestions are for the agent holding the conversation: take it over first")
    context = customer_context(transcript)
    now = datetime.now(UTC)
    suggested = await asyncio.to_thread(assistant.suggest, store, context, conversation_id)
    if rewriter is not None and suggested:
        suggested = await rewriter.suggestions(context, suggested)
    await asyncio.to_thread(record_shown, store, conversation_id, agent_id, suggested, now)
    return Suggestions(conversation_id=conversation_id, as_of=now, based_on=context, suggestions=suggested)


def exclude_from_index(store: Store, conversation_id: str, agent_id: str) -> int:
    """Keep a conversation's replies out of suggestions from now on (see handoff/reply_index.py);
    how many indexed replies were taken out."""
    with store.engine.begin() as conn:
        return reply_index.exclude(conn, conversation_id, agent_id, datetime.now(UTC))


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
