"""The project's database: recorded facts, the conversations table, transcripts after close.

Temporal holds the live state; this store holds what must outlive Temporal's retention and
what the statistics are computed from. Every write is idempotent: a fact is keyed by
`{conversation_id}:{number}` and inserted with ON CONFLICT DO NOTHING, and a conversation
row only moves forward (a summary older than the stored one is ignored), so a retried or
re-run activity never duplicates or rewinds anything.

SQLite by default, PostgreSQL when configured with a URL; both through SQLAlchemy Core.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from handoff.models import (
    Agent,
    ConversationSummary,
    EntryKind,
    Fact,
    FactKind,
    Outcome,
    RecordBatch,
    Status,
    TranscriptEntry,
)
from handoff.stat_events import CountKey


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("customer_id", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("agent_id", sa.String(200), index=True),
    sa.Column("agent_name", sa.String(200)),
    sa.Column("outcome", sa.String(20)),
    sa.Column("closed_by_id", sa.String(200)),
    sa.Column("closed_by_name", sa.String(200)),
    sa.Column("started_at", UTCDateTime, nullable=False, index=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("waiting_since", UTCDateTime),
    sa.Column("assigned_at", UTCDateTime),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("last_fact", sa.Integer, nullable=False),
    # The live columns and the history's filters, newest first, at a million conversations.
    sa.Index("ix_conversations_status_waiting", "status", "waiting_since", "id"),
    sa.Index("ix_conversations_status_started", "status", "started_at", "id"),
    sa.Index("ix_conversations_outcome_started", "outcome", "started_at", "id"),
)

facts = sa.Table(
    "facts",
    metadata,
    sa.Column("key", sa.String(120), primary_key=True),
    sa.Column("conversation_id", sa.String(100), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("entry_seq", sa.Integer),
    sa.Column("entry_kind", sa.String(20)),
    sa.Column("author", sa.String(200)),
    sa.Column("text", sa.Text),
    sa.Column("agent_id", sa.String(200), index=True),
    sa.Column("agent_name", sa.String(200)),
    sa.Column("outcome", sa.String(20)),
    sa.Index("ix_facts_conversation", "conversation_id", "number"),
    # The latest name of an agent (statistics).
    sa.Index("ix_facts_agent_at", "agent_id", "at"),
    # A conversation's facts of one kind (the live columns' SLA breaches).
    sa.Index("ix_facts_kind_conversation", "kind", "conversation_id"),
)

idempotent_requests = sa.Table(
    "idempotent_requests",
    metadata,
    # What the API made of a client's Idempotency-Key (an HMAC: never the key itself).
    sa.Column("request_id", sa.String(64), primary_key=True),
    # An HMAC of the first request's body under the same secret: a retry must match it.
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

# Issue 9. A customer's satisfaction rating of a conversation an agent closed: one per conversation.
ratings = sa.Table(
    "ratings",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    # The agent who closed the conversation (the rating is theirs in the statistics).
    sa.Column("agent_id", sa.String(200), index=True),
    sa.Column("agent_name", sa.String(200)),
    # An agent's latest name (statistics).
    sa.Index("ix_ratings_agent_at", "agent_id", "at"),
)

# Issue 9. A conversation a customer started by writing to a closed one, and that closed one.
conversation_links = sa.Table(
    "conversation_links",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("previous_conversation_id", sa.String(100), nullable=False, index=True),
)


@dataclass(frozen=True)
class Rating:
    conversation_id: str
    score: int
    comment: str | None
    at: datetime
    agent: Agent | None


# AI assist (handoff/assist.py): what was suggested to whom, and what the agent made of it.
suggestions_shown = sa.Table(
    "suggestions_shown",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("suggestion_id", sa.String(32), primary_key=True),
    sa.Column("agent_id", sa.String(200), primary_key=True),
    sa.Column("source_kind", sa.String(20), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("first_shown_at", UTCDateTime, nullable=False, index=True),
)

suggestion_feedback = sa.Table(
    "suggestion_feedback",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("suggestion_id", sa.String(32), primary_key=True),
    sa.Column("agent_id", sa.String(200), primary_key=True),
    sa.Column("action", sa.String(20), nullable=False),  # used, edited, dismissed
    sa.Column("implicit", sa.Boolean, nullable=False),  # a reply close to it, without a click
    sa.Column("at", UTCDateTime, nullable=False, index=True),
)

# AI assist (handoff/reply_index.py): the agents' replies in conversations closed as resolved, each
# with the customer messages before it, searched by the database's own full-text search. Written
# in the transaction that records the close (`Store._write`); the search structures metadata cannot
# describe (an FTS5 table and its triggers on SQLite, a tsvector column and its GIN index on
# PostgreSQL) are made by migration 0006 and named in `handoff.schema.SEARCH_OBJECTS`.
past_replies = sa.Table(
    "past_replies",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(120), nullable=False, unique=True),  # the reply's fact key: written once
    sa.Column("conversation_id", sa.String(100), nullable=False, index=True),
    sa.Column("context", sa.Text, nullable=False),  # the customer messages before the reply (what is searched)
    sa.Column("text", sa.Text, nullable=False),  # the agent's reply (what is suggested)
    sa.Column("at", UTCDateTime, nullable=False),
)

# Conversations a team keeps out of the past-reply index (`POST /conversations/{id}/exclude-from-suggestions`).
assist_exclusions = sa.Table(
    "assist_exclusions",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("excluded_by", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

# --- Push (handoff/push.py, handoff/webhooks.py): the changes the live streams and webhooks carry.

events = sa.Table(
    "events",
    metadata,
    # One sequence over every conversation: the SSE `id` and the webhook event id. Ids are handed
    # out in commit order (see `Store._publish`), so "everything after N" never skips a late commit.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # see handoff.push.EventKind
    sa.Column("audience", sa.String(20), nullable=False),  # "customer" (and agents) or "agents" only
    sa.Column("payload", sa.Text, nullable=False),  # JSON
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_events_conversation", "conversation_id", "id"),
    sqlite_autoincrement=True,  # never reuse an id, even of a deleted last row
)

webhook_progress = sa.Table(
    "webhook_progress",
    metadata,
    # Per subscription (its name in the webhooks file): the last event id it acknowledged.
    sa.Column("subscription", sa.String(200), primary_key=True),
    sa.Column("last_event_id", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

leases = sa.Table(
    "leases",
    metadata,
    # Work only one process may do at a time (webhook delivery): whoever holds an unexpired lease.
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(100), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# --- The statistics index (handoff/stat_events.py): each conversation's facts as the rows the
# statistics add up, rewritten with the conversation's facts in `Store._write`.


def _partial(condition: str) -> dict[str, Any]:
    """The keyword arguments of a partial index, on both databases."""
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


stat_events = sa.Table(
    "stat_events",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(30), nullable=False),
    # When it counts (for an interval that may be open: when it started), and that UTC day.
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("agent_id", sa.String(200)),
    sa.Column("value", sa.Float),  # a completed duration, in seconds
    sa.Column("end_at", UTCDateTime),  # an interval's end (None: still open)
    sa.Column("past_day", sa.Boolean),  # the interval was unfinished at the end of its start day
    sa.Index("ix_stat_events_at", "at"),
    # The completed durations in value order (migration 0008): an exact percentile of a long
    # window is the value at a rank, read by skipping that many index entries, with no sort.
    *(
        sa.Index(f"ix_stat_events_{name}", *columns, **_partial("value IS NOT NULL"))
        for name, columns in [
            ("kind_value", ("kind", "value", "at")),
            ("kind_day_value", ("kind", "day", "value", "at")),
            ("kind_agent_value", ("kind", "agent_id", "value", "at")),
        ]
    ),
    # Intervals by their end (migration 0008): those of a window's whole days that ended on its
    # last, partial day.
    sa.Index("ix_stat_events_end_at", "end_at", **_partial("end_at IS NOT NULL")),
)

stat_counts = sa.Table(
    "stat_counts",
    metadata,
    # The statistics index counted per day (handoff/stat_events.py, `count_keys`), maintained by
    # `Store._write` with the index rows: how many rows of each kind, agent and, for intervals,
    # the day they ended. Windows add these up for their whole days instead of every row.
    sa.Column("scope", sa.String(1), primary_key=True),  # per day / per day and agent / per month and agent
    sa.Column("day", sa.Date, primary_key=True),  # the day, or the month's first
    sa.Column("kind", sa.String(30), primary_key=True),
    sa.Column("agent_id", sa.String(200), primary_key=True),
    sa.Column("end_day", sa.Date, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)

conversation_agents = sa.Table(
    "conversation_agents",
    metadata,
    # Who took over (or was transferred) each conversation: the agent filter of /stats. With the
    # times of the conversation's first and last index rows, so that an agent's window reads
    # only the conversations active in it.
    sa.Column("agent_id", sa.String(200), primary_key=True),
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("first_at", UTCDateTime, nullable=False),
    sa.Column("last_at", UTCDateTime, nullable=False),
    # An agent's conversations active in a window, read from the index alone (migration 0008).
    sa.Index("ix_conversation_agents_agent_span", "agent_id", "last_at", "first_at", "conversation_id"),
    sa.Index("ix_conversation_agents_conversation", "conversation_id"),
)

# --- Agents at work (issue 10; handoff/presence.py): status, slots being taken, assignments.

agent_presence = sa.Table(
    "agent_presence",
    metadata,
    # An agent's status (online, away, offline; no row: offline), kept across restarts. The row is
    # also what a take-over locks while it counts the agent's conversations (see handoff/presence.py).
    sa.Column("agent_id", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("changed_at", UTCDateTime),  # None: the status was never set (a row made to be locked)
    # The agent's last assignment (automatic assignment's tie-break: idle longest first).
    sa.Column("last_assigned_at", UTCDateTime),
)

agent_status_log = sa.Table(
    "agent_status_log",
    metadata,
    # Every status change: the statistics' time online and occupancy.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("agent_id", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_agent_status_log_agent_at", "agent_id", "at"),
)

agent_slots = sa.Table(
    "agent_slots",
    metadata,
    # A take-over (or transfer) in flight: a slot of the agent's capacity reserved before the
    # update is sent, removed once its outcome is known (and recorded). Keyed by the update id.
    sa.Column("update_id", sa.String(64), primary_key=True),
    sa.Column("agent_id", sa.String(200), nullable=False, index=True),
    sa.Column("conversation_id", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("automatic", sa.Boolean, nullable=False),
)

assignments = sa.Table(
    "assignments",
    metadata,
    # Every take-over or transfer that went through, automatic or manual (statistics), by update id.
    sa.Column("update_id", sa.String(64), primary_key=True),
    sa.Column("agent_id", sa.String(200), nullable=False),
    sa.Column("conversation_id", sa.String(100), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("automatic", sa.Boolean, nullable=False),
    sa.Index("ix_assignments_agent_at", "agent_id", "at"),
)

PUSH_CHANNEL = "handoff_events"
"""The PostgreSQL NOTIFY channel a committed event wakes the API processes' listeners on."""

