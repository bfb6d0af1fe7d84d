"""One answer to port races, for every server a test starts.

Picking a free port (bind to port 0, read it, close) and handing the number to a server leaves
a gap in which another process on this shared machine can take the port. So:
- where we can, the socket itself is handed over (`tests/security/server.py` gives uvicorn a
  socket bound to port 0), or held for the whole test (`refusing_port`);
- servers that need a port number (the `temporal` CLI, PostgreSQL, `handoff up`) are started
  through `on_fresh_ports`: a start that fails because a port was taken (`PortTaken`) is tried
  again on new ports;
- a server restarted on the same port (its clients know the address) goes through
  `on_the_same_port`: the restart is retried until the port is free again and it binds.
A server of someone else's answering on "our" port counts as taken (`listener_is_ours`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import psutil

T = TypeVar("T")

FRESH_PORT_ATTEMPTS = 5
SAME_PORT_TIMEOUT = 120.0


class PortTaken(Exception):
    """The server could not have the port it was given: another process holds it."""


def free_port() -> int:
    """A port free at this instant (it may be taken before it is used: see `on_fresh_ports`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port bound by the test and not listening: every connection is refused at once, and
    no other process can take it while the test holds it."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    try:
        yield int(held.getsockname()[1])
    finally:
        held.close()


def listener_is_ours(port: int, root_pid: int | None = None) -> bool:
    """True if the process listening on 127.0.0.1:`port` is `root_pid` (default: this test
    process) or one of its descendants; False if nobody or a stranger listens there."""
    root = psutil.Process(os.getpid() if root_pid is None else root_pid)
    ours = {root.pid, *(p.pid for p in root.children(recursive=True))}
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid in ours
        for c in psutil.net_connections(kind="tcp")
    )


def someone_listens(port: int) -> bool:
    """True if any process listens on `port` (e.g. after a start that failed: was it taken?)."""
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in psutil.net_connections(kind="tcp")
    )


async def on_fresh_ports(count: int, start: Callable[[list[int]], Awaitable[T]]) -> T:
    """`start(ports)` on `count` fresh ports; again on new ones while it raises `PortTaken`."""
    for attempt in range(1, FRESH_PORT_ATTEMPTS + 1):
        ports = [free_port() for _ in range(count)]
        try:
            return await start(ports)
        except PortTaken:
            if attempt == FRESH_PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def on_the_same_port(start: Callable[[], Awaitable[T]], timeout: float = SAME_PORT_TIMEOUT) -> T:
    """`start()` again while it raises `PortTaken` (e.g. the old process's socket is not
    released yet, or a stranger holds the port for a while), up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await start()
        except PortTaken:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
