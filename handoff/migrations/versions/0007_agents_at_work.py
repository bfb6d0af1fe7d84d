"""Agents at work (issue 10): each agent's status (kept across restarts) and its changes, the slots
take-overs in flight reserve, and every assignment (automatic or manual), for capacity, automatic
assignment and the per-agent statistics (see handoff/presence.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_presence",
        sa.Column("agent_id", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("changed_at", sa.DateTime()),
        sa.Column("last_assigned_at", sa.DateTime()),
    )
    op.create_table(
        "agent_status_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("agent_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_agent_status_log_agent_at", "agent_status_log", ["agent_id", "at"])
    op.create_table(
        "agent_slots",
        sa.Column("update_id", sa.String(64), primary_key=True),
        sa.Column("agent_id", sa.String(200), nullable=False),
        sa.Column("conversation_id", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("automatic", sa.Boolean, nullable=False),
    )
    op.create_index("ix_agent_slots_agent_id", "agent_slots", ["agent_id"])
    op.create_table(
        "assignments",
        sa.Column("update_id", sa.String(64), primary_key=True),
        sa.Column("agent_id", sa.String(200), nullable=False),
        sa.Column("conversation_id", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("automatic", sa.Boolean, nullable=False),
    )
    op.create_index("ix_assignments_agent_at", "assignments", ["agent_id", "at"])


def downgrade() -> None:
    op.drop_table("assignments")
    op.drop_table("agent_slots")
    op.drop_table("agent_status_log")
    op.drop_table("agent_presence")
