"""The index of past replies (issue 14, item 5): what agents answered in conversations closed as
resolved, searched by the database's own full-text search.

Each agent reply is kept with the customer messages before it (at most `CONTEXT_MESSAGES`), and
those messages are what a search matches: a customer asking what another customer asked gets the
reply that solved it. The index **grows as conversations close**: `index_conversation` runs in
the transaction that records a close as resolved (`Store._write`), so it costs no rebuild, no
background job and no Temporal action, and a retried close adds nothing (one row per reply key).
Migration 0006 filled it from the conversations resolved before it existed.

The search itself is the database's:
- **SQLite**: an FTS5 table over `past_replies.context` (external content, Porter stemming, kept
  in step by triggers), ranked by `bm25`;
- **PostgreSQL**: a stored `tsvector` column (`to_tsvector('english', context)`) with a GIN
  index, ranked by `ts_rank`.
Either way the question's words are OR-ed (a customer rarely uses every word of a past question),
its common words left out while it has rarer ones, at most the `MAX_RANKED` most recent matches
are ranked (a bound on the cost however large the index grows), and the best `limit` rows come
back; `handoff.assist` re-scores those few in process.

**Kept out**: a reply that holds what looks like personal data (an e-mail address, a run of six or
more digits: a card, a phone or an order number) is never indexed, nor anything from a conversation
not closed as resolved, nor a conversation a team excluded (`exclude`: the agent API's
`POST /conversations/{id}/exclude-from-suggestions`, the client, or the CLI), before or after its close.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import re2
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from handoff.models import EntryKind, Outcome, Status
from handoff.retrieval import content_tokens

CONTEXT_MESSAGES = 3
"""The customer messages before a reply that index it (and that a search uses)."""

EXCLUDED_MARGIN = 5

MAX_QUERY_TERMS = 32
"""A longer question is cut to its first this many distinct words: a search stays a few postings."""

PERSONAL_DATA = re2.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|\d[\d \-]{4,}\d")
"""An e-mail address, or six or more digits (spaces and dashes allowed between them)."""


def looks_personal(text: str) -> bool:
    return PERSONAL_DATA.search(text) is not None


@dataclass(frozen=True)
class PastReply:
    conversation_id: str
    context: str  # the customer messages before the reply
    text: str


@dataclass(frozen=True)
class Found:
    """A past reply the full-text search found, with the database's own rank (higher: better)."""

    id: int
    conversation_id: str
    context: str
    text: str
    rank: float


