"""Fault-injection harness: real worker processes, real dev servers, real databases.

Every fault test needs the same few moves, so they live here once:
- `WorkerProcess`: `python worker.py` as a subprocess configured only through its
  environment (as in production), so SIGKILL really kills a process holding activities;
- `start_server`/`restart_server`: a `handoff.devserver.DevServer` we can stop, kill and
  start again on the same SQLite file and port;
- history probes (`runs`, `pending_activities`, `activity_attempts`), so a test waits for what
  the server says happened instead of sleeping and hoping;
- database probes and faults (`recorded`, `sqlite_write_lock`, `PrivatePostgres`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil
import sqlalchemy as sa
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from handoff.client import HandoffClient, workflow_id
from handoff.converter import data_converter
from handoff.devserver import DevServer
from handoff.models import ConversationSummary, Fact, TranscriptEntry
from handoff.store import Store
from tests.helpers import eventually
from tests.ports import PortTaken, free_port, listener_is_ours, on_fresh_ports, on_the_same_port

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


async def wait_until(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], what: str, timeout: float = 60.0
) -> T:
    """Poll `probe` until `until(value)`; fail naming `what` and the last value after `timeout`.

    The bound is generous on purpose: recovering from a killed worker waits out Temporal's
    activity timeouts (10 s for BotAnswer, 30 s for RecordFacts) on a shared, noisy machine.
    """
    return await eventually(probe, until, timeout=timeout, interval=0.1, what=what)


# --- Worker processes.


@dataclass
class WorkerProcess:
    """`python worker.py` on one task queue; `kill()` is a real SIGKILL."""

    temporal_address: str
    task_queue: str
    database_url: str
    log_file: Path
    slow_bot: bool = False  # tests/faults/slow_worker.py: never answers SLOW_QUESTION
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "worker not started"
        return self.process.pid

    @property
    def identity(self) -> str:
        """The identity Temporal records for this worker (the SDK default: pid@host)."""
        return f"{self.pid}@{socket.gethostname()}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        env = {
            **os.environ,
            "HANDOFF_TEMPORAL_ADDRESS": self.temporal_address,
            "HANDOFF_TASK_QUEUE": self.task_queue,
            "HANDOFF_DATABASE_URL": self.database_url,
        }
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.slow_worker"] if self.slow_bot else [sys.executable, "worker.py"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with code {self.process.returncode}; see {self.log_file}")
            if b"worker polling" in self.log_file.read_bytes()[offset:]:
                return
            time.sleep(0.05)
        raise TimeoutError(f"worker not polling after {timeout}s; see {self.log_file}")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight activities and sticky workflows are lost."""
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: the worker's own clean shutdown."""
        if not self.alive:
            return
        assert self.process is not None
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss(self) -> int:
        """Resident memory of the worker process, in bytes."""
        return int(psutil.Process(self.pid).memory_info().rss)


@dataclass
class Workers:
    """Every worker process a test starts, so teardown can kill the survivors."""

    temporal_address: str
    task_queue: str
    database_url: str
    log_dir: Path
    started: list[WorkerProcess] = field(default_factory=list)

    async def start(self, *, slow_bot: bool = False, temporal_address: str | None = None) -> WorkerProcess:
        """A new worker process, polling once this returns; `temporal_address` e.g. a `TcpProxy`."""
        worker = WorkerProcess(
            temporal_address or self.temporal_address,
            self.task_queue,
            self.database_url,
            self.log_dir / f"worker-{len(self.started) + 1}.log",
            slow_bot,
        )
        self.started.append(worker)
        await asyncio.to_thread(worker.start)
        return worker

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()


# --- The Temporal dev server.


class InMemoryDevServer(DevServer):
    """The same `temporal server start-dev`, without its SQLite file (`db_file` is unused).

    For the tests that never restart the server: on this machine it runs conversations about
    twice as fast as the file-backed one, whose throughput is bound by SQLite's commits.
    """

    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("--db-filename")
        return cmd[:at] + cmd[at + 2 :]


