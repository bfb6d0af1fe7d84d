"""Alembic migrations of the project database (see handoff/schema.py for how they run)."""
