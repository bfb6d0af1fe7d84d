"""AI assist: the suggestions shown to agents and their feedback.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suggestions_shown",
        sa.Column("conversation_id", sa.String(100), primary_key=True),
        sa.Column("suggestion_id", sa.String(32), primary_key=True),
        sa.Column("agent_id", sa.String(200), primary_key=True),
        sa.Column("source_kind", sa.String(20), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("first_shown_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_suggestions_shown_first_shown_at", "suggestions_shown", ["first_shown_at"])
    op.create_table(
        "suggestion_feedback",
        sa.Column("conversation_id", sa.String(100), primary_key=True),
        sa.Column("suggestion_id", sa.String(32), primary_key=True),
        sa.Column("agent_id", sa.String(200), primary_key=True),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("implicit", sa.Boolean, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_suggestion_feedback_at", "suggestion_feedback", ["at"])


def downgrade() -> None:
    op.drop_table("suggestion_feedback")
    op.drop_table("suggestions_shown")
