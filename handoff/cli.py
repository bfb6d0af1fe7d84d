"""`handoff`: the ops command line.

`handoff up` runs everything on the embedded default (a Temporal dev server on a SQLite file,
the worker and the HTTP API, all under one data folder) and stops it all cleanly on Ctrl-C or
SIGTERM; `worker` and `api` run one part against a configured Temporal and database; the
`conversations` commands and `stats` read what ops need; `demo` plays a scripted conversation.

Errors a person can act on (a refused command, an unknown conversation, a server that does not
answer, a port in use) end in a one-line message and exit code 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import sqlalchemy.exc
import typer
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from handoff.agents import AgentDirectory, AgentsFileError
from handoff.bot import KnowledgeBaseBot, KnowledgeBaseError
from handoff.client import ConversationNotFound, HandoffClient, HandoffError, workflow_id
from handoff.codec import EncryptionConfigError, PayloadDecryptionError
from handoff.config import Settings
from handoff.converter import data_converter
from handoff.models import Agent, ConversationSummary, EntryKind, Outcome, Status, TranscriptEntry

if TYPE_CHECKING:
    import uvicorn

    from handoff.devserver import DevServer
    from handoff.store import Store

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

# --- Output and errors.


PIPE_WIDTH = 200
"""Width of tables written to a pipe or file (unless COLUMNS says otherwise): wide enough for grep."""


def console(stderr: bool = False) -> Console:
    """A console on the current stdout (created per call, so test runners can capture it)."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


class CliError(Exception):
    """A failure a person can act on: printed as one line, exit code 1."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine; turn the errors ops can act on into one-line messages."""
    try:
        return asyncio.run(main())
    except HandoffError as e:
        _exit_with(e.message)
    except CliError as e:
        _exit_with(str(e))
    except (AgentsFileError, KnowledgeBaseError) as e:
        _exit_with(str(e))
    except (EncryptionConfigError, PayloadDecryptionError) as e:
        _exit_with(str(e))
    except sqlalchemy.exc.OperationalError as e:
        _exit_with(f"cannot use the database: {e.orig}")


def _exit_with(message: str) -> NoReturn:
    console(stderr=True).print(Text(f"error: {message}", style="bold red"), soft_wrap=True)
    raise typer.Exit(1)


def fmt_time(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "–"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24:02d} h"


def fmt_agent(agent: Agent | None) -> str:
    return f"{agent.name} ({agent.id})" if agent else "–"


def redacted(url: str) -> str:
    """A database URL fit to print: no password."""
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def open_store(settings: Settings) -> Store:
    """The configured database; a missing SQLite file is an error, not a new empty database."""
    from handoff.store import Store

    url = sqlalchemy.engine.make_url(settings.database_url)
    database = url.database if url.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not Path(database).exists():
        fail(
            f"no database at {database}; run this where `handoff up` runs "
            "or set HANDOFF_DATABASE_URL (e.g. sqlite:///path/to/.handoff/handoff.db)"
        )
    return Store(settings.database_url)


async def connect(settings: Settings) -> HandoffClient:
    try:
        return await HandoffClient.connect(settings)
    except RuntimeError as e:
        fail(f"cannot reach Temporal at {settings.temporal_address} (set HANDOFF_TEMPORAL_ADDRESS): {reason(e)}")


def reason(error: Exception) -> str:
    """The gist of a connection error ("Connection refused"), not the transport's whole debug text."""
    found = re.search(r'message: "([^"]+)"', str(error))
    return found.group(1) if found else str(error)


# --- Running servers: signals, ports, the data folder.


def api_server(app: Any, log_level: str) -> uvicorn.Server:
    """A uvicorn server whose signals are handled by us, not by uvicorn.

    uvicorn re-raises a caught SIGTERM once it has shut down, which would kill `handoff up`
    before the worker and the dev server are stopped, and end it with a signal, not code 0.
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=10))


def bind(host: str, port: int, what: str) -> socket.socket:
    """Bind the port now, so a port in use is reported before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        fail(f"cannot listen on {host}:{port} for the {what}: {e.strerror}; pick another port ({port_option(what)})")
    return sock


def port_option(what: str) -> str:
    return {"HTTP API": "--port", "Temporal gRPC": "--temporal-port", "Temporal UI": "--ui-port"}[what]