_EVENTS_LOCK = 0x48616E646F6666  # "Handoff": the advisory lock that orders event ids by commit
_STATS_LOCK_SPACE = 0x48535458  # "HSTX": the two-key advisory locks of one conversation's statistics rows


def _fact_row(fact: Fact) -> dict[str, Any]:
    entry = fact.entry
    return {
        "key": fact.key,
        "conversation_id": fact.conversation_id,
        "number": fact.number,
        "kind": fact.kind.value,
        "at": fact.at,
        "entry_seq": entry.seq if entry else None,
        "entry_kind": entry.kind.value if entry else None,
        "author": entry.author if entry else None,
        "text": entry.text if entry else None,
        "agent_id": fact.agent.id if fact.agent else None,
        "agent_name": fact.agent.name if fact.agent else None,
        "outcome": fact.outcome.value if fact.outcome else None,
    }


def _stat_columns(fact: Fact) -> dict[str, Any]:
    """The columns of a fact the statistics index reads (see `handoff.stat_events.fact_row`)."""
    return {
        "number": fact.number,
        "kind": fact.kind.value,
        "at": fact.at,
        "entry_kind": fact.entry.kind.value if fact.entry else None,
        "agent_id": fact.agent.id if fact.agent else None,
        "outcome": fact.outcome.value if fact.outcome else None,
    }


