"""Statistics that scale, all time (issue 12): `stat_counts`, the statistics index counted per
day (for everyone, and per agent) and per month and agent, by kind and day an interval ended
(handoff/stat_events.py, `count_keys`), backfilled from
the index rows already recorded; the completed durations indexed in value order (exact
percentiles of long windows by rank) and the intervals by their end; an agent's conversations
active in a window read from an index alone.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DURATION_INDEXES = {
    "ix_stat_events_kind_value": ["kind", "value", "at"],
    "ix_stat_events_kind_day_value": ["kind", "day", "value", "at"],
    "ix_stat_events_kind_agent_value": ["kind", "agent_id", "value", "at"],
}
SPAN = ("agent_id", "last_at", "first_at", "conversation_id")


def _partial(condition: str) -> dict[str, Any]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    from handoff.stat_events import backfill_counts_sql

    op.create_table(
        "stat_counts",
        sa.Column("scope", sa.String(1), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("kind", sa.String(30), primary_key=True),
        sa.Column("agent_id", sa.String(200), primary_key=True),
        sa.Column("end_day", sa.Date, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    bind = op.get_bind()
    for statement in backfill_counts_sql(bind.dialect.name):
        bind.execute(sa.text(statement))
    for name, columns in DURATION_INDEXES.items():
        op.create_index(name, "stat_events", columns, **_partial("value IS NOT NULL"))
    op.create_index("ix_stat_events_end_at", "stat_events", ["end_at"], **_partial("end_at IS NOT NULL"))
    # One agent's window reads its conversations from the index alone (no table visit).
    op.drop_index("ix_conversation_agents_agent_last", "conversation_agents")
    op.create_index("ix_conversation_agents_agent_span", "conversation_agents", [*SPAN])


def downgrade() -> None:
    op.drop_index("ix_conversation_agents_agent_span", "conversation_agents")
    op.create_index("ix_conversation_agents_agent_last", "conversation_agents", ["agent_id", "last_at"])
    op.drop_index("ix_stat_events_end_at", "stat_events")
    for name in DURATION_INDEXES:
        op.drop_index(name, "stat_events")
    op.drop_table("stat_counts")