def replies_of(entries: Iterable[tuple[str, str, str, datetime]]) -> list[dict[str, Any]]:
    """The rows one conversation adds: each agent reply with the customer messages before it,
    from its (fact key, entry kind, text, at) in transcript order; personal data left out."""
    rows: list[dict[str, Any]] = []
    pending: list[str] = []
    for key, kind, text, at in entries:
        if kind == EntryKind.CUSTOMER.value:
            pending = [*pending, text][-CONTEXT_MESSAGES:]
        elif kind == EntryKind.AGENT.value and pending and not looks_personal(text):
            rows.append({"key": key, "context": "\n".join(pending), "text": text, "at": at})
    return rows


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    return (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(table)


def index_conversation(conn: sa.Connection, conversation_id: str) -> int:
    """Add a resolved conversation's replies to the index (in the caller's transaction); how
    many were new. Idempotent; nothing for a conversation a team excluded."""
    from handoff.store import assist_exclusions, facts, past_replies

    excluded = conn.execute(
        sa.select(assist_exclusions.c.conversation_id).where(assist_exclusions.c.conversation_id == conversation_id)
    ).first()
    if excluded is not None:
        return 0
    entries = conn.execute(
        sa.select(facts.c.key, facts.c.entry_kind, facts.c.text, facts.c.at)
        .where(
            facts.c.conversation_id == conversation_id,
            facts.c.entry_kind.in_([EntryKind.CUSTOMER.value, EntryKind.AGENT.value]),
        )
        .order_by(facts.c.entry_seq)
    ).all()
    rows = [{**row, "conversation_id": conversation_id} for row in replies_of(entries)]
    if not rows:
        return 0
    stmt = _insert(conn, past_replies).on_conflict_do_nothing(index_elements=["key"])
    return len(conn.execute(stmt.returning(past_replies.c.id), rows).all())


def backfill(conn: sa.Connection) -> int:
    """Index every conversation already closed as resolved (migration 0006); how many replies."""
    from handoff.store import conversations

    resolved = conn.execute(
        sa.select(conversations.c.id).where(
            conversations.c.status == Status.CLOSED.value, conversations.c.outcome == Outcome.RESOLVED.value
        )
    ).scalars()
    return sum(index_conversation(conn, conversation_id) for conversation_id in list(resolved))


def exclude(conn: sa.Connection, conversation_id: str, agent_id: str, at: datetime) -> int:
    """Keep a conversation out of the index from now on (its close will not add it) and take out
    what it already added; how many replies were taken out. Idempotent."""
    from handoff.store import assist_exclusions, past_replies

    conn.execute(
        _insert(conn, assist_exclusions)
        .values(conversation_id=conversation_id, excluded_by=agent_id, at=at)
        .on_conflict_do_nothing(index_elements=["conversation_id"])
    )
    return int(conn.execute(sa.delete(past_replies).where(past_replies.c.conversation_id == conversation_id)).rowcount)


def query_terms(question: str) -> list[str]:
    """The question's distinct content words, as written (the database stems them itself)."""
    return list(dict.fromkeys(content_tokens(question)))[:MAX_QUERY_TERMS]


COMMON_MATCHES = 1000
"""A question word found in this many past replies or more is common: while the question has
rarer words, the search leaves it out (it would only make the database rank most of the index);
the in-process scoring still counts it."""

MAX_RANKED = 2000
"""At most this many matching replies, the most recent, are ranked per search: a bound on its cost
however large the index grows (recent replies also tell today's answers)."""

SQLITE_MATCHES = sa.text(
    "SELECT count(*) FROM (SELECT rowid FROM past_replies_fts WHERE past_replies_fts MATCH :term LIMIT :cap)"
)
SQLITE_SEARCH = (
    "SELECT p.id, p.conversation_id, p.context, p.text, -m.score AS rank "
    "FROM (SELECT rowid, bm25(past_replies_fts) AS score FROM past_replies_fts "
    "      WHERE past_replies_fts MATCH :query {recent}) AS m "
    "JOIN past_replies AS p ON p.id = m.rowid ORDER BY m.score, p.id DESC LIMIT :limit"
)
"""FTS5's bm25 is lower for better matches: negated here so that higher is better on both databases."""

POSTGRES_MATCHES = sa.text(
    "EXPLAIN (FORMAT JSON) SELECT 1 FROM past_replies WHERE context_search @@ to_tsquery('english', :term)"
)
"""On PostgreSQL a count would visit every matching row (a GIN index answers no count): the
planner's estimate, from the statistics ANALYZE keeps of the column's commonest words, is enough
to tell a common word, and costs a planning step."""
POSTGRES_SEARCH = (
    "SELECT m.id, m.conversation_id, m.context, m.text, "
    "ts_rank(m.context_search, to_tsquery('english', :query)) AS rank "
    "FROM (SELECT id, conversation_id, context, text, context_search FROM past_replies "
    "      WHERE context_search @@ to_tsquery('english', :query) {recent}) AS m "
    "ORDER BY rank DESC, m.id DESC LIMIT :limit"
)
RECENT = "ORDER BY {id} DESC LIMIT :bound"
STATEMENTS = {
    (dialect, bounded): sa.text(template.format(recent=RECENT.format(id=column) if bounded else ""))
    for dialect, template, column in (("sqlite", SQLITE_SEARCH, "rowid"), ("postgresql", POSTGRES_SEARCH, "id"))
    for bounded in (False, True)
}


def _matches(conn: sa.Connection, term: str) -> float:
    """How many past replies hold `term` (counted up to `COMMON_MATCHES` on SQLite, estimated on PostgreSQL)."""
    if conn.dialect.name == "sqlite":
        return float(conn.execute(SQLITE_MATCHES, {"term": term, "cap": COMMON_MATCHES}).scalar_one())
    plan = conn.execute(POSTGRES_MATCHES, {"term": term}).scalar_one()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return float(plan[0]["Plan"]["Plan Rows"])


def search(conn: sa.Connection, question: str, limit: int, exclude_conversation: str | None = None) -> list[Found]:
    """The `limit` past replies whose customer messages best match `question`, best first,
    ranked by the database (bm25 / ts_rank). Its words are OR-ed; its common words
    (`COMMON_MATCHES`) are left out while it has rarer ones, which bounds the matches to rank;
    when every word is common, the `MAX_RANKED` most recent matches are ranked."""
    terms = query_terms(question)
    if not terms:
        return []
    sqlite_db = conn.dialect.name == "sqlite"
    quoted = [f'"{t}"' if sqlite_db else t for t in terms]
    rare = [t for t in quoted if _matches(conn, t) < COMMON_MATCHES]
    query = (" OR " if sqlite_db else " | ").join(rare or quoted)
    statement = STATEMENTS[("sqlite" if sqlite_db else "postgresql", not rare)]
    # A few more than asked, in case the excluded conversation takes places (a conversation is
    # rarely in the index while someone asks for suggestions in it: it is indexed once closed).
    rows = conn.execute(statement, {"query": query, "bound": MAX_RANKED, "limit": limit + EXCLUDED_MARGIN})
    found = [
        Found(int(r.id), r.conversation_id, r.context, r.text, float(r.rank))
        for r in rows
        if r.conversation_id != exclude_conversation
    ]
    return found[:limit]


def add(conn: sa.Connection, replies: Iterable[PastReply], at: datetime) -> None:
    """Index these replies as they are (for the benchmark's generated replies; the product indexes
    through `index_conversation`)."""
    from handoff.store import past_replies

    rows = [
        {
            "key": f"{r.conversation_id}:{n}",
            "conversation_id": r.conversation_id,
            "context": r.context,
            "text": r.text,
            "at": at,
        }
        for n, r in enumerate(replies)
    ]
    if rows:
        conn.execute(sa.insert(past_replies), rows)
