"""What `up`, `worker` and `api` share to run servers: ports bound before anything starts,
SIGINT/SIGTERM turned into a clean stop, the HTTP API under uvicorn, the embedded dev server
and the demo agents' banner."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from handoff.agents import AgentDirectory
from handoff.cli.main import fail
from handoff.codec import load_keys
from handoff.config import Settings
from handoff.customer_tokens import load_secret

if TYPE_CHECKING:
    import uvicorn

    from handoff.devserver import DevServer


# --- Ports.


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


# --- Stopping.


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


# --- The HTTP API.


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

    # An idle connection is kept longer than clients keep theirs (httpx 5 s, browsers' reuse
    # retried): with equal timeouts a client can send on a connection the server is closing at
    # that moment and get a connection error for a request that never arrived.
    config = uvicorn.Config(
        app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=10, timeout_keep_alive=KEEP_ALIVE_SECONDS
    )
    return Server(config)


KEEP_ALIVE_SECONDS = 30
"""How long `handoff api` keeps an idle HTTP connection open (uvicorn's default is 5 s)."""


@dataclass
class ServedApi:
    """The HTTP API serving on a socket bound beforehand; see `serve_api`."""

    server: uvicorn.Server
    task: asyncio.Future[Any]

    async def started(self) -> bool:
        """Whether the API serves (False: it ended during start-up)."""
        while not self.server.started:
            if self.task.done():
                return False
            await asyncio.sleep(0.05)
        return True

    def stop(self) -> None:
        self.server.should_exit = True

    def force_exit(self) -> None:
        self.server.force_exit = True


def serve_api(api_app: Any, sock: socket.socket, log_level: str, stop: asyncio.Event) -> ServedApi:
    """Start serving `api_app` on `sock`; Ctrl-C or SIGTERM sets `stop`, a second one cuts open requests short."""
    server = api_server(api_app, log_level)
    served = ServedApi(server, asyncio.ensure_future(server.serve(sockets=[sock])))
    install_stop_handlers(stop, on_second=served.force_exit)
    return served


def refuse_public_demo_agents(host: str, settings: Settings) -> None:
    """The demo agents' tokens are public: serving them beyond this machine would let anyone in."""
    if settings.agents_file is None and not is_loopback(host):
        fail(
            f"refusing to listen on {host} with the demo agents, whose tokens are public: "
            "set HANDOFF_AGENTS_FILE to your team's agents file, or listen on 127.0.0.1"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def print_demo_agents(out: Console, settings: Settings) -> None:
    """The demo agents and their tokens, when no agents file is configured (they are public)."""
    if settings.agents_file is not None:
        return
    table = Table(title="Demo agents (set HANDOFF_AGENTS_FILE to use your own)", title_justify="left")
    table.add_column("Agent")
    table.add_column("Name")
    table.add_column("Token (Authorization: Bearer …)")
    for entry in AgentDirectory.default().agents:
        table.add_row(entry.id, entry.name, entry.token)
    out.print(table)


# --- The embedded Temporal dev server, with Handoff's database beside it.


def embedded_server(folder: Path, port: int | None = None, ui_port: int | None = None) -> DevServer:
    """A dev server keeping temporal.db and temporal.log in `folder` (port None: one the server
    is sure to have, see `DevServer`; no UI by default)."""
    from handoff.devserver import DevServer

    return DevServer(
        db_file=folder / "temporal.db",
        port=0 if port is None else port,
        ui_port=ui_port,
        log_file=folder / "temporal.log",
    )


def embedded_settings(folder: Path, server: DevServer) -> Settings:
    """Settings for `server` and a SQLite handoff.db in the same folder, whose secrets (the
    encryption key, the customer token secret) are made there unless configured: the embedded
    install is the only place Handoff makes its own secrets (see handoff/local_secrets.py)."""
    settings = Settings(temporal_address=server.address, database_url=f"sqlite:///{folder / 'handoff.db'}")
    load_keys(settings, create=True)
    load_secret(settings, create=True)
    return settings


def start_embedded(server: DevServer, out: Console, what: str, *, log_hint: bool = True) -> None:
    """Start the dev server (blocking until it serves); a failure names its log file if `log_hint`."""
    out.print(f"Starting {what} on {server.address} …")
    try:
        server.start()
    except (RuntimeError, TimeoutError) as e:
        fail(f"{e}; see {server.log_file}" if log_hint else str(e))
