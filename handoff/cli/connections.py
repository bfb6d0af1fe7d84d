"""Where the commands read from: the database and Temporal, opened one way for every command.

A missing SQLite file, an unreachable Temporal or an unknown conversation end in a message
that says what to set or check, not in a traceback or a new empty database.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy
from temporalio.client import WorkflowExecutionDescription
from temporalio.service import RPCError, RPCStatusCode

from handoff.cli.main import fail
from handoff.client import HandoffClient
from handoff.config import Settings

if TYPE_CHECKING:
    from handoff.store import Store


@contextlib.contextmanager
def open_store(settings: Settings, *, create: bool = False) -> Iterator[Store]:
    """The configured database, closed afterwards; unless `create`, a missing SQLite file is an
    error (the commands read what `handoff up` or a worker recorded), not a new empty database."""
    from handoff.store import Store

    url = sqlalchemy.engine.make_url(settings.database_url)
    database = url.database if url.get_backend_name() == "sqlite" else None
    if not create and database and database != ":memory:" and not Path(database).exists():
        fail(
            f"no database at {database}; run this where `handoff up` runs "
            "or set HANDOFF_DATABASE_URL (e.g. sqlite:///path/to/.handoff/handoff.db)"
        )
    store = Store(settings.database_url)
    try:
        yield store
    finally:
        store.close()


async def connect(settings: Settings, store: Store | None = None) -> HandoffClient:
    """The Handoff client (with the data converter for `settings`' keys), or a message naming the
    address. With `store`, it enforces the agents' capacity (issue 10) as the API does."""
    try:
        return await HandoffClient.connect(settings, store)
    except RuntimeError as e:
        fail(f"cannot reach Temporal at {settings.temporal_address} (set HANDOFF_TEMPORAL_ADDRESS): {reason(e)}")


def reason(error: Exception) -> str:
    """The gist of a connection error ("Connection refused"), not the transport's whole debug text."""
    found = re.search(r'message: "([^"]+)"', str(error))
    return found.group(1) if found else str(error)


async def describe(handoff: HandoffClient, conversation_id: str) -> WorkflowExecutionDescription | None:
    """The latest run of the conversation's workflow; None when Temporal does not know it."""
    try:
        return await handoff.handle(conversation_id).describe()
    except RPCError as e:
        if e.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
