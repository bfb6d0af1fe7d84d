"""Schema migrations of the project database, with Alembic (handoff/migrations/).

Every process that opens the database brings it to the latest revision first (`Store()` calls
`upgrade`), so `handoff up` upgrades by itself and a worker or API of a new release never runs
on an old schema; `handoff db upgrade` does the same on demand (compose runs it once before the
worker and the API start). Concurrent openers take turns: on PostgreSQL an advisory lock held by
the migration's transaction, on SQLite an exclusive `flock` of a lock file beside the database.
A database made by the first release, before migrations existed, has its tables but no
`alembic_version`: it is stamped with the first revision, which is exactly what that release
created, and upgraded from there.

The revisions are written out by hand (autogenerate drafts them: `alembic revision
--autogenerate` with this folder's env.py) and `tests/test_migrations.py` checks that the latest
revision gives exactly the tables, columns and indexes of `handoff.store.metadata`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST_RELEASE = "0001"
PG_LOCK_KEY = 0x48616E646F4D47  # "HandoMG": one advisory lock for migrations, per database (not the events lock)

log = logging.getLogger("handoff.schema")

SEARCH_OBJECTS = frozenset(
    [
        # SQLite: the FTS5 table over past_replies.context and the shadow tables FTS5 keeps.
        "past_replies_fts",
        "past_replies_fts_data",
        "past_replies_fts_idx",
        "past_replies_fts_docsize",
        "past_replies_fts_config",
        # PostgreSQL: the tsvector column and its GIN index.
        "context_search",
        "ix_past_replies_context_search",
    ]
)
"""The full-text search objects of the past-reply index (migration 0006, handoff/reply_index.py),
which SQLAlchemy metadata cannot describe: comparing the migrations with the models skips them."""


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """For Alembic's comparison of the database with `handoff.store.metadata`: all but `SEARCH_OBJECTS`."""
    return name not in SEARCH_OBJECTS


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head() -> str:
    """The latest revision (the scripts are read once per process)."""
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None, "no migration scripts"
    return revision


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to `revision`; (the revision it had, the one it has now)."""
    with _exclusive(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        before = current(conn)
        if before is None and sa.inspect(conn).has_table("conversations"):
            # Made by the first release, before migrations: that schema is revision 0001.
            command.stamp(config(conn), FIRST_RELEASE)
            before = FIRST_RELEASE
        target = head() if revision == "head" else revision
        if before != target:
            log.info("upgrading the database schema from %s to %s", before or "nothing", target)
            command.upgrade(config(conn), target)
        return before, target


@contextlib.contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """One migrating process at a time on a SQLite file (PostgreSQL: see `upgrade`).

    The lock is a file of its own beside the database (`<database>.migrate-lock`), never the
    database file: SQLite's locks are POSIX locks, which a process loses on *every* descriptor
    of the file when it closes any one of them, so opening and closing the database file here
    would silently drop the locks of the process's other connections."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(f"{database}.migrate-lock")
    with open(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "r+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
