"""Secrets made once and kept in the data folder, for an install nobody configured.

`handoff up` must work with no configuration, yet some values must survive a restart and be
shared by every process on the same data: the customer token secret (tokens already handed
out must keep working) and the payload encryption key (history written yesterday must still
decrypt). Both live here as files of mode 0600 next to the SQLite database file (the data
folder), or in `.handoff/` when the database is not a local file. Production sets them
explicitly instead (several machines cannot share a local file).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from handoff.config import Settings

DEFAULT_DATA_DIR = Path(".handoff")


def data_dir(settings: Settings) -> Path:
    """The folder holding the SQLite database file, else `.handoff/`."""
    if settings.database_url.startswith("sqlite"):
        database = sa.engine.make_url(settings.database_url).database
        if database and database != ":memory:":
            return Path(database).parent
    return DEFAULT_DATA_DIR


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The secret in `path` (stripped), written from `make()` with mode 0600 if there is none.

    The new file is written under a temporary name and linked into place, which fails if
    `path` exists: two processes starting at once agree on one secret, and nobody ever reads
    a half-written file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(make().strip() + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text(encoding="ascii").strip()