def _start_or_port_taken(server: DevServer) -> None:
    """Start `server` (blocking until it serves); `PortTaken` if another process had its port
    (it says so in its log) or a stranger answers there instead of it."""
    log = server.log_file
    assert log is not None, "a harness dev server keeps a log"
    offset = log.stat().st_size if log.exists() else 0
    try:
        server.start()
    except (RuntimeError, TimeoutError):
        server.kill()
        if b"address already in use" in log.read_bytes()[offset:]:
            raise PortTaken(f"temporal dev server: port {server.port} (or one of its own) was taken") from None
        raise
    assert server.process is not None
    if not listener_is_ours(server.port, server.process.pid):
        server.kill()
        raise PortTaken(f"another process answers on {server.address}")


async def start_server(server: DevServer, *, same_port: bool = False) -> None:
    """Start the dev server on a fresh port, or (a restart its clients must find again) on its
    own port, retried until it binds. See tests/ports.py."""

    # DevServer.start probes with asyncio.run, which needs a thread without a running loop.
    async def on(ports: list[int]) -> None:
        server.port = ports[0]
        await asyncio.to_thread(_start_or_port_taken, server)

    if same_port:
        await on_the_same_port(lambda: on([server.port]))
    else:
        await on_fresh_ports(1, on)


@contextlib.asynccontextmanager
async def file_dev_server(directory: Path, kind: type[DevServer] = DevServer) -> AsyncIterator[DevServer]:
    """A dev server of its own on a SQLite file in `directory` (so it keeps its history across a
    restart; `InMemoryDevServer` keeps none), started on a fresh port and stopped on exit."""
    server = kind(directory / "temporal.db", log_file=directory / "server.log")
    await start_server(server)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def restart_server(server: DevServer, *, kill: bool) -> None:
    """Stop (SIGTERM) or kill (SIGKILL) the dev server, then start it on the same file and port."""
    await asyncio.to_thread(server.kill if kill else server.stop)
    await start_server(server, same_port=True)


async def connect(server: DevServer, task_queue: str, store: Store | None = None) -> HandoffClient:
    client = await Client.connect(server.address, data_converter=data_converter())
    return HandoffClient(client, task_queue, store)