def _summary_row(summary: ConversationSummary) -> dict[str, Any]:
    return {
        "id": summary.conversation_id,
        "customer_id": summary.customer_id,
        "status": summary.status.value,
        "agent_id": summary.agent.id if summary.agent else None,
        "agent_name": summary.agent.name if summary.agent else None,
        "outcome": summary.outcome.value if summary.outcome else None,
        "closed_by_id": summary.closed_by.id if summary.closed_by else None,
        "closed_by_name": summary.closed_by.name if summary.closed_by else None,
        "started_at": summary.started_at,
        "updated_at": summary.updated_at,
        "waiting_since": summary.waiting_since,
        "assigned_at": summary.assigned_at,
        "closed_at": summary.closed_at,
        "last_fact": summary.last_fact,
    }


def _agent(agent_id: str | None, name: str | None) -> Agent | None:
    return Agent(id=agent_id, name=name or agent_id) if agent_id else None


def summary_from_row(row: sa.Row[Any]) -> ConversationSummary:
    m = row._mapping
    return ConversationSummary(
        conversation_id=m["id"],
        customer_id=m["customer_id"],
        status=Status(m["status"]),
        agent=_agent(m["agent_id"], m["agent_name"]),
        outcome=Outcome(m["outcome"]) if m["outcome"] else None,
        closed_by=_agent(m["closed_by_id"], m["closed_by_name"]),
        started_at=m["started_at"],
        updated_at=m["updated_at"],
        waiting_since=m["waiting_since"],
        assigned_at=m["assigned_at"],
        closed_at=m["closed_at"],
        last_fact=m["last_fact"],
    )


def fact_from_row(row: sa.Row[Any]) -> Fact:
    m = row._mapping
    entry = None
    if m["entry_seq"] is not None:
        entry = TranscriptEntry(
            seq=m["entry_seq"], at=m["at"], kind=EntryKind(m["entry_kind"]), author=m["author"], text=m["text"]
        )
    return Fact(
        conversation_id=m["conversation_id"],
        number=m["number"],
        kind=FactKind(m["kind"]),
        at=m["at"],
        entry=entry,
        agent=_agent(m["agent_id"], m["agent_name"]),
        outcome=Outcome(m["outcome"]) if m["outcome"] else None,
    )


