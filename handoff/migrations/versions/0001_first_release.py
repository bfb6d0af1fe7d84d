"""The schema of the first release (written out, not derived from today's models, so that it
stays what that release created: a database it made is stamped with this revision).

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("agent_name", sa.String(200)),
        sa.Column("outcome", sa.String(20)),
        sa.Column("closed_by_id", sa.String(200)),
        sa.Column("closed_by_name", sa.String(200)),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("waiting_since", sa.DateTime()),
        sa.Column("assigned_at", sa.DateTime()),
        sa.Column("closed_at", sa.DateTime()),
        sa.Column("last_fact", sa.Integer, nullable=False),
    )
    op.create_index("ix_conversations_status", "conversations", ["status"])
    op.create_index("ix_conversations_agent_id", "conversations", ["agent_id"])
    op.create_index("ix_conversations_started_at", "conversations", ["started_at"])
    op.create_table(
        "facts",
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("conversation_id", sa.String(100), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("entry_seq", sa.Integer),
        sa.Column("entry_kind", sa.String(20)),
        sa.Column("author", sa.String(200)),
        sa.Column("text", sa.Text),
        sa.Column("agent_id", sa.String(200)),
        sa.Column("agent_name", sa.String(200)),
        sa.Column("outcome", sa.String(20)),
    )
    op.create_index("ix_facts_at", "facts", ["at"])
    op.create_index("ix_facts_agent_id", "facts", ["agent_id"])
    op.create_index("ix_facts_conversation", "facts", ["conversation_id", "number"])
    op.create_table(
        "idempotent_requests",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("idempotent_requests")
    op.drop_table("facts")
    op.drop_table("conversations")
