"""The Typer app, the shared options and how the commands print and fail.

Every command prints through `console()` and ends an error a person can act on with
`report()`: one red line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Any, NoReturn, TypeVar

import sqlalchemy.exc
import typer
from rich.console import Console
from rich.text import Text

from handoff.agents import AgentsFileError
from handoff.bot import KnowledgeBaseError
from handoff.client import HandoffError
from handoff.codec import EncryptionConfigError, PayloadDecryptionError
from handoff.connection import TemporalTlsError
from handoff.local_secrets import PRIVATE_UMASK, SecretFileError

T = TypeVar("T")


class HandoffApp(typer.Typer):
    """The command, ended with `os._exit` once it is done.

    A process that used a Temporal client can abort while the interpreter finalizes (the SDK's
    Rust threads outlive it: "PyGILState_Release: thread state ... must be current", temporalio
    sdk-python issue #300) - one run in five after a failed connect on this machine. Every
    resource is closed by then (servers stopped, databases closed), so only the flushed output
    and the exit code matter. Test runners invoke the command object, not this, and are unaffected.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Whatever a command writes (databases, their -wal/-shm files, keys, logs) is private.
        os.umask(PRIVATE_UMASK)
        try:
            super().__call__(*args, **kwargs)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)


app = HandoffApp(
    name="handoff",
    help="Handoff: durable customer-support conversations on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
conversations_app = typer.Typer(help="List conversations, show one, show its Temporal history.", no_args_is_help=True)
app.add_typer(conversations_app, name="conversations")


class LogLevel(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("handoff").setLevel(level.upper())


# --- Output.

PIPE_WIDTH = 200
"""Width of tables written to a pipe or file (unless COLUMNS says otherwise): wide enough for grep."""


def console(stderr: bool = False) -> Console:
    """A console on the current stdout (created per call, so test runners can capture it)."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


def print_error(message: str) -> None:
    console(stderr=True).print(Text(f"error: {message}", style="bold red"), soft_wrap=True)


# --- Errors.


class CliError(Exception):
    """A failure a person can act on: printed as one line, exit code 1."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


REPORTED = (
    CliError,
    HandoffError,
    AgentsFileError,
    KnowledgeBaseError,
    TemporalTlsError,
    EncryptionConfigError,
    PayloadDecryptionError,
    SecretFileError,
    sqlalchemy.exc.OperationalError,
)
"""The errors ops can act on: `report()` them; anything else is a bug and keeps its traceback."""


def report(error: Exception) -> NoReturn:
    """One of the `REPORTED` errors as one line, then exit code 1."""
    if isinstance(error, sqlalchemy.exc.OperationalError):
        exit_with(f"cannot use the database: {error.orig}")
    exit_with(str(error))


def exit_with(message: str) -> NoReturn:
    print_error(message)
    raise typer.Exit(1)


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine; turn the errors ops can act on into one-line messages."""
    try:
        return asyncio.run(main())
    except REPORTED as e:
        report(e)