class TcpProxy:
    """A TCP forwarder to the server that the test can cut: a network partition between one
    worker and Temporal, while the test itself still talks to the server directly."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.address = ""
        self.is_cut = False
        self.is_deaf = False
        self._server: asyncio.Server | None = None
        self._connections: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.is_cut or self.is_deaf:
            client_writer.transport.abort()
            return
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self._connections += [client_writer, server_writer]

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, to_server: bool) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(65536):
                    if to_server and self.is_deaf:
                        continue
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pipe(client_reader, server_writer, True), pipe(server_reader, client_writer, False))

    def deafen_server(self) -> None:
        """The server hears nothing more from the worker, and the worker still hears the server.

        Unlike `cut`, this cannot lose a task the server has already handed out: the server marks
        an activity started as it sends the poll response, so a full cut right after seeing the
        start can drop the response on its way and the worker never runs the activity. Here the
        response still arrives, the activity runs, and only its result is lost."""
        self.is_deaf = True

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self.is_cut = True
        for writer in self._connections:
            writer.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# --- What the server's history says.


async def runs(handoff: HandoffClient, conversation_id: str) -> list[list[HistoryEvent]]:
    """The history of every run of a conversation, first to latest (continue-as-new chain)."""
    wid = workflow_id(conversation_id)
    description = await handoff.handle(conversation_id).describe()
    run_id = description.raw_description.workflow_execution_info.first_run_id or description.run_id
    histories: list[list[HistoryEvent]] = []
    while run_id:
        history = await handoff.temporal.get_workflow_handle(wid, run_id=run_id).fetch_history()
        events = list(history.events)
        histories.append(events)
        last = events[-1] if events else None
        if last is not None and last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        else:
            run_id = ""
    return histories


@dataclass(frozen=True)
class Pending:
    """An activity the server has scheduled and not seen finish, in run `run_id`."""

    run_id: str
    activity_id: str
    activity_type: str
    started: bool  # dispatched to a worker (not merely scheduled or backing off)
    attempt: int
    worker: str  # identity of the worker the last attempt was dispatched to


async def pending_activities(handoff: HandoffClient, conversation_id: str) -> list[Pending]:
    description = await handoff.handle(conversation_id).describe()
    return [
        Pending(
            run_id=description.run_id,
            activity_id=p.activity_id,
            activity_type=p.activity_type.name,
            started=p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
            attempt=p.attempt,
            worker=p.last_worker_identity,
        )
        for p in description.raw_description.pending_activities
    ]


async def wait_activity_started(handoff: HandoffClient, conversation_id: str, activity_type: str) -> Pending:
    """Wait until an `activity_type` activity is in flight (dispatched to a worker, not finished)."""
    found = await wait_until(
        lambda: pending_activities(handoff, conversation_id),
        lambda pending: any(p.activity_type == activity_type and p.started for p in pending),
        f"{activity_type} in flight",
    )
    return next(p for p in found if p.activity_type == activity_type and p.started)


@dataclass(frozen=True)
class Attempt:
    """How one activity finally completed: its attempt number and the worker that ran it."""

    activity_type: str
    attempt: int
    identity: str


async def completion(handoff: HandoffClient, conversation_id: str, pending: Pending) -> Attempt | None:
    """How the activity that was `pending` completed, from its run's history (None if not yet)."""
    handle = handoff.temporal.get_workflow_handle(workflow_id(conversation_id), run_id=pending.run_id)
    events = list((await handle.fetch_history()).events)
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_id == pending.activity_id
    }
    completed = {
        e.activity_task_completed_event_attributes.started_event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
    }
    for e in events:
        if e.event_id in completed:
            attrs = e.activity_task_started_event_attributes
            kind = scheduled[attrs.scheduled_event_id].activity_type.name
            return Attempt(activity_type=kind, attempt=attrs.attempt, identity=attrs.identity)
    return None


async def draining_for_continue_as_new(handoff: HandoffClient, conversation_id: str, after_events: int) -> bool:
    """True when the latest run has decided to continue as new but not done it yet.

    The workflow checks the history length at each workflow task; once a task has started at
    or past `after_events`, it stops starting activities and waits for those in flight.
    """
    events = (await runs(handoff, conversation_id))[-1]
    if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW for e in events):
        return False
    completed_starts = {
        e.workflow_task_completed_event_attributes.started_event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    }
    return any(started >= after_events for started in completed_starts)


# --- What reached the database.


def fact_signature(facts: list[Fact]) -> list[tuple[str, str, str, str, str]]:
    """A fact list without timestamps: what must be identical with and without a fault."""
    return [
        (
            f.kind.value,
            f.entry.kind.value if f.entry else "",
            f.entry.text if f.entry else "",
            f.agent.id if f.agent else "",
            f.outcome.value if f.outcome else "",
        )
        for f in facts
    ]


@contextlib.contextmanager
def sqlite_write_lock(db_file: Path) -> Iterator[None]:
    """Hold SQLite's write lock (BEGIN EXCLUSIVE) from another connection.

    The worker's RecordFacts then blocks in SQLite's busy wait: an activity held in flight for
    as long as the test wants, deterministically. Readers still read (WAL).
    """
    conn = sqlite3.connect(db_file, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


# --- A private PostgreSQL, never the machine's shared one.


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian layout), if any."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return candidates[-1].parent if candidates else None


