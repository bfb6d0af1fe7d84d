"""Satisfaction ratings, and links from a reopened conversation to the one it continues.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ratings",
        sa.Column("conversation_id", sa.String(100), primary_key=True),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("agent_name", sa.String(200)),
    )
    op.create_index("ix_ratings_at", "ratings", ["at"])
    op.create_index("ix_ratings_agent_id", "ratings", ["agent_id"])
    op.create_table(
        "conversation_links",
        sa.Column("conversation_id", sa.String(100), primary_key=True),
        sa.Column("previous_conversation_id", sa.String(100), nullable=False),
    )
    op.create_index(
        "ix_conversation_links_previous_conversation_id", "conversation_links", ["previous_conversation_id"]
    )


def downgrade() -> None:
    op.drop_table("conversation_links")
    op.drop_table("ratings")