def create_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL and a busy timeout for concurrent writers.

    `hide_parameters`: a database error must not print message texts into the worker's logs.
    """
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            # Transcripts are personal data: the file is the owner's only, and so are its
            # -wal and -shm files, which SQLite creates with the database file's mode.
            Path(database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
        engine = sa.create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(
        url, pool_pre_ping=True, hide_parameters=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW
    )


POOL_SIZE = 5
"""Connections a process keeps open to a server database (SQLAlchemy's default, made explicit)."""
POOL_OVERFLOW = 10
"""Extra connections opened under a burst of concurrent reads and closed when they are returned:
a process never holds more than POOL_SIZE + POOL_OVERFLOW, however many streams it serves."""


class Store:
    """Reads and idempotent writes over one database."""

    def __init__(self, url_or_engine: str | Engine) -> None:
        self.engine = create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        # The schema is brought to the latest migration by whoever opens the database first.
        from handoff.schema import upgrade

        upgrade(self.engine)
        self._statements: dict[object, Any] = {}

    def close(self) -> None:
        self.engine.dispose()

    def _insert(self, table: sa.Table) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            return sqlite.insert(table)
        if dialect == "postgresql":
            return postgresql.insert(table)
        raise NotImplementedError(f"unsupported database dialect {dialect!r}")

    def _statement(self, key: object, build: Callable[[], Any]) -> Any:
        """A write statement built once per store: every fact a worker or the API records runs the
        same few statements, and building one (and its cache key) each time was a sizeable share
        of the worker's CPU (docs/benchmarks.md, "Worker CPU"). Values go in as parameters."""
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = build()
        return statement

    def _facts_insert(self) -> Any:
        def build() -> Any:
            return self._insert(facts).on_conflict_do_nothing(index_elements=["key"]).returning(facts.c.key)

        return self._statement("facts_insert", build)

    def _conversation_upsert(self, columns: tuple[str, ...]) -> Any:
        """The conversation's row, moving only forward (`last_fact`)."""

        def build() -> Any:
            stmt = self._insert(conversations)
            return stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={k: stmt.excluded[k] for k in columns if k != "id"},
                where=conversations.c.last_fact < stmt.excluded.last_fact,
            )

        return self._statement(("conversation_upsert", columns), build)

    # --- Writes.

    def claim_request(self, request_id: str, digest: str, at: datetime) -> bool:
        """Remember the first request made under `request_id`; whether `digest` is that first
        request's (the first call, or a faithful retry), False when another request holds it.

        One statement decides between concurrent first calls: the primary key lets only one in.
        """
        with self.engine.begin() as conn:
            stmt = self._insert(idempotent_requests).on_conflict_do_nothing(index_elements=["request_id"])
            conn.execute(stmt.values(request_id=request_id, digest=digest, at=at))
            first = conn.execute(
                sa.select(idempotent_requests.c.digest).where(idempotent_requests.c.request_id == request_id)
            ).scalar_one()
        return bool(first == digest)

    def record(self, batch: RecordBatch) -> int:
        """Write a batch of facts and the latest summary in one transaction.

        Returns how many facts were new (0 when the batch was already recorded).
        """
        return self._write(batch.facts, batch.summary)

    def record_entries(self, entries: list[Fact]) -> int:
        """Write facts without touching the conversation's row (a bot answer, written by the
        activity that produced it); insert-if-absent by key like every write."""
        return self._write(entries, None)

    def record_with_entries(self, batch: RecordBatch | None, entries: list[Fact]) -> int:
        """`record(batch)` and then `record_entries(entries)`, in one transaction: a bot answer's
        riding facts and the answer itself (activities/conversation.py), one write, not two."""
        if batch is None:
            return self._write(entries, None)
        return self._write([*batch.facts, *entries], batch.summary)

    def _write(self, new_facts: list[Fact], summary: ConversationSummary | None) -> int:
        """The one write path: facts inserted by key (a copy already there is a no-op), then the
        conversation's row, which only moves forward. Returns how many facts were new."""
        # A fact's key is a digest of its cause (`Fact.key`): computed once here, not per use.
        rows = [_fact_row(f) for f in new_facts]
        with self.engine.begin() as conn:
            inserted = 0
            inserted_keys: Sequence[str] = []
            if new_facts:
                result = conn.execute(self._facts_insert(), rows)
                inserted_keys = result.scalars().all()
                inserted = len(inserted_keys)
            new: list[Fact] = []
            if inserted:
                new_keys = set(inserted_keys)
                new = [f for f, row in zip(new_facts, rows, strict=True) if row["key"] in new_keys]
                self._index_stats(conn, new)
            if summary is not None:
                row = _summary_row(summary)
                conn.execute(self._conversation_upsert(tuple(row)), row)
            if inserted:
                closed = [f for f in new if f.kind is FactKind.CLOSED]
                if any(f.outcome is Outcome.RESOLVED for f in closed):
                    # The past-reply index grows with the close that makes a conversation resolved,
                    # in its transaction: never a conversation closed without its replies indexed.
                    from handoff.reply_index import index_conversation

                    index_conversation(conn, closed[0].conversation_id)
                # Events for the live streams and webhooks, in the same transaction: only for the
                # facts this write inserted, so a retry or the other writer's copy publishes nothing.
                self._publish(conn, new_facts[0].conversation_id, new)
            return inserted

    def _index_stats(self, conn: sa.Connection, inserted: list[Fact]) -> None:
        """Bring the statistics rows of the conversations of these just-inserted facts up to date
        with their facts as now recorded (handoff/stat_events.py), in the same transaction, and
        their counts per day (`stat_counts`) by the difference.

        Facts that change nothing else (notes, customer and bot messages) add their rows; any
        other brings the conversation's rows up to date with all its facts (`_rewrite_stats`,
        which writes only the rows that changed). On PostgreSQL a per-conversation
        advisory lock, taken after the facts are inserted and held to the commit, puts concurrent
        writers of one conversation in turn; each statement then reads the facts the previous
        writer committed, and the rows it deletes are those the previous writer left, so the
        counts move by exactly the difference. SQLite has a single writer."""
        from handoff.stat_events import count_deltas, count_keys, db_row, db_rows, fact_row, standalone_rows

        by_conversation: dict[str, list[Fact]] = {}
        for fact in inserted:
            by_conversation.setdefault(fact.conversation_id, []).append(fact)
        removed: list[CountKey] = []
        added: list[CountKey] = []
        for conversation_id, new in sorted(by_conversation.items()):
            if self.engine.dialect.name == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:id))"),
                    {"space": _STATS_LOCK_SPACE, "id": conversation_id},
                )
            appended = [standalone_rows(fact_row(**_stat_columns(f))) for f in new]
            if all(rows is not None for rows in appended):
                rows = [r for rows in appended if rows for r in rows]
                self._append_stats(conn, conversation_id, rows, db_row)
                added.extend(k for r in rows for k in count_keys(r.kind, r.at, r.agent_id, r.end_at))
                continue
            self._rewrite_stats(conn, conversation_id, db_rows, fact_row, removed, added)
        deltas = count_deltas(removed, added)
        if deltas:
            conn.execute(self._statement("counts_upsert", self._counts_upsert), deltas)

    def _counts_upsert(self) -> Any:
        stmt = self._insert(stat_counts)
        return stmt.on_conflict_do_update(
            index_elements=["scope", "day", "kind", "agent_id", "end_day"],
            set_={"n": stat_counts.c.n + stmt.excluded.n},
        )

    def _rewrite_stats(
        self,
        conn: sa.Connection,
        conversation_id: str,
        db_rows: Any,
        fact_row: Any,
        removed: list[CountKey],
        added: list[CountKey],
    ) -> None:
        """Bring the conversation's statistics rows to those of all its facts, adding the
        `stat_counts` keys of the rows it deleted to `removed` and of those it wrote to `added`.

        The rows are derived from all the facts again (a transition can change rows before it:
        an open wait gets its end), but only the difference is written: the rows already there
        that the facts still give stay (with their `seq`), those they no longer give are
        deleted, the new ones inserted after the last `seq`. A transition in a conversation of
        thousands of messages then writes a few rows, not thousands; the rows and counts that
        result are exactly those of a full rewrite (tests/test_stats_scale.py compares them)."""
        from handoff.stat_events import count_keys

        f, e, a = facts.c, stat_events.c, conversation_agents.c

        def recorded() -> Any:
            return sa.select(f.number, f.kind, f.at, f.entry_kind, f.agent_id, f.outcome).where(
                f.conversation_id == sa.bindparam("p_conversation"), f.kind != FactKind.NOTE.value
            )

        def present() -> Any:
            return sa.select(e.seq, e.kind, e.at, e.agent_id, e.value, e.end_at, e.past_day).where(
                e.conversation_id == sa.bindparam("p_conversation")
            )

        def delete_events() -> Any:
            return sa.delete(stat_events).where(
                e.conversation_id == sa.bindparam("p_conversation"), e.seq == sa.bindparam("p_seq")
            )

        def present_agents() -> Any:
            return sa.select(a.agent_id, a.first_at, a.last_at).where(
                a.conversation_id == sa.bindparam("p_conversation")
            )

        def delete_agents() -> Any:
            return sa.delete(conversation_agents).where(a.conversation_id == sa.bindparam("p_conversation"))

        which = {"p_conversation": conversation_id}
        rows = conn.execute(self._statement("stats_facts", recorded), which)
        new_events, new_agents = db_rows(conversation_id, [fact_row(*r) for r in rows])

        # Match the rows wanted against those present, as multisets of their columns (`day`
        # follows from `at`; `seq` is only the row's place).
        stale: dict[tuple[Any, ...], list[int]] = {}
        last_seq = -1
        for present_row in conn.execute(self._statement("stats_present", present), which):
            seq, *columns = present_row
            stale.setdefault(tuple(columns), []).append(seq)
            last_seq = max(last_seq, seq)
        inserts: list[dict[str, Any]] = []
        for row in new_events:
            seqs = stale.get((row["kind"], row["at"], row["agent_id"], row["value"], row["end_at"], row["past_day"]))
            if seqs:
                seqs.pop()  # already there: it stays
            else:
                last_seq += 1
                inserts.append({**row, "seq": last_seq})
        deletes: list[dict[str, Any]] = []
        for (kind, at, agent_id, _value, end_at, _past_day), seqs in stale.items():
            deletes.extend({"p_conversation": conversation_id, "p_seq": seq} for seq in seqs)
            removed.extend(k for _ in seqs for k in count_keys(kind, at, agent_id, end_at))
        if deletes:
            conn.execute(self._statement("stats_delete", delete_events), deletes)
        if inserts:
            conn.execute(self._statement("stats_insert", lambda: sa.insert(stat_events)), inserts)
            added.extend(k for r in inserts for k in count_keys(r["kind"], r["at"], r["agent_id"], r["end_at"]))

        agents = conn.execute(self._statement("agents_present", present_agents), which).all()
        wanted = {(r["agent_id"], r["first_at"], r["last_at"]) for r in new_agents}
        if {tuple(r) for r in agents} != wanted:
            conn.execute(self._statement("agents_delete", delete_agents), which)
            if new_agents:
                conn.execute(self._statement("agents_insert", lambda: sa.insert(conversation_agents)), new_agents)

    def _append_stats(self, conn: sa.Connection, conversation_id: str, rows: list[Any], db_row: Any) -> None:
        """Add rows that change no other row of the conversation (`standalone_rows`)."""
        if not rows:
            return
        e, a = stat_events.c, conversation_agents.c

        def last_seq() -> Any:
            return sa.select(sa.func.max(e.seq)).where(e.conversation_id == sa.bindparam("p_conversation"))

        def widen() -> Any:
            earliest = sa.bindparam("p_earliest", type_=a.first_at.type)
            latest = sa.bindparam("p_latest", type_=a.last_at.type)
            return (
                sa.update(conversation_agents)
                .where(a.conversation_id == sa.bindparam("p_conversation"))
                .values(
                    first_at=sa.case((a.first_at > earliest, earliest), else_=a.first_at),
                    last_at=sa.case((a.last_at < latest, latest), else_=a.last_at),
                )
            )

        last = conn.execute(self._statement("stats_last_seq", last_seq), {"p_conversation": conversation_id}).scalar()
        start = -1 if last is None else int(last)
        inserted = [db_row(conversation_id, start + 1 + i, r) for i, r in enumerate(rows)]
        conn.execute(self._statement("stats_insert", lambda: sa.insert(stat_events)), inserted)
        conn.execute(
            self._statement("stats_widen", widen),
            {
                "p_conversation": conversation_id,
                "p_earliest": min(r.at for r in rows),
                "p_latest": max(r.at for r in rows),
            },
        )

    def add_rating(self, rating: Rating) -> bool:
        """Keep the conversation's rating; False if it already has one (nothing changes)."""
        with self.engine.begin() as conn:
            stmt = self._insert(ratings).on_conflict_do_nothing(index_elements=["conversation_id"])
            result = conn.execute(
                stmt.returning(ratings.c.conversation_id),
                {
                    "conversation_id": rating.conversation_id,
                    "score": rating.score,
                    "comment": rating.comment,
                    "at": rating.at,
                    "agent_id": rating.agent.id if rating.agent else None,
                    "agent_name": rating.agent.name if rating.agent else None,
                },
            )
            return len(result.all()) == 1

    def link(self, conversation_id: str, previous_conversation_id: str) -> None:
        """Remember that `conversation_id` reopens `previous_conversation_id` (idempotent)."""
        with self.engine.begin() as conn:
            stmt = self._insert(conversation_links).on_conflict_do_nothing(index_elements=["conversation_id"])
            conn.execute(
                stmt.values(conversation_id=conversation_id, previous_conversation_id=previous_conversation_id)
            )

    def _publish(self, conn: sa.Connection, conversation_id: str, new_facts: list[Fact]) -> None:
        """Append the events `new_facts` cause, in the transaction that records them.

        Call it from every write path with the facts that write actually inserted (never a
        retry's duplicates): the events then exist exactly when their facts do, once each.
        On PostgreSQL a transaction-scoped advisory lock makes ids follow commit order (a
        reader that has seen id N never sees a smaller id appear later), and NOTIFY wakes the
        API processes' listeners at commit; SQLite has a single writer, so both hold already.
        """
        from handoff.push import events_for, reads_status  # the event shapes live with the push code

        def status() -> Any:
            return sa.select(conversations.c.status).where(conversations.c.id == sa.bindparam("p_conversation"))

        current = None
        if reads_status(new_facts):
            current = conn.execute(
                self._statement("status", status), {"p_conversation": conversation_id}
            ).scalar_one_or_none()
        rows = events_for(conversation_id, new_facts, current)
        if not rows:
            return
        if self.engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _EVENTS_LOCK})
        conn.execute(self._statement("events_insert", lambda: sa.insert(events)), rows)
        if self.engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": PUSH_CHANNEL})

    # --- Reads.

    def rating(self, conversation_id: str) -> Rating | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(ratings).where(ratings.c.conversation_id == conversation_id)).first()
        if row is None:
            return None
        m = row._mapping
        return Rating(m["conversation_id"], m["score"], m["comment"], m["at"], _agent(m["agent_id"], m["agent_name"]))

    def previous_conversation(self, conversation_id: str) -> str | None:
        """The closed conversation this one reopens, if any."""
        query = sa.select(conversation_links.c.previous_conversation_id).where(
            conversation_links.c.conversation_id == conversation_id
        )
        with self.engine.connect() as conn:
            previous = conn.execute(query).scalar_one_or_none()
        return None if previous is None else str(previous)

    def overdue(self, summaries: list[ConversationSummary], kind: FactKind) -> set[str]:
        """Of these conversations, those with a `kind` SLA breach in their current stretch
        (since they started waiting, or since the holder took them)."""
        since = {
            s.conversation_id: s.waiting_since if kind is FactKind.WAITING_SLA_BREACHED else s.assigned_at
            for s in summaries
        }
        if not since:
            return set()
        ids = list(since)
        if self.engine.dialect.name == "postgresql":
            # One array parameter: a thousand placeholders cost more to send than the query takes.
            among = facts.c.conversation_id == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.String)))
        else:
            among = facts.c.conversation_id.in_(ids)
        query = sa.select(facts.c.conversation_id, facts.c.at).where(facts.c.kind == kind.value, among)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {cid for cid, at in rows if (start := since.get(cid)) is not None and at >= start}

    def summary(self, conversation_id: str) -> ConversationSummary | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(conversations).where(conversations.c.id == conversation_id)).first()
            return summary_from_row(row) if row else None

    def conversation(self, conversation_id: str) -> tuple[ConversationSummary, list[TranscriptEntry]] | None:
        """A conversation's row and its recorded transcript, read together (the row first, so the
        summary never runs ahead of the entries it comes with); None if it has no row yet."""
        with self.engine.connect() as conn, conn.begin():
            row = conn.execute(sa.select(conversations).where(conversations.c.id == conversation_id)).first()
            if row is None:
                return None
            rows = conn.execute(
                sa.select(facts)
                .where(facts.c.conversation_id == conversation_id, facts.c.entry_seq.is_not(None))
                .order_by(facts.c.entry_seq)
            )
            return summary_from_row(row), [entry for r in rows if (entry := fact_from_row(r).entry) is not None]

    def facts(self, conversation_id: str) -> list[Fact]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(facts).where(facts.c.conversation_id == conversation_id).order_by(facts.c.number)
            )
            return [fact_from_row(r) for r in rows]

    def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The stored transcript (messages and notes), in order."""
        return [f.entry for f in self.facts(conversation_id) if f.entry is not None]

    def count_facts(self, **where: str) -> int:
        """How many facts match the given column values (for checks and tests)."""
        query = sa.select(sa.func.count()).select_from(facts)
        for column, value in where.items():
            query = query.where(facts.c[column] == value)
        with self.engine.connect() as c:
            return int(c.execute(query).scalar_one())

    def conversations(
        self,
        *,
        status: Status | None = None,
        agent_id: str | None = None,
        limit: int = 100,
    ) -> list[ConversationSummary]:
        query = sa.select(conversations).order_by(conversations.c.started_at.desc()).limit(limit)
        if status is not None:
            query = query.where(conversations.c.status == status.value)
        if agent_id is not None:
            query = query.where(conversations.c.agent_id == agent_id)
        with self.engine.connect() as conn:
            return [summary_from_row(r) for r in conn.execute(query)]

    # --- Reads for the agent UI: the live columns and the history (Conversations tab).

    def waiting(self, *, limit: int = 1000) -> list[ConversationSummary]:
        """The Waiting column: conversations waiting for a person, longest-waiting first."""
        query = (
            sa.select(conversations)
            .where(conversations.c.status == Status.WAITING.value)
            .order_by(conversations.c.waiting_since, conversations.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [summary_from_row(r) for r in conn.execute(query)]

    def assigned_to(self, agent_id: str, *, limit: int = 1000) -> list[ConversationSummary]:
        """An agent's My conversations: the ones they hold now, longest-held first."""
        query = (
            sa.select(conversations)
            .where(conversations.c.status == Status.HUMAN.value, conversations.c.agent_id == agent_id)
            .order_by(conversations.c.assigned_at, conversations.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [summary_from_row(r) for r in conn.execute(query)]

    def history(
        self,
        *,
        status: Status | None = None,
        outcome: Outcome | None = None,
        agent_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> HistoryPage:
        """Conversations newest first (by start), one page at a time.

        `agent_id` keeps the conversations that agent took over at some point (the holder is
        cleared on close, so the current holder alone would lose them); `since` (inclusive)
        and `until` (exclusive) bound the start time. Pages are keyset-paginated on
        (started_at, id): `next_cursor` continues after the last row, stable while new
        conversations arrive. Raises `InvalidCursor` for a cursor this store did not make.
        """
        c = conversations.c
        source: sa.FromClause = conversations
        if agent_id is not None:
            # Who took over (or, issue 9, was transferred) each conversation: the statistics
            # index's `conversation_agents`, written with the facts. Read first (a materialized CTE
            # on PostgreSQL), so that the page starts from the agent's few thousand conversations:
            # left to itself, the planner walks everyone's newest first (0.4 s at a million).
            a = conversation_agents.c
            mine = sa.select(a.conversation_id).where(a.agent_id == agent_id).cte("mine")
            if self.engine.dialect.name == "postgresql":
                mine = mine.prefix_with("MATERIALIZED")
            source = conversations.join(mine, mine.c.conversation_id == c.id)
        query = sa.select(conversations).select_from(source).order_by(c.started_at.desc(), c.id.desc()).limit(limit + 1)
        if status is not None:
            query = query.where(c.status == status.value)
        if outcome is not None:
            query = query.where(c.outcome == outcome.value)
        if since is not None:
            query = query.where(c.started_at >= since)
        if until is not None:
            query = query.where(c.started_at < until)
        if cursor is not None:
            after_started, after_id = _decode_cursor(cursor)
            query = query.where(
                sa.or_(c.started_at < after_started, sa.and_(c.started_at == after_started, c.id < after_id))
            )
        with self.engine.connect() as conn:
            rows = [summary_from_row(r) for r in conn.execute(query)]
        page = rows[:limit]
        more = len(rows) > limit
        return HistoryPage(conversations=page, next_cursor=_encode_cursor(page[-1]) if more and page else None)

    # --- Reads and writes for push (handoff/push.py, handoff/webhooks.py).

    def last_event_id(self) -> int:
        """The newest event's id (0 when there is none): where a new listener starts."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one())

    def events_after(
        self,
        after: int,
        *,
        conversation_ids: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        audience: str | None = None,
        limit: int = 500,
    ) -> list[StoredEvent]:
        """Events with an id above `after`, oldest first, optionally of some conversations,
        kinds or one audience; at most `limit` (ask again from the last id for more)."""
        query = sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(limit)
        if conversation_ids is not None:
            query = query.where(events.c.conversation_id.in_(list(conversation_ids)))
        if kinds is not None:
            query = query.where(events.c.kind.in_(list(kinds)))
        if audience is not None:
            query = query.where(events.c.audience == audience)
        with self.engine.connect() as conn:
            return [
                StoredEvent(
                    id=int(r.id),
                    conversation_id=r.conversation_id,
                    kind=r.kind,
                    audience=r.audience,
                    payload=json.loads(r.payload),
                    created_at=r.created_at,
                )
                for r in conn.execute(query)
            ]

    def webhook_progress(self, subscription: str, *, start_at: int) -> int:
        """The last event id `subscription` acknowledged; a new subscription starts at `start_at`."""
        with self.engine.begin() as conn:
            stmt = self._insert(webhook_progress).on_conflict_do_nothing(index_elements=["subscription"])
            conn.execute(stmt.values(subscription=subscription, last_event_id=start_at, updated_at=datetime.now(UTC)))
            return int(
                conn.execute(
                    sa.select(webhook_progress.c.last_event_id).where(webhook_progress.c.subscription == subscription)
                ).scalar_one()
            )

    def acknowledge_webhook(self, subscription: str, event_id: int) -> None:
        """`subscription`'s receiver accepted every event up to `event_id` (progress only moves forward)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(webhook_progress)
                .where(webhook_progress.c.subscription == subscription, webhook_progress.c.last_event_id < event_id)
                .values(last_event_id=event_id, updated_at=datetime.now(UTC))
            )

    def take_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease `name` for `holder` for `seconds`; False while another holds it."""
        now = datetime.now(UTC)
        expires = datetime.fromtimestamp(now.timestamp() + seconds, UTC)
        with self.engine.begin() as conn:
            stmt = self._insert(leases).on_conflict_do_nothing(index_elements=["name"])
            conn.execute(stmt.values(name=name, holder=holder, expires_at=expires))
            taken = conn.execute(
                sa.update(leases)
                .where(leases.c.name == name, sa.or_(leases.c.holder == holder, leases.c.expires_at < now))
                .values(holder=holder, expires_at=expires)
            )
            return bool(taken.rowcount == 1)

    def release_lease(self, name: str, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(leases).where(leases.c.name == name, leases.c.holder == holder))


@dataclass(frozen=True)
class StoredEvent:
    """One row of the events table: what SSE streams and webhooks carry (see handoff/push.py)."""

    id: int
    conversation_id: str
    kind: str
    audience: str
    payload: dict[str, Any]
    created_at: datetime


class InvalidCursor(ValueError):
    """A history cursor that is malformed or was not made by `Store.history`."""


@dataclass(frozen=True)
class HistoryPage:
    conversations: list[ConversationSummary]
    # Pass back to `history` for the next page; None on the last page.
    next_cursor: str | None


def _encode_cursor(last: ConversationSummary) -> str:
    raw = json.dumps({"s": last.started_at.isoformat(), "i": last.conversation_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        started = datetime.fromisoformat(raw["s"])
        conversation_id = raw["i"]
        if started.tzinfo is None or not isinstance(conversation_id, str):
            raise ValueError("bad cursor fields")
        return started, conversation_id
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError) as e:
        raise InvalidCursor(f"invalid cursor {cursor[:100]!r}: pass back a next_cursor from a previous page") from e


def all_facts(store: Store, kinds: Iterable[FactKind] | None = None) -> list[Fact]:
    """Every fact, optionally of the given kinds, in time order (for statistics)."""
    query = sa.select(facts).order_by(facts.c.at, facts.c.conversation_id, facts.c.number)
    if kinds is not None:
        query = query.where(facts.c.kind.in_([k.value for k in kinds]))
    with store.engine.connect() as conn:
        return [fact_from_row(r) for r in conn.execute(query)]