def check_free(host: str, port: int, what: str) -> None:
    bind(host, port, what).close()


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """One `handoff up` per data folder: two dev servers on one SQLite file would corrupt it."""
    with open(data_dir / "handoff.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            fail(f"another `handoff up` (pid {lock.read().strip() or '?'}) is already using {data_dir}")
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield


class Terminated(Exception):
    """SIGTERM arrived before the event loop took over signal handling."""


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While starting the dev server (blocking), SIGTERM unwinds like Ctrl-C, so it is stopped."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def install_stop_handlers(stop: asyncio.Event, on_second: Callable[[], None] | None = None) -> None:
    """SIGINT and SIGTERM set `stop` (a second one calls `on_second`); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()

    def handle() -> None:
        if stop.is_set() and on_second is not None:
            on_second()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle)


async def serve_until_stopped(
    parts: dict[str, Awaitable[None]], stop: asyncio.Event, on_stop: Callable[[], None]
) -> list[str]:
    """Run the parts until `stop` is set or one of them ends; then stop all, return failures."""
    tasks = {asyncio.ensure_future(part): name for name, part in parts.items()}
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    on_stop()
    stopper.cancel()
    failures: list[str] = []
    for task, name in tasks.items():
        try:
            await task
        except (Exception, SystemExit) as e:
            failures.append(f"the {name} failed: {e!r}")
        else:
            if not stop.is_set():
                failures.append(f"the {name} stopped unexpectedly")
    return failures


async def wait_started(server: uvicorn.Server, task: asyncio.Future[Any]) -> bool:
    while not server.started:
        if task.done():
            return False
        await asyncio.sleep(0.05)
    return True


class LogLevel(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("handoff").setLevel(level.upper())


# --- handoff up.


@dataclass
class UpAddresses:
    host: str
    port: int
    temporal: str
    ui_port: int | None
    data_dir: Path

    def table(self) -> Table:
        table = Table(title="Handoff is running", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        api = f"http://{self.host}:{self.port}"
        table.add_row("HTTP API", api)
        table.add_row("OpenAPI docs", f"{api}/docs")
        table.add_row("Temporal gRPC", self.temporal)
        table.add_row("Temporal UI", f"http://127.0.0.1:{self.ui_port}" if self.ui_port else "off")
        table.add_row("Data dir", f"{self.data_dir}  (temporal.db, handoff.db, temporal.log)")
        return table


def agents_table(settings: Settings) -> Table | None:
    """The demo agents and their tokens, when no agents file is configured (they are public)."""
    if settings.agents_file is not None:
        return None
    table = Table(title="Demo agents (set HANDOFF_AGENTS_FILE to use your own)", title_justify="left")
    table.add_column("Agent")
    table.add_column("Name")
    table.add_column("Token (Authorization: Bearer …)")
    for entry in AgentDirectory.default().agents:
        table.add_row(entry.id, entry.name, entry.token)
    return table


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address the HTTP API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP API port.")] = 8000,
    temporal_port: Annotated[int, typer.Option(help="Temporal gRPC port (embedded dev server).")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal web UI port; 0 turns the UI off.")] = 8233,
    data_dir: Annotated[Path, typer.Option(help="Folder for the Temporal and Handoff databases.")] = Path(".handoff"),
    log_level: Annotated[LogLevel, typer.Option(help="Log level of Handoff and the API server.")] = LogLevel.INFO,
) -> None:
    """Run everything: an embedded Temporal dev server, the worker and the HTTP API.

    Ctrl-C or SIGTERM stops it all cleanly; running it again on the same data folder resumes
    every open conversation (Temporal keeps them in its SQLite file).
    """
    from handoff.api import create_app
    from handoff.devserver import DevServer

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with data_dir_lock(data_dir):
            check_free("127.0.0.1", temporal_port, "Temporal gRPC")
            if ui_port:
                check_free("127.0.0.1", ui_port, "Temporal UI")
            api_socket = bind(host, port, "HTTP API")
            settings = Settings(
                temporal_address=f"127.0.0.1:{temporal_port}",
                database_url=f"sqlite:///{data_dir / 'handoff.db'}",
            )
            # A bad agents file or knowledge base is reported before anything starts.
            api_app = create_app(settings)
            KnowledgeBaseBot.from_file(settings.knowledge_base)
            server = DevServer(
                db_file=data_dir / "temporal.db",
                port=temporal_port,
                ui_port=ui_port or None,
                log_file=data_dir / "temporal.log",
            )
            addresses = UpAddresses(host, port, server.address, ui_port or None, data_dir)
            configure_logging(log_level)
            code = _up(server, settings, api_app, api_socket, addresses, log_level)
    except (CliError, AgentsFileError, KnowledgeBaseError) as e:
        _exit_with(str(e))
    raise typer.Exit(code)


def _up(
    server: DevServer, settings: Settings, api_app: Any, api_socket: socket.socket, addresses: UpAddresses, log: str
) -> int:
    out = console()
    try:
        with stop_signals_raise():
            out.print(f"Starting the Temporal dev server on {server.address} …")
            try:
                server.start()
            except (RuntimeError, TimeoutError) as e:
                fail(f"{e}; see {server.log_file}")
            failures = asyncio.run(_serve_up(settings, api_app, api_socket, addresses, log))
    except (KeyboardInterrupt, Terminated):
        failures = []
    except SystemExit:
        # uvicorn exits the process when the app's start-up fails; it has logged why.
        failures = ["the HTTP API did not start (see the log above)"]
    finally:
        api_socket.close()
        with _force_kill_on_signal(server):
            server.stop()
    out.print("Handoff stopped." if not failures else "Handoff stopped after a failure.")
    for failure in failures:
        console(stderr=True).print(Text(f"error: {failure}", style="bold red"), soft_wrap=True)
    return 1 if failures else 0


@contextlib.contextmanager
def _force_kill_on_signal(server: DevServer) -> Iterator[None]:
    """While the dev server stops, another Ctrl-C or SIGTERM kills it instead of waiting."""

    def handler(signum: int, frame: object) -> None:
        if server.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)


async def _serve_up(
    settings: Settings, api_app: Any, api_socket: socket.socket, addresses: UpAddresses, log_level: str
) -> list[str]:
    from worker import run_worker

    out = console()
    stop = asyncio.Event()
    worker_stop = asyncio.Event()
    server = api_server(api_app, log_level)
    install_stop_handlers(stop, on_second=lambda: setattr(server, "force_exit", True))
    worker_task = asyncio.ensure_future(run_worker(settings, worker_stop))
    api_task = asyncio.ensure_future(server.serve(sockets=[api_socket]))
    if await wait_started(server, api_task):
        out.print(addresses.table())
        agents = agents_table(settings)
        if agents is not None:
            out.print(agents)
        open_count = await _open_conversations(settings)
        if open_count:
            out.print(f"Resuming {open_count} open conversation(s).")
        out.print("Press Ctrl-C to stop.")

    def stop_all() -> None:
        server.should_exit = True
        worker_stop.set()

    return await serve_until_stopped({"worker": worker_task, "HTTP API": api_task}, stop, stop_all)


async def _open_conversations(settings: Settings) -> int:
    """How many conversations Temporal is running (the worker resumes them all)."""
    try:
        client = await Client.connect(
            settings.temporal_address, namespace=settings.namespace, data_converter=data_converter(settings)
        )
        counted = await client.count_workflows("WorkflowType = 'Conversation' AND ExecutionStatus = 'Running'")
        return counted.count
    except (RuntimeError, RPCError):
        return 0


# --- handoff worker / handoff api.


@app.command()
def worker(
    log_level: Annotated[LogLevel, typer.Option(help="Log level.")] = LogLevel.INFO,
) -> None:
    """Run only the worker, against HANDOFF_TEMPORAL_ADDRESS and HANDOFF_DATABASE_URL."""
    from worker import run_worker

    settings = Settings()
    configure_logging(log_level)

    async def main() -> None:
        await connect(settings)  # a clear message if Temporal is not there
        stop = asyncio.Event()
        install_stop_handlers(stop)
        console().print(
            f"Worker polling task queue {settings.task_queue!r} on {settings.temporal_address} "
            f"(namespace {settings.namespace}), recording into {redacted(settings.database_url)}. Ctrl-C to stop."
        )
        await run_worker(settings, stop)

    run(main)


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[LogLevel, typer.Option(help="Log level.")] = LogLevel.INFO,
) -> None:
    """Run only the HTTP API, against HANDOFF_TEMPORAL_ADDRESS and HANDOFF_DATABASE_URL."""
    from handoff.api import create_app

    settings = Settings()
    configure_logging(log_level)
    try:
        api_app = create_app(settings)
    except AgentsFileError as e:
        _exit_with(str(e))
    sock = bind_or_exit(host, port)

    async def main() -> None:
        stop = asyncio.Event()
        server = api_server(api_app, log_level)
        install_stop_handlers(stop, on_second=lambda: setattr(server, "force_exit", True))
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        if await wait_started(server, task):
            console().print(f"HTTP API on http://{host}:{port} (docs at /docs), Temporal {settings.temporal_address}.")
            agents = agents_table(settings)
            if agents is not None:
                console().print(agents)
        failures = await serve_until_stopped({"HTTP API": task}, stop, lambda: setattr(server, "should_exit", True))
        if failures:
            fail("; ".join(failures))

    try:
        run(main)
    except SystemExit as e:
        if e.code in (0, None):
            raise
        # uvicorn exits the process when the app's start-up fails; it has logged why.
        _exit_with("the HTTP API did not start (see the log above)")
    finally:
        sock.close()


def bind_or_exit(host: str, port: int) -> socket.socket:
    try:
        return bind(host, port, "HTTP API")
    except CliError as e:
        _exit_with(str(e))


# --- handoff conversations list / show / history.


@conversations_app.command("list")
def list_conversations(
    status: Annotated[Status | None, typer.Option(help="Only conversations in this status.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only conversations assigned to this agent id.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
) -> None:
    """Conversations from the database, newest first."""

    async def main() -> None:
        store = open_store(Settings())
        try:
            rows = store.conversations(status=status, agent_id=agent, limit=limit)
        finally:
            store.close()
        if not rows:
            console().print("No conversations match.")
            return
        now = datetime.now(UTC)
        table = Table(title=f"{len(rows)} conversation(s), newest first (times in UTC)", title_justify="left")
        for column in ("Conversation", "Status", "Agent", "Outcome", "Started", "Updated", "Waiting for"):
            table.add_column(column, no_wrap=column in ("Conversation", "Status", "Outcome"))
        for row in rows:
            waiting = (now - row.waiting_since).total_seconds() if row.waiting_since else None
            table.add_row(
                row.conversation_id,
                row.status.value,
                row.agent.id if row.agent else "–",
                row.outcome.value if row.outcome else "–",
                fmt_time(row.started_at),
                fmt_time(row.updated_at),
                fmt_duration(waiting) if row.status is Status.WAITING else "–",
            )
        console().print(table)

    run(main)


@dataclass
class Shown:
    summary: ConversationSummary
    transcript: list[TranscriptEntry]
    source: str
    rejected_signals: int | None = None


async def load_conversation(settings: Settings, conversation_id: str) -> Shown:
    """From the workflow when it runs (the live state), else from the database."""
    why = "the workflow is no longer running"
    try:
        handoff = await HandoffClient.connect(settings)
    except RuntimeError:
        handoff = None
        why = f"Temporal at {settings.temporal_address} is unreachable"
    if handoff is not None:
        try:
            description = await handoff.handle(conversation_id).describe()
        except RPCError as e:
            if e.status is not RPCStatusCode.NOT_FOUND:
                raise
        else:
            if description.status is WorkflowExecutionStatus.RUNNING:
                from workflows.conversation import ConversationWorkflow

                handle = handoff.handle(conversation_id)
                return Shown(
                    summary=await handoff.summary(conversation_id),
                    transcript=await handoff.transcript(conversation_id),
                    source="live, from the running workflow",
                    rejected_signals=await handle.query(ConversationWorkflow.rejected_signals),
                )
    store = open_store(settings)
    try:
        summary = store.summary(conversation_id)
        if summary is None:
            raise ConversationNotFound(f"no conversation {conversation_id!r}")
        return Shown(summary, store.transcript(conversation_id), f"from the database: {why}")
    finally:
        store.close()


@conversations_app.command("show")
def show_conversation(conversation_id: Annotated[str, typer.Argument(help="The conversation id.")]) -> None:
    """One conversation: its state and its whole transcript, system notes included."""

    async def main() -> None:
        shown = await load_conversation(Settings(), conversation_id)
        s = shown.summary
        state = Table(show_header=False)
        state.add_column(style="bold")
        state.add_column()
        state.add_row("Status", s.status.value)
        state.add_row("Customer", s.customer_id)
        state.add_row("Agent", fmt_agent(s.agent))
        state.add_row("Outcome", s.outcome.value if s.outcome else "–")
        if s.closed_by:
            state.add_row("Closed by", fmt_agent(s.closed_by))
        state.add_row("Started", fmt_time(s.started_at))
        state.add_row("Updated", fmt_time(s.updated_at))
        if s.waiting_since:
            state.add_row("Waiting since", fmt_time(s.waiting_since))
        if s.assigned_at:
            state.add_row("Assigned at", fmt_time(s.assigned_at))
        if s.closed_at:
            state.add_row("Closed at", fmt_time(s.closed_at))
        if shown.rejected_signals:
            state.add_row("Refused signals", str(shown.rejected_signals))
        out = console()
        out.print(Text(f"Conversation {s.conversation_id}", style="bold"), f"({shown.source})", soft_wrap=True)
        out.print(state)
        out.print(transcript_table(shown.transcript, "Transcript (times in UTC; system notes in italics)"))

    run(main)


def transcript_table(entries: Sequence[TranscriptEntry], title: str) -> Table:
    """The agents' view: every entry with its sequence number, kind and author."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Time", no_wrap=True)
    table.add_column("Kind")
    table.add_column("Author")
    table.add_column("Text", overflow="fold")
    for e in entries:
        style = "italic dim" if e.kind is EntryKind.SYSTEM else ""
        table.add_row(str(e.seq), fmt_time(e.at), e.kind.value, e.author, e.text, style=style)
    return table


def customer_table(entries: Sequence[TranscriptEntry], title: str) -> Table:
    """The customer's view: messages only, as the chat widget shows them (never system notes)."""
    table = Table(title=title, title_justify="left")
    table.add_column("Time", no_wrap=True)
    table.add_column("From")
    table.add_column("Text", overflow="fold")
    for e in entries:
        if e.kind is not EntryKind.SYSTEM:
            table.add_row(fmt_time(e.at), "you" if e.kind is EntryKind.CUSTOMER else e.author, e.text)
    return table


@conversations_app.command("history")
def conversation_history(
    conversation_id: Annotated[str, typer.Argument(help="The conversation id.")],
    all_events: Annotated[bool, typer.Option("--all", help="Also show workflow-task events.")] = False,
) -> None:
    """The conversation's Temporal event history, readable and without message contents."""

    async def main() -> None:
        settings = Settings()
        handoff = await connect(settings)
        runs = await conversation_runs(handoff, conversation_id)
        out = console()
        for number, (run_id, started, status) in enumerate(runs, start=1):
            handle = handoff.temporal.get_workflow_handle(workflow_id(conversation_id), run_id=run_id)
            history = await handle.fetch_history()
            events = HistoryReader(handoff.temporal)
            rows = [await events.describe(e) for e in history.events]
            shown = [r for r in rows if all_events or not r.event_type.startswith("WorkflowTask")]
            heading = f"Run {number} of {len(runs)}: {run_id} ({status}, started {fmt_time(started)} UTC)"
            out.print(Text(heading, style="bold"), soft_wrap=True)
            table = Table(
                caption=None if all_events else f"{len(rows) - len(shown)} workflow-task events hidden (--all)",
                caption_justify="left",
            )
            table.add_column("Event", justify="right")
            table.add_column("Time (UTC)", no_wrap=True)
            table.add_column("Type", no_wrap=True)
            table.add_column("Name", no_wrap=True)
            table.add_column("Details", overflow="fold")
            for r in shown:
                table.add_row(str(r.event_id), r.time, r.event_type, r.name, r.details)
            out.print(table)

    run(main)


async def conversation_runs(handoff: HandoffClient, conversation_id: str) -> list[tuple[str, datetime, str]]:
    """Every run of the conversation's workflow (continue-as-new makes several), oldest first."""
    try:
        latest = await handoff.handle(conversation_id).describe()
    except RPCError as e:
        if e.status is RPCStatusCode.NOT_FOUND:
            raise ConversationNotFound(f"no conversation {conversation_id!r} in Temporal") from None
        raise
    # Visibility (the run list) lags a moment behind: the latest run comes from describe().
    runs = {latest.run_id: (latest.start_time, latest.status)}
    async for w in handoff.temporal.list_workflows(f"WorkflowId = '{workflow_id(conversation_id)}'"):
        runs.setdefault(w.run_id, (w.start_time, w.status))
    return sorted(
        ((run_id, started, status.name.lower() if status else "?") for run_id, (started, status) in runs.items()),
        key=lambda r: r[1],
    )


@dataclass
class EventRow:
    event_id: int
    time: str
    event_type: str
    name: str
    details: str


# Fields of Handoff's payloads that are safe to print: no free text, no customer id.
SAFE_FIELDS = ("status", "outcome", "wants_human", "reply_to", "last_fact")


class HistoryReader:
    """Turns history events into rows: type, the signal/update/activity name, and a short
    summary of the payloads that never contains message text or customer ids."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.names: dict[int, str] = {}  # scheduled/accepted event id → activity/update name

    async def describe(self, event: HistoryEvent) -> EventRow:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        event_type = "".join(part.capitalize() for part in kind.split("_"))
        name, details = await self._details(event)
        at = event.event_time.ToDatetime(tzinfo=UTC).strftime("%m-%d %H:%M:%S.%f")[:-3]
        return EventRow(event.event_id, at, event_type, name, details)

    async def _details(self, event: HistoryEvent) -> tuple[str, str]:
        attribute = event.WhichOneof("attributes")
        if attribute is None:
            return "", ""
        a: Any = getattr(event, attribute)
        match attribute:
            case "workflow_execution_started_event_attributes":
                details = await self._summary(a.input)
                if a.continued_execution_run_id:
                    details = f"continued from run {a.continued_execution_run_id}; {details}"
                return a.workflow_type.name, details
            case "workflow_execution_signaled_event_attributes":
                return a.signal_name, await self._summary(a.input)
            case "workflow_execution_update_accepted_event_attributes":
                name = a.accepted_request.input.name
                self.names[event.event_id] = name
                return name, await self._summary(a.accepted_request.input.args)
            case "workflow_execution_update_completed_event_attributes":
                name = self.names.get(a.accepted_event_id, "")
                if a.outcome.HasField("failure"):
                    return (
                        name,
                        f"refused: {a.outcome.failure.application_failure_info.type or a.outcome.failure.message}",
                    )
                return name, await self._summary(a.outcome.success)
            case "activity_task_scheduled_event_attributes":
                self.names[event.event_id] = a.activity_type.name
                return a.activity_type.name, await self._summary(a.input)
            case "activity_task_started_event_attributes":
                return self.names.get(a.scheduled_event_id, ""), f"attempt {a.attempt}"
            case "activity_task_completed_event_attributes":
                return self.names.get(a.scheduled_event_id, ""), "returned " + await self._summary(a.result)
            case "activity_task_failed_event_attributes":
                return self.names.get(a.scheduled_event_id, ""), f"failed: {a.failure.message[:100]}"
            case "activity_task_timed_out_event_attributes":
                return self.names.get(a.scheduled_event_id, ""), "timed out"
            case "workflow_execution_completed_event_attributes":
                return "", await self._summary(a.result)
            case "workflow_execution_continued_as_new_event_attributes":
                return "", f"new run {a.new_execution_run_id}"
            case "workflow_execution_failed_event_attributes":
                return "", f"failed: {a.failure.message[:100]}"
            case "upsert_workflow_search_attributes_event_attributes":
                fields = a.search_attributes.indexed_fields
                values = [f"{k}={(await self._decode([fields[k]]) or [''])[0] or '∅'}" for k in sorted(fields)]
                return "", ", ".join(values)
            case "timer_started_event_attributes" | "timer_fired_event_attributes":
                return "", f"timer {a.timer_id}"
        return "", ""

    async def _decode(self, payloads: Sequence[Payload]) -> list[Any] | None:
        codec = self.client.data_converter.payload_codec
        decoded = list(payloads)
        if codec is not None:
            decoded = await codec.decode(decoded)
        values: list[Any] = []
        for p in decoded:
            if p.metadata.get("encoding") != b"json/plain":
                return None
            values.append(json.loads(p.data))
        return values

    async def _summary(self, payloads: Payloads) -> str:
        if not payloads.payloads:
            return ""
        values = await self._decode(payloads.payloads)
        if values is None:
            return f"{sum(len(p.data) for p in payloads.payloads)} bytes (encoded)"
        return "; ".join(summarize(v) for v in values)


def summarize(value: Any) -> str:
    """A short, non-personal summary of one decoded payload (a command, a summary, a batch, ...)."""
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return f"{len(value)} chars"
    if isinstance(value, list):
        return f"{len(value)} items"
    if not isinstance(value, dict):
        return type(value).__name__
    parts = [
        f"{k}={str(value[k]).lower() if isinstance(value[k], bool) else value[k]}"
        for k in SAFE_FIELDS
        if value.get(k) is not None
    ]
    for key in ("agent", "closed_by"):
        if isinstance(value.get(key), dict):
            parts.append(f"{key}={value[key].get('id')}")
    if isinstance(value.get("text"), str):
        parts.append(f"text: {len(value['text'])} chars")
    if isinstance(value.get("facts"), list):
        parts.append(f"{len(value['facts'])} fact{'' if len(value['facts']) == 1 else 's'}")
    if isinstance(value.get("summary"), dict):
        parts.append(f"status={value['summary'].get('status')}")
    if isinstance(value.get("state"), dict):
        parts.append(f"carried state: {len(value['state'].get('transcript', []))} entries")
    elif "conversation_id" in value and "customer_id" in value and "status" not in value:
        parts.append("new conversation")
    return ", ".join(parts)


# --- handoff stats.


def parse_when(value: str | None, end_of_day: bool = False) -> datetime | None:
    """An ISO date or date-time; naive values are UTC; a bare date as --until means the whole day."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1) if end_of_day else day, time(), tzinfo=UTC)
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(f"cannot read {value!r} as a date or time; use e.g. 2025-06-01 or 2025-06-01T14:00")
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@app.command()
def stats(
    since: Annotated[str | None, typer.Option(help="From this date or time (ISO, UTC unless given).")] = None,
    until: Annotated[str | None, typer.Option(help="Until this date (inclusive) or time (exclusive).")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent id.")] = None,
) -> None:
    """The statistics, computed from the recorded facts in the database."""
    from handoff.stats import compute_stats

    async def main() -> None:
        store = open_store(Settings())
        try:
            result = compute_stats(
                store, since=parse_when(since), until=parse_when(until, end_of_day=True), agent_id=agent
            )
        finally:
            store.close()
        for table in stats_tables(result.model_dump(mode="json")):
            console().print(table)

    run(main)


LABELS = {
    "conversations_started": "Conversations started",
    "closed_resolved": "Closed as resolved",
    "closed_not_resolved": "Closed as not resolved",
    "handled_by_bot_alone": "Handled by the bot alone",
    "handled_with_agent": "Handled with an agent",
    "human_requests": "Requests for a person",
    "take_overs": "Take-overs",
    "hand_backs": "Hand-backs",
    "first_response_time": "First agent response",
    "per_agent": "Per agent",
    "per_day": "Per day (UTC)",
}
# Column headers of the per-agent and per-day tables: short, they sit side by side.
SHORT_LABELS = {
    "conversations_started": "Started",
    "closed_resolved": "Resolved",
    "closed_not_resolved": "Not resolved",
    "resolution_rate": "Resolution",
    "handled_by_bot_alone": "Bot alone",
    "handled_with_agent": "With agent",
    "human_requests": "Person asked",
    "first_response_time": "First response",
    "agent_id": "Agent",
    "agent_name": "Name",
}


def label(key: str, short: bool = False) -> str:
    return (short and SHORT_LABELS.get(key)) or LABELS.get(key) or key.replace("_", " ").capitalize()


def is_duration(value: Any) -> bool:
    return isinstance(value, dict) and "median_seconds" in value


def fmt_value(key: str, value: Any, compact: bool = False) -> str:
    """One statistics value as text: rates as percents, durations as median / p90 with counts."""
    if value is None:
        return "–"
    if is_duration(value) and compact:
        if not value.get("count"):
            return "–"
        return f"{fmt_duration(value['median_seconds'])} / {fmt_duration(value['p90_seconds'])}"
    if is_duration(value):
        if not value.get("count"):
            text = "none completed"
        else:
            median, p90 = fmt_duration(value["median_seconds"]), fmt_duration(value["p90_seconds"])
            text = f"median {median}, p90 {p90} (n={value['count']})"
        return f"{text}, {value['open']} still open" if value.get("open") else text
    if isinstance(value, dict) and compact:
        return " / ".join(fmt_value(k, v) for k, v in value.items())
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt_value(k, v)}" for k, v in value.items())
    if isinstance(value, float) and "rate" in key:
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def stats_tables(data: dict[str, Any]) -> list[RenderableType]:
    """Render the statistics from their model_dump(mode="json"): each object (the totals) as a
    metric/value table, each list (per agent, per day) as a table of counts and a table of
    durations and message counts.

    Generic over the fields, so a figure added to `handoff.stats` shows up without a change here.
    """
    window = [f"{label(k).lower()} {fmt_value(k, v)}" for k, v in data.items() if not isinstance(v, dict | list)]
    scope = "; ".join(w for w in window if not w.endswith("–")) or "all time, all agents"
    tables: list[RenderableType] = [Text(f"Statistics: {scope} (times in UTC)", style="bold")]
    for key, value in data.items():
        if isinstance(value, dict):
            table = Table(title=label(key), show_header=False, title_justify="left")
            table.add_column(style="bold")
            table.add_column()
            for k, v in value.items():
                table.add_row(label(k), fmt_value(k, v))
            tables.append(table)
        elif isinstance(value, list):
            tables += list_tables(label(key), [row for row in value if isinstance(row, dict)])
    return tables


def list_tables(title: str, rows: list[dict[str, Any]]) -> list[RenderableType]:
    if not rows:
        return [Text(f"{title}: nothing recorded", style="italic")]
    columns = list(dict.fromkeys(c for row in rows for c in row))
    # Identifying text columns (the day, the agent) first; then counts; then nested figures.
    keys = [c for c in columns if all(isinstance(r.get(c), str) for r in rows)]
    nested = [c for c in columns if any(isinstance(r.get(c), dict) for r in rows)]
    counts = [c for c in columns if c not in keys and c not in nested]
    tables: list[RenderableType] = []
    for part, part_title in ((counts, title), (nested, f"{title}: times and messages")):
        if not part:
            continue
        table = Table(title=part_title, title_justify="left")
        for column in keys:
            table.add_column(label(column, short=True), no_wrap=True)
        for column in part:
            header = label(column, short=True)
            sample = next((r[column] for r in rows if isinstance(r.get(column), dict)), None)
            if is_duration(sample):
                header += " (median / p90)"
            elif isinstance(sample, dict):
                header += f" ({' / '.join(sample)})"
            table.add_column(header, justify="right")
        for row in rows:
            table.add_row(*(fmt_value(c, row.get(c), compact=True) for c in [*keys, *part]))
        tables.append(table)
    return tables


# --- handoff demo.


def demo_agents() -> tuple[Agent, Agent]:
    """Alice and Bob, the demo agents the API also knows by default."""
    by_id = {entry.id: entry.agent for entry in AgentDirectory.default().agents}
    return by_id["alice"], by_id["bob"]


@dataclass
class Demo:
    """A scripted conversation through every transition, printed as it happens."""

    handoff: HandoffClient
    out: Console
    conversation_id: str
    seen: int = 0

    async def customer(self, text: str, bot_answers: int = 0) -> None:
        self.out.print(Text(f"customer › {text}", style="cyan"))
        if self.seen == 0:
            await self.handoff.start_or_message(self.conversation_id, "demo-customer", text)
        else:
            await self.handoff.send_message(self.conversation_id, text)
        await self.show_new(1 + bot_answers)

    async def show_new(self, count: int) -> None:
        """Wait for `count` new transcript entries (the bot answers asynchronously); print them."""
        try:
            async with asyncio.timeout(30):
                while True:
                    entries = await self.handoff.transcript(self.conversation_id, after_seq=self.seen)
                    if len(entries) >= count:
                        break
                    await asyncio.sleep(0.1)
        except TimeoutError:
            fail("no answer from the worker within 30 s; is a worker running on this task queue?")
        for e in entries:
            if e.kind is EntryKind.SYSTEM:
                self.out.print(Text(f"   note · {e.text}", style="italic dim"))
            elif e.kind is not EntryKind.CUSTOMER:
                self.out.print(
                    Text(f"{e.author:>8} › {e.text}", style="green" if e.kind is EntryKind.BOT else "yellow")
                )
        self.seen += len(entries)

    async def agent(self, agent: Agent, action: str, command: Awaitable[Any], new_entries: int) -> None:
        self.out.print(Text(f"{agent.name} {action}", style="bold"))
        await command
        await self.show_new(new_entries)

    async def play(self) -> None:
        h, cid = self.handoff, self.conversation_id
        alice, bob = demo_agents()
        await self.customer("Hello", bot_answers=1)
        await self.customer("How do I reset my password?", bot_answers=1)
        await self.customer("I'd like to talk to a person, please", bot_answers=2)  # answer + note
        await self.agent(alice, "takes over", h.take_over(cid, alice), 1)
        try:
            await h.take_over(cid, bob)
        except HandoffError as refused:
            self.out.print(Text(f"{bob.name} tries to take over too → refused: {refused.message}", style="red"))
        await self.agent(alice, "replies", h.reply(cid, alice, "Hi, I'm Alice. The reset link is on its way."), 1)
        await self.customer("Got it, thank you!")
        await self.agent(alice, "hands the conversation back to the bot", h.hand_back(cid, alice), 1)
        await self.customer("When are you open?", bot_answers=1)
        self.out.print(Text("customer presses “talk to a person”", style="cyan"))
        await h.request_human(cid)
        await self.show_new(1)
        await self.agent(bob, "takes over", h.take_over(cid, bob), 1)
        await self.agent(bob, "replies", h.reply(cid, bob, "Hi, Bob here. Weekdays 8:00 to 18:00 CET."), 1)
        await self.customer("Perfect, that's all. Bye!")
        await self.agent(bob, "closes it as resolved", h.close(cid, bob, Outcome.RESOLVED), 1)
        final = await h.result(cid)
        transcript = await h.transcript(cid)
        self.out.print()
        self.out.print(customer_table(transcript, "What the customer saw (no system notes)"))
        self.out.print(transcript_table(transcript, "What the agents saw (with system notes)"))
        self.out.print(
            f"Conversation {cid}: {final.status.value}, {final.outcome.value if final.outcome else '–'}, "
            f"closed by {fmt_agent(final.closed_by)}."
        )


async def require_worker(handoff: HandoffClient, settings: Settings) -> None:
    """Fail fast when nothing polls the task queue: the demo would otherwise just hang."""
    response = await handoff.temporal.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    if not response.pollers:
        fail(
            f"no worker polls task queue {settings.task_queue!r} on {settings.temporal_address}; "
            "start `handoff up` (or `handoff worker`), or run `handoff demo --embedded`"
        )


@app.command()
def demo(
    embedded: Annotated[
        bool, typer.Option(help="Run against a temporary embedded Temporal and worker instead of a running Handoff.")
    ] = False,
) -> None:
    """Play a scripted conversation through every transition; print what each side saw."""
    out = console()
    conversation_id = f"demo-{uuid.uuid4().hex[:12]}"
    if not embedded:

        async def main() -> None:
            settings = Settings()
            handoff = await connect(settings)
            await require_worker(handoff, settings)
            await Demo(handoff, out, conversation_id).play()

        run(main)
        return
    with tempfile.TemporaryDirectory(prefix="handoff-demo-") as tmp:
        from handoff.devserver import DevServer

        server = DevServer(db_file=Path(tmp) / "temporal.db", log_file=Path(tmp) / "temporal.log")
        out.print(f"Starting a temporary Temporal dev server on {server.address} …")
        try:
            server.start()
        except (RuntimeError, TimeoutError) as e:
            _exit_with(str(e))
        try:
            run(lambda: _embedded_demo(server.address, Path(tmp), out, conversation_id))
        finally:
            server.stop()


async def _embedded_demo(address: str, tmp: Path, out: Console, conversation_id: str) -> None:
    from handoff.store import Store
    from worker import build_worker

    settings = Settings(temporal_address=address, database_url=f"sqlite:///{tmp / 'handoff.db'}")
    handoff = await connect(settings)
    store = Store(settings.database_url)
    try:
        async with build_worker(handoff.temporal, settings.task_queue, store, KnowledgeBaseBot.from_file()):
            await Demo(handoff, out, conversation_id).play()
    finally:
        store.close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
