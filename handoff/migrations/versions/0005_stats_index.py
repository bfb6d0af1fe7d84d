"""Statistics that scale (issue 12): the statistics index (`stat_events`, `conversation_agents`,
see handoff/stat_events.py), backfilled from the recorded facts; indexes for an agent's latest
name, the live columns and the history's filters.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 5000  # conversations' rows written per insert during the backfill


def upgrade() -> None:
    op.create_table(
        "stat_events",
        sa.Column("conversation_id", sa.String(100), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("value", sa.Float),
        sa.Column("end_at", sa.DateTime()),
        sa.Column("past_day", sa.Boolean),
    )
    op.create_table(
        "conversation_agents",
        sa.Column("agent_id", sa.String(200), primary_key=True),
        sa.Column("conversation_id", sa.String(100), primary_key=True),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
    )
    _backfill(op.get_bind())
    op.create_index("ix_stat_events_at", "stat_events", ["at"])
    op.create_index("ix_conversation_agents_agent_last", "conversation_agents", ["agent_id", "last_at"])
    op.create_index("ix_conversation_agents_conversation", "conversation_agents", ["conversation_id"])
    op.create_index("ix_facts_agent_at", "facts", ["agent_id", "at"])
    op.create_index("ix_facts_kind_conversation", "facts", ["kind", "conversation_id"])
    op.create_index("ix_ratings_agent_at", "ratings", ["agent_id", "at"])
    op.create_index("ix_conversations_status_waiting", "conversations", ["status", "waiting_since", "id"])
    op.create_index("ix_conversations_status_started", "conversations", ["status", "started_at", "id"])
    op.create_index("ix_conversations_outcome_started", "conversations", ["outcome", "started_at", "id"])


def _backfill(conn: sa.Connection) -> None:
    """The index rows of every conversation already recorded, from its facts (one ordered pass).

    The rows come from the same function the store writes them with, so a migrated database and
    one written by this release hold the same rows."""
    from handoff.stat_events import db_rows, fact_row

    facts = sa.table(
        "facts",
        sa.column("conversation_id", sa.String),
        sa.column("number", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("at", sa.DateTime),
        sa.column("entry_kind", sa.String),
        sa.column("agent_id", sa.String),
        sa.column("outcome", sa.String),
    )
    stat_events = sa.table(
        "stat_events",
        sa.column("conversation_id", sa.String),
        sa.column("seq", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("at", sa.DateTime),
        sa.column("day", sa.Date),
        sa.column("agent_id", sa.String),
        sa.column("value", sa.Float),
        sa.column("end_at", sa.DateTime),
        sa.column("past_day", sa.Boolean),
    )
    conversation_agents = sa.table(
        "conversation_agents",
        sa.column("agent_id", sa.String),
        sa.column("conversation_id", sa.String),
        sa.column("first_at", sa.DateTime),
        sa.column("last_at", sa.DateTime),
    )
    query = (
        sa.select(facts)
        .where(facts.c.kind != "note")
        .order_by(facts.c.conversation_id, facts.c.number)
        .execution_options(yield_per=10_000)
    )
    events: list[dict[str, Any]] = []
    agents: list[dict[str, Any]] = []

    def flush() -> None:
        if events:
            conn.execute(sa.insert(stat_events), [_naive(e) for e in events])
            events.clear()
        if agents:
            conn.execute(sa.insert(conversation_agents), [_naive(a) for a in agents])
            agents.clear()

    def add(conversation_id: str, rows: list[Any]) -> None:
        new_events, new_agents = db_rows(conversation_id, rows)
        events.extend(new_events)
        agents.extend(new_agents)
        if len(events) >= BATCH * 10:
            flush()

    current: str | None = None
    rows: list[Any] = []
    for conversation_id, number, kind, at, entry_kind, agent_id, outcome in conn.execute(query):
        if conversation_id != current:
            if current is not None:
                add(current, rows)
            current, rows = conversation_id, []
        rows.append(fact_row(number, kind, _aware(at), entry_kind, agent_id, outcome))
    if current is not None:
        add(current, rows)
    flush()


def _aware(at: datetime) -> datetime:
    """A stored time (naive UTC, see `UTCDateTime`) as the aware UTC time the store reads."""
    return at.replace(tzinfo=UTC)


def _naive(row: dict[str, Any]) -> dict[str, Any]:
    """The store keeps naive UTC times (see `UTCDateTime`)."""
    return {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v for k, v in row.items()}


def downgrade() -> None:
    op.drop_index("ix_conversations_outcome_started", "conversations")
    op.drop_index("ix_conversations_status_started", "conversations")
    op.drop_index("ix_conversations_status_waiting", "conversations")
    op.drop_index("ix_ratings_agent_at", "ratings")
    op.drop_index("ix_facts_kind_conversation", "facts")
    op.drop_index("ix_facts_agent_at", "facts")
    op.drop_table("conversation_agents")
    op.drop_table("stat_events")
