"""Secrets made once and kept in the data folder, for an install nobody configured, and the
privacy of that folder.

`handoff up` must work with no configuration, yet some values must survive a restart and be
shared by every process on the same data: the customer token secret (tokens already handed
out must keep working) and the payload encryption key (history written yesterday must still
decrypt). Both live here as files of mode 0600 next to the SQLite database file (the data
folder), or in `.handoff/` when the database is not a local file. Only `handoff up` creates
them (`create=True`): any other command that finds none stops and says how to configure one,
rather than leave a new key in whatever folder it was run from. Production sets them
explicitly instead (several machines cannot share a local file).

The data folder holds plain-text transcripts (handoff.db and its -wal/-shm files) and these
secrets, so it is made private to its owner (0700, files 0600), and a secret file that other
users can read is refused, as ssh refuses a readable private key: the secret may already have
leaked, and using it would hide that.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from handoff.config import Settings

DEFAULT_DATA_DIR = Path(".handoff")
PRIVATE_UMASK = 0o077
"""Files and folders Handoff's processes create are their owner's only (0600 / 0700)."""


class SecretFileError(ValueError):
    """A secret file is missing where it must not be created, or other users can read it."""


def data_dir(settings: Settings) -> Path:
    """The folder holding the SQLite database file, else `.handoff/`."""
    if settings.database_url.startswith("sqlite"):
        database = sa.engine.make_url(settings.database_url).database
        if database and database != ":memory:":
            return Path(database).parent
    return DEFAULT_DATA_DIR


DATA_FILES = (
    "handoff.db",
    "temporal.db",
    "temporal.log",
    "handoff.lock",
    "encryption.keys",
    "customer-token.secret",
)
"""What `handoff up` keeps in its data folder (SQLite's -wal, -shm and -journal files too)."""


def make_private_dir(path: Path) -> None:
    """Create `path` (mode 0700) if needed, and take group and world access away from it and
    from Handoff's files in it (e.g. a handoff.db or its -wal file left 0644 by an older
    version); other files are not Handoff's to change."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    ours = [path / name for base in DATA_FILES for name in (base, f"{base}-wal", f"{base}-shm", f"{base}-journal")]
    for item in (path, *ours):
        with contextlib.suppress(OSError):  # missing, or owned by someone else
            mode = item.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                os.chmod(item, stat.S_IMODE(mode) & ~0o077)


def check_private(path: Path) -> None:
    """Refuse a secret file that other users can read or write, with the command that fixes it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretFileError(
            f"{path} holds a secret but other users can access it (mode {mode:04o}); "
            f"make it private with `chmod 600 {path}` (and consider the secret exposed if others could read it)"
        )


def read_secret(path: Path) -> str:
    """The secret in `path` (stripped), once its mode is checked."""
    check_private(path)
    return path.read_text(encoding="ascii").strip()


def read_or_create(path: Path, make: Callable[[], str], *, create: bool, missing: str) -> str:
    """The secret in `path`; if there is none, written from `make()` with mode 0600 when
    `create`, else `SecretFileError(missing)`.

    The new file is written under a temporary name and linked into place, which fails if
    `path` exists: two processes starting at once agree on one secret, and nobody ever reads
    a half-written file.
    """
    if not path.exists():
        if not create:
            raise SecretFileError(missing)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(make().strip() + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return read_secret(path)
