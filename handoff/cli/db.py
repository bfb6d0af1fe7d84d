"""`handoff db upgrade`: bring the project database to the latest schema (handoff/schema.py).

Every Handoff process upgrades the database it opens, so this is for ops who want it done, and
seen, before starting a new release (compose runs it once before the worker and the API)."""

from __future__ import annotations

from handoff.cli.main import console, run
from handoff.config import Settings


def upgrade() -> None:
    """Apply the schema migrations the database lacks (a first-release database included)."""
    from handoff import schema
    from handoff.store import create_engine

    async def main() -> None:
        engine = create_engine(Settings().database_url)
        try:
            before, after = schema.upgrade(engine)
        finally:
            engine.dispose()
        if before == after:
            console().print(f"The database schema is already at {after}.")
        else:
            console().print(f"Upgraded the database schema from {before or 'nothing (a new database)'} to {after}.")

    run(main)
