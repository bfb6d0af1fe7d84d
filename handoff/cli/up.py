"""`handoff up`: an embedded Temporal dev server, the worker and the HTTP API under one data folder.

Start-up checks everything it can before it starts anything (the folder is not in use, the
ports are free, the agents file and knowledge base are valid); Ctrl-C or SIGTERM then stops the
API, the worker and the dev server in that order, and a second signal stops them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from temporalio.service import RPCError

from handoff.bot import KnowledgeBaseBot
from handoff.cli.main import REPORTED, LogLevel, configure_logging, console, fail, print_error, report
from handoff.cli.servers import (
    bind,
    check_free,
    embedded_server,
    embedded_settings,
    print_demo_agents,
    refuse_public_demo_agents,
    serve_api,
    serve_until_stopped,
    start_embedded,
)
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.local_secrets import PRIVATE_UMASK, make_private_dir

if TYPE_CHECKING:
    from handoff.devserver import DevServer


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
        table.add_row("Agent console", f"{api}/console/")
        table.add_row("Chat widget", f"{api}/chat/")
        table.add_row("Temporal gRPC", self.temporal)
        table.add_row("Temporal UI", f"http://127.0.0.1:{self.ui_port}" if self.ui_port else "off")
        return table

    def data_line(self) -> str:
        # Outside the table: a long path would be cut to the terminal's width there, and a
        # path is something to copy whole.
        return f"Data in {self.data_dir} (temporal.db, handoff.db, temporal.log)"


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

    try:
        refuse_public_demo_agents(host, Settings())
    except REPORTED as e:
        report(e)
    data_dir = data_dir.resolve()
    # Transcripts, keys and secrets: the folder and everything in it are the owner's only.
    previous_umask = os.umask(PRIVATE_UMASK)
    try:
        make_private_dir(data_dir)
        with data_dir_lock(data_dir):
            check_free("127.0.0.1", temporal_port, "Temporal gRPC")
            if ui_port:
                check_free("127.0.0.1", ui_port, "Temporal UI")
            api_socket = bind(host, port, "HTTP API")
            server = embedded_server(data_dir, temporal_port, ui_port or None)
            settings = embedded_settings(data_dir, server)
            # A bad agents file or knowledge base is reported before anything starts.
            api_app = create_app(settings)
            KnowledgeBaseBot.from_file(settings.knowledge_base)
            addresses = UpAddresses(host, port, server.address, ui_port or None, data_dir)
            configure_logging(log_level)
            code = run_up(server, settings, api_app, api_socket, addresses, log_level)
    except REPORTED as e:
        report(e)
    finally:
        os.umask(previous_umask)
    raise typer.Exit(code)


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


def run_up(
    server: DevServer, settings: Settings, api_app: Any, api_socket: socket.socket, addresses: UpAddresses, log: str
) -> int:
    """Start the dev server, serve until stopped, stop the dev server; the exit code."""
    out = console()
    try:
        with stop_signals_raise():
            start_embedded(server, out, "the Temporal dev server")
            failures = asyncio.run(serve(settings, api_app, api_socket, addresses, log))
    except (KeyboardInterrupt, Terminated):
        failures = []
    except SystemExit:
        # uvicorn exits the process when the app's start-up fails; it has logged why.
        failures = ["the HTTP API did not start (see the log above)"]
    finally:
        api_socket.close()
        with force_kill_on_signal(server):
            server.stop()
    out.print("Handoff stopped." if not failures else "Handoff stopped after a failure.")
    for failure in failures:
        print_error(failure)
    return 1 if failures else 0


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


@contextlib.contextmanager
def force_kill_on_signal(server: DevServer) -> Iterator[None]:
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


async def serve(
    settings: Settings, api_app: Any, api_socket: socket.socket, addresses: UpAddresses, log_level: str
) -> list[str]:
    """The worker and the HTTP API until a signal or a failure; the failures."""
    from worker import run_worker

    out = console()
    stop = asyncio.Event()
    worker_stop = asyncio.Event()
    api = serve_api(api_app, api_socket, log_level, stop)
    worker_task = asyncio.ensure_future(run_worker(settings, worker_stop))
    if await api.started():
        out.print(addresses.table())
        out.print(addresses.data_line(), soft_wrap=True, highlight=False)
        print_demo_agents(out, settings)
        open_count = await open_conversations(settings)
        if open_count:
            out.print(f"Resuming {open_count} open conversation(s).")
        out.print("Press Ctrl-C to stop.")

    def stop_all() -> None:
        api.stop()
        worker_stop.set()

    return await serve_until_stopped({"worker": worker_task, "HTTP API": api.task}, stop, stop_all)


RUNNING_CONVERSATIONS = "WorkflowType = 'Conversation' AND ExecutionStatus = 'Running'"


async def open_conversations(settings: Settings) -> int:
    """How many conversations Temporal is running (the worker resumes them all)."""
    try:
        handoff = await HandoffClient.connect(settings)
        counted = await handoff.temporal.count_workflows(RUNNING_CONVERSATIONS)
        return counted.count
    except (RuntimeError, RPCError):
        return 0
