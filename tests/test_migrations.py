"""Schema migrations (issue 12, item 2): a database of the first release, holding data, is
upgraded to the latest schema with nothing lost; the latest revision is exactly the models;
openers racing on a new database all end up on it; `handoff db upgrade` says what it did."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from handoff import reply_index, schema
from handoff.cli import app
from handoff.models import EntryKind, Status
from handoff.store import Store, metadata
from tests.conftest import BACKENDS, POSTGRES_URL


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's own: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'handoff.db'}"
        return
    name = f"handoff_migration_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    url = sa.engine.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={name}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


def first_release_database(url: str) -> sa.Engine:
    """What the first release left: its tables (revision 0001) holding a closed conversation,
    and no `alembic_version`, as that release had no migrations."""
    engine = sa.create_engine(url)
    schema.upgrade(engine, schema.FIRST_RELEASE)
    at = datetime(2026, 11, 1, 9, 30)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
        conn.execute(
            sa.text(
                "INSERT INTO conversations (id, customer_id, status, agent_id, agent_name, outcome, closed_by_id, "
                "closed_by_name, started_at, updated_at, closed_at, assigned_at, last_fact) VALUES "
                "('conversation-old', 'customer-7', 'closed', 'alice', 'Alice Martin', 'resolved', 'alice', "
                "'Alice Martin', :at, :at, :at, :at, 3)"
            ),
            {"at": at},
        )
        for number, (kind, entry_kind, author, text) in enumerate(
            [
                ("message", "customer", "customer", "Where is my parcel?"),
                ("message", "agent", "Alice Martin", "It arrives tomorrow."),
                ("closed", "system", "system", "Alice Martin closed the conversation as Resolved"),
            ],
            start=1,
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO facts (key, conversation_id, number, kind, at, entry_seq, entry_kind, author, text) "
                    "VALUES (:key, 'conversation-old', :number, :kind, :at, :number, :entry_kind, :author, :text)"
                ),
                {
                    "key": f"conversation-old:{number}",
                    "number": number,
                    "kind": kind,
                    "at": at,
                    "entry_kind": entry_kind,
                    "author": author,
                    "text": text,
                },
            )
        conn.execute(
            sa.text("INSERT INTO idempotent_requests (request_id, digest, at) VALUES ('r1', 'd1', :at)"), {"at": at}
        )
    return engine


def test_a_first_release_database_holding_data_is_upgraded_with_nothing_lost(database_url: str) -> None:
    old = first_release_database(database_url)
    store = Store(database_url)  # what every process does when it opens the database
    try:
        with store.engine.connect() as conn:
            assert schema.current(conn) == schema.head()
        summary = store.summary("conversation-old")
        assert summary is not None and summary.status is Status.CLOSED and summary.customer_id == "customer-7"
        assert summary.closed_at == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
        assert [(e.kind, e.text) for e in store.transcript("conversation-old")] == [
            (EntryKind.CUSTOMER, "Where is my parcel?"),
            (EntryKind.AGENT, "It arrives tomorrow."),
            (EntryKind.SYSTEM, "Alice Martin closed the conversation as Resolved"),
        ]
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT digest FROM idempotent_requests")).scalar_one() == "d1"
            # Issue 14: the conversation resolved before the past-reply index existed is in it.
            assert [f.text for f in reply_index.search(conn, "where is my parcel", 3)] == ["It arrives tomorrow."]
    finally:
        store.close()
        old.dispose()


def test_the_latest_revision_gives_exactly_the_models(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        schema.upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": schema.include_object})
            differences = compare_metadata(context, metadata)
        assert differences == [], "write a migration for these model changes (handoff/migrations/versions)"
    finally:
        engine.dispose()


def test_processes_opening_a_new_database_at_once_all_get_the_latest_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'handoff.db'}"
    Store(url).close()  # the file exists; now race the upgrade check and a fresh SQLite file
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    (tmp_path / "fresh.db").touch()
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            Store(fresh).close()
        except BaseException as e:  # collected, so a failing thread fails the test
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = sa.create_engine(fresh)
    with engine.connect() as conn:
        assert schema.current(conn) == schema.head()
    engine.dispose()


def test_handoff_db_upgrade_says_what_it_did(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first_release_database(database_url).dispose()
    monkeypatch.setenv("HANDOFF_DATABASE_URL", database_url)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    if schema.head() != schema.FIRST_RELEASE:
        assert f"from {schema.FIRST_RELEASE} to {schema.head()}" in result.output
    else:  # nothing to apply yet: the first release's tables are recognised as revision 0001
        assert f"already at {schema.FIRST_RELEASE}" in result.output
    again = CliRunner().invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0 and f"already at {schema.head()}" in again.output


def test_the_sqlite_migration_lock_is_a_file_of_its_own_never_the_database(tmp_path: Path) -> None:
    """SQLite's locks are POSIX locks, dropped for the whole process when it closes any descriptor
    of the database file: locking the database file itself (open, flock, close) lost writes of
    other connections in the benchmark. The lock is a separate private file."""
    Store(f"sqlite:///{tmp_path / 'handoff.db'}").close()
    lock = tmp_path / "handoff.db.migrate-lock"
    assert lock.exists() and lock.stat().st_mode & 0o777 == 0o600
