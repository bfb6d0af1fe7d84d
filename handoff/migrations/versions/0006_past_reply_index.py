"""AI assist: the index of past replies, searched by the database's own full-text search, and the
conversations a team keeps out of it; filled from the conversations already resolved.

SQLite: an FTS5 table over `past_replies.context` (external content: the text is stored once),
kept in step by triggers. PostgreSQL: a stored tsvector column with a GIN index. Neither can be
described by SQLAlchemy metadata: `handoff.schema.SEARCH_OBJECTS` names them so the comparison of
migrations with the models leaves them alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SQLITE = [
    "CREATE VIRTUAL TABLE past_replies_fts USING fts5(context, content='past_replies', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER past_replies_fts_insert AFTER INSERT ON past_replies BEGIN "
    "INSERT INTO past_replies_fts(rowid, context) VALUES (new.id, new.context); END",
    "CREATE TRIGGER past_replies_fts_delete AFTER DELETE ON past_replies BEGIN "
    "INSERT INTO past_replies_fts(past_replies_fts, rowid, context) VALUES ('delete', old.id, old.context); END",
]
POSTGRES = [
    "ALTER TABLE past_replies ADD COLUMN context_search tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', context)) STORED",
    "CREATE INDEX ix_past_replies_context_search ON past_replies USING gin (context_search)",
]


def upgrade() -> None:
    op.create_table(
        "past_replies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("conversation_id", sa.String(100), nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_past_replies_conversation_id", "past_replies", ["conversation_id"])
    op.create_table(
        "assist_exclusions",
        sa.Column("conversation_id", sa.String(100), primary_key=True),
        sa.Column("excluded_by", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    for statement in SQLITE if op.get_context().dialect.name == "sqlite" else POSTGRES:
        op.execute(statement)
    # The conversations resolved before this revision: indexed now, as a close indexes them from now on.
    from handoff.reply_index import backfill

    backfill(op.get_bind())


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.execute("DROP TABLE past_replies_fts")
    op.drop_table("assist_exclusions")
    op.drop_table("past_replies")
