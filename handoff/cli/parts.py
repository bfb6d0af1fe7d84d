"""`handoff worker` and `handoff api`: one part of Handoff against a configured Temporal and
database (HANDOFF_TEMPORAL_ADDRESS, HANDOFF_DATABASE_URL), as deployments run them."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from handoff.cli.connections import connect
from handoff.cli.format import redacted
from handoff.cli.main import REPORTED, LogLevel, configure_logging, console, exit_with, fail, report, run
from handoff.cli.servers import (
    bind,
    install_stop_handlers,
    print_demo_agents,
    refuse_public_demo_agents,
    serve_api,
    serve_until_stopped,
)
from handoff.config import Settings


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
        refuse_public_demo_agents(host, settings)
        api_app = create_app(settings)
        sock = bind(host, port, "HTTP API")
    except REPORTED as e:
        report(e)

    async def main() -> None:
        stop = asyncio.Event()
        served = serve_api(api_app, sock, log_level, stop)
        if await served.started():
            url = f"http://{host}:{port}"
            console().print(
                f"HTTP API on {url} (docs at /docs), agent console at {url}/console/, chat widget at {url}/chat/, "
                f"Temporal {settings.temporal_address}."
            )
            print_demo_agents(console(), settings)
        failures = await serve_until_stopped({"HTTP API": served.task}, stop, served.stop)
        if failures:
            fail("; ".join(failures))

    try:
        run(main)
    except SystemExit as e:
        if e.code in (0, None):
            raise
        # uvicorn exits the process when the app's start-up fails; it has logged why.
        exit_with("the HTTP API did not start (see the log above)")
    finally:
        sock.close()