@dataclass
class PrivatePostgres:
    """A throwaway PostgreSQL cluster on its own port and data directory.

    PostgreSQL refuses to run as root, so under root it runs as the `postgres` system user, in
    a temporary directory handed to that user. Stopping it is the database outage.
    """

    bin_dir: Path
    port: int = field(default_factory=free_port)
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="handoff-pg-")))

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.base)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def start_once(self) -> None:
        """`pg_ctl start` on `port`; `PortTaken` if the server could not bind it."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} -c fsync=off"
        log = self.base / "log"
        offset = log.stat().st_size if log.exists() else 0
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(log), "-w", "start")
        except subprocess.CalledProcessError:
            if b"could not bind" in log.read_bytes()[offset:]:
                raise PortTaken(f"PostgreSQL: port {self.port} was taken") from None
            raise

    async def start(self) -> None:
        """First start on a fresh port (see tests/ports.py)."""

        async def on(ports: list[int]) -> None:
            self.port = ports[0]
            await asyncio.to_thread(self.start_once)

        await on_fresh_ports(1, on)

    async def restart(self) -> None:
        """Start again after `stop()`, on the same port (the workers know it), until it binds."""
        await on_the_same_port(lambda: asyncio.to_thread(self.start_once))

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def is_up(self) -> bool:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
            return True
        except sa.exc.OperationalError:
            return False
        finally:
            engine.dispose()

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


# --- A lab: one task queue, one database, its worker processes.


@dataclass
class Lab:
    """Everything one fault scenario runs on, isolated from the others on the same server."""

    handoff: HandoffClient
    store: Store
    database_url: str
    db_file: Path | None  # the SQLite file, when the database is one
    workers: Workers

    def close(self) -> None:
        self.workers.kill_all()
        self.store.close()


async def open_lab(server: DevServer, directory: Path, name: str, *, database_url: str | None = None) -> Lab:
    task_queue = f"faults-{name}-{uuid.uuid4().hex[:8]}"
    db_file = None if database_url else directory / "handoff.db"
    url = database_url or f"sqlite:///{db_file}"
    store = Store(url)  # creates the tables before any worker starts
    handoff = await connect(server, task_queue, store)
    return Lab(handoff, store, url, db_file, Workers(server.address, task_queue, url, directory))


@dataclass(frozen=True)
class Played:
    """The end of one run of a script: what the users saw, what was recorded, how many runs."""

    conversation_id: str
    summary: ConversationSummary
    transcript: list[TranscriptEntry]
    facts: list[Fact]
    runs: int


async def played(lab: Lab, conversation_id: str, summary: ConversationSummary) -> Played:
    return Played(
        conversation_id=conversation_id,
        summary=summary,
        transcript=await lab.handoff.transcript(conversation_id),
        facts=lab.store.facts(conversation_id),
        runs=len(await runs(lab.handoff, conversation_id)),
    )


def entries(transcript: list[TranscriptEntry]) -> list[tuple[int, str, str, str]]:
    return [(e.seq, e.kind.value, e.author, e.text) for e in transcript]


def assert_recorded_as(store: Store, conversation_ids: list[str], reference: Played) -> None:
    """Every conversation's facts and stored transcript equal the reference's: nothing lost, nothing twice."""
    expected = fact_signature(reference.facts)
    for conversation_id in conversation_ids:
        facts = store.facts(conversation_id)
        assert fact_signature(facts) == expected, conversation_id
        assert [f.number for f in facts] == list(range(1, len(facts) + 1)), conversation_id


def assert_same_records(run: Played, reference: Played) -> None:
    """What the database holds and the final state equal the fault-free reference's."""
    # The same facts, numbered 1..n without gap or repeat...
    assert fact_signature(run.facts) == fact_signature(reference.facts)
    assert [f.number for f in run.facts] == list(range(1, len(run.facts) + 1))
    # ... so the transcript kept for after Temporal's retention is the reference's too.
    stored = [(e.seq, e.kind.value, e.author, e.text) for f in run.facts if (e := f.entry) is not None]
    assert stored == entries(reference.transcript)
    # The final state, as the workflow returned it.
    for field_name in ("status", "outcome", "closed_by", "agent", "last_fact"):
        assert getattr(run.summary, field_name) == getattr(reference.summary, field_name), field_name


def assert_same_conversation(run: Played, reference: Played) -> None:
    """Nothing lost, nothing twice: the run ended exactly as the fault-free reference did."""
    assert_same_records(run, reference)
    # What the customer and the agents see, entry by entry (system notes included), read
    # from the workflow at the end (a query: Temporal replays the history to answer it).
    assert entries(run.transcript) == entries(reference.transcript)
