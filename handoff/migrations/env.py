"""Alembic's environment: Handoff always hands it an open connection (handoff/schema.py), so
migrations run inside the caller's lock and transaction, the same way from `handoff db
upgrade`, from `handoff up` and from every process that opens the database."""

from __future__ import annotations

from alembic import context

from handoff.schema import include_object
from handoff.store import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters a table by copying it: `batch_alter_table` in the migrations does that.
    render_as_batch=True,
    compare_type=True,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
