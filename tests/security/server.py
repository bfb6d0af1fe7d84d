"""The API app served over real HTTP inside the test process, on the test's event loop.

On the test loop, because the session's Temporal client and worker live there: the app calls
Temporal from the loop the worker runs on, exactly as `handoff up` does. Logging is left to
the test (no uvicorn log config), so uvicorn's access and error logs reach `caplog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI

from handoff.cli.servers import KEEP_ALIVE_SECONDS


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest keeps its own signal handlers


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` on a free localhost port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = _Server(
        uvicorn.Config(
            app, log_config=None, lifespan="on", timeout_graceful_shutdown=5, timeout_keep_alive=KEEP_ALIVE_SECONDS
        )
    )
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the API server stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
