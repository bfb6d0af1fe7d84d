"""The `handoff` command line, against real servers.

The read commands run in-process (typer's CliRunner, in a thread so the session worker keeps
polling) against the session's Temporal dev server, worker and SQLite store; `handoff up` runs
as a real subprocess on free ports: served, driven over HTTP, stopped with SIGTERM, restarted
on the same data folder, and the open conversation is still there and still answers.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import psutil
import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner, Result

from handoff.cli import app
from handoff.cli.history import HistoryReader
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.converter import data_converter
from handoff.models import Agent, Outcome
from handoff.store import Store
from tests.encryption_keys import TEST_KEYS
from tests.helpers import eventually, new_id, wait_for_entries
from tests.ports import PortTaken, on_fresh_ports, on_the_same_port, refusing_port

SECRET = "4111-1111-1111-1111"  # stands for personal data a customer typed


def invoke(env: dict[str, str | None], *args: str) -> Result:
    # Wide enough that no table cell wraps.
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", **env})


async def cli(env: dict[str, str | None], *args: str) -> Result:
    """Run a command in a thread: it has its own event loop; the session worker keeps running."""
    return await asyncio.to_thread(invoke, env, *args)


def cells(output: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    for line in output.splitlines():
        parts = [p.strip() for p in re.split(r"[│┃]", line)[1:-1]]
        if parts and parts[0] == first:
            return parts
    raise AssertionError(f"no row {first!r} in:\n{output}")


def failed_cleanly(result: Result, message: str) -> None:
    """Exit code 1, the message on one line, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


@pytest.fixture
def env(temporal_env: WorkflowEnvironment, worker: Worker, store: Store) -> dict[str, str | None]:
    return {
        "HANDOFF_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "HANDOFF_TASK_QUEUE": worker.task_queue,
        "HANDOFF_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
    }


async def test_read_commands_follow_a_conversation(env: dict[str, str | None], handoff: HandoffClient) -> None:
    cid = new_id()
    agent = Agent(id=f"agent-cli-{new_id()[:8]}", name="Casey Cli")
    await handoff.start_or_message(cid, "customer-cli", f"My card number is {SECRET}")
    await wait_for_entries(handoff, cid, 2)
    await handoff.request_human(cid)
    await wait_for_entries(handoff, cid, 3)

    waiting = await eventually(
        lambda: cli(env, "conversations", "list", "--status", "waiting", "--limit", "1000"),
        lambda r: cid in r.output,
    )
    assert cells(waiting.output, cid)[1] == "waiting"

    await handoff.take_over(cid, agent)
    await handoff.reply(cid, agent, "Let me look into that for you.")
    mine = await eventually(lambda: cli(env, "conversations", "list", "--agent", agent.id), lambda r: cid in r.output)
    assert cells(mine.output, cid)[1:3] == ["human", agent.id]

    live = await cli(env, "conversations", "show", cid)
    assert live.exit_code == 0, live.output
    assert "live, from the running workflow" in live.output
    assert cells(live.output, "Status")[1] == "human"
    assert cells(live.output, "Agent")[1] == f"Casey Cli ({agent.id})"
    assert cells(live.output, "3")[2:] == ["system", "system", "The customer asked for a person"]
    assert cells(live.output, "4")[2:] == ["system", "system", "Casey Cli joined the conversation"]
    assert cells(live.output, "5")[2:] == ["agent", "Casey Cli", "Let me look into that for you."]

    await handoff.close(cid, agent, Outcome.RESOLVED)
    await handoff.result(cid)  # completed: everything is recorded

    stored = await cli(env, "conversations", "show", cid)
    assert stored.exit_code == 0, stored.output
    assert "from the database" in stored.output
    assert cells(stored.output, "Status")[1] == "closed"
    assert cells(stored.output, "Outcome")[1] == "resolved"
    assert cells(stored.output, "6")[4] == "Casey Cli closed the conversation as resolved"

    history = await cli(env, "conversations", "history", cid)
    assert history.exit_code == 0, history.output
    events = table_rows(history.output, 5)
    names = {(row[2], row[3]) for row in events}
    for expected in [
        ("WorkflowExecutionStarted", "Conversation"),
        ("WorkflowExecutionSignaled", "CustomerMessage"),
        ("WorkflowExecutionSignaled", "RequestHuman"),
        ("WorkflowExecutionUpdateAccepted", "TakeOver"),
        ("WorkflowExecutionUpdateCompleted", "Reply"),
        ("WorkflowExecutionUpdateCompleted", "Close"),
        ("ActivityTaskScheduled", "BotAnswer"),  # its messages are signals (an update: a local activity)
        ("ActivityTaskCompleted", "RecordFacts"),
        ("WorkflowExecutionCompleted", ""),
    ]:
        assert expected in names, (expected, history.output)
    signal_row = next(r for r in events if r[3] == "CustomerMessage")
    assert signal_row[4] == f"text: {len(f'My card number is {SECRET}')} chars"
    # Payloads are summarised, never printed: no message text, no customer id.
    assert SECRET not in history.output
    assert "Let me look into" not in history.output
    assert "customer-cli" not in history.output
    assert "workflow-task events hidden" in history.output

    stats = await cli(env, "stats", "--agent", agent.id)
    assert stats.exit_code == 0, stats.output
    for label, value in [
        ("Conversations started", "1"),
        ("Closed as resolved", "1"),
        ("Closed as not resolved", "0"),
        ("Resolution rate", "100.0%"),
        ("Requests for a person", "1"),
        ("Take-overs", "1"),
        ("Hand-backs", "0"),
        ("Messages", "customer 1, bot 1, agent 1"),
    ]:
        assert cells(stats.output, label)[1] == value, (label, stats.output)
    assert cells(stats.output, "Waiting time")[1].endswith("(n=1)")
    assert cells(stats.output, agent.id)[1:5] == ["Casey Cli", "1", "0", "1"]  # take-overs, hand-backs, resolved

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    later = await cli(env, "stats", "--agent", agent.id, "--since", tomorrow)
    assert cells(later.output, "Conversations started")[1] == "0"
    assert "Per agent: nothing recorded" in later.output


async def test_history_shows_every_run_of_a_conversation_that_continued_as_new(
    env: dict[str, str | None], handoff: HandoffClient
) -> None:
    cid = new_id()
    await handoff.start_or_message(cid, "customer-can", "Hello", continue_as_new_after_events=30)
    for n, text in enumerate(["Where is my order?", "I want a refund", "thanks"], start=2):
        await handoff.send_message(cid, text)
        await wait_for_entries(handoff, cid, 2 * n)
    # Every run is listed once Temporal's visibility has caught up: all four messages are there.
    history = await eventually(
        lambda: cli(env, "conversations", "history", cid),
        lambda r: sum(1 for row in table_rows(r.output, 5) if row[3] == "CustomerMessage") == 4,
        timeout=30,
    )
    assert history.exit_code == 0, history.output
    headings = [line for line in history.output.splitlines() if line.startswith("Run ")]
    assert len(headings) >= 2 and "continued_as_new" in headings[0], history.output
    events = table_rows(history.output, 5)
    assert any(r[2] == "WorkflowExecutionContinuedAsNew" and r[4].startswith("new run ") for r in events)
    started = [r for r in events if r[2] == "WorkflowExecutionStarted"]
    assert started[0][4] == "new conversation"
    assert started[1][4].startswith("continued from run ") and "carried state:" in started[1][4]
    assert "refund" not in history.output and "customer-can" not in history.output


async def test_errors_are_one_line_and_exit_1(env: dict[str, str | None], tmp_path: Path) -> None:
    failed_cleanly(await cli(env, "conversations", "show", "no-such-conversation"), "no conversation")
    failed_cleanly(await cli(env, "conversations", "history", "no-such-conversation"), "no conversation")
    failed_cleanly(await cli(env, "stats", "--since", "last tuesday"), "cannot read 'last tuesday'")
    missing = {**env, "HANDOFF_DATABASE_URL": f"sqlite:///{tmp_path / 'nothing.db'}"}
    failed_cleanly(await cli(missing, "conversations", "list"), "no database at")
    with refusing_port() as port:
        unreachable = {**env, "HANDOFF_TEMPORAL_ADDRESS": f"127.0.0.1:{port}"}
        failed_cleanly(await cli(unreachable, "conversations", "history", "x"), "cannot reach Temporal")


async def test_embedded_demo_plays_every_transition() -> None:
    result = await cli({}, "demo", "--embedded")
    assert result.exit_code == 0, result.output
    out = result.output
    customer_part, agent_part = out.split("What the customer saw")[1].split("What the agents saw")
    notes = [
        "The customer asked for a person",
        "Alice Martin joined the conversation",
        "Alice Martin left the conversation",
        "Bob Stone joined the conversation",
        "Bob Stone closed the conversation as resolved",
    ]
    for note in notes:
        assert note in agent_part
        assert note not in customer_part
    assert agent_part.count("The customer asked for a person") == 2
    assert "refused: the conversation is held by Alice Martin" in out
    said = [row[1:] for row in table_rows(customer_part, 3)]
    assert said == [
        ["you", "Hello"],
        ["bot", "Hello! How can I help you today?"],
        ["you", "How do I reset my password?"],
        ["bot", said[3][1]],
        ["you", "I'd like to talk to a person, please"],
        ["bot", "Sure, I'm connecting you with a member of our team. Someone will be with you shortly."],
        ["Alice Martin", "Hi, I'm Alice. The reset link is on its way."],
        ["you", "Got it, thank you!"],
        ["you", "When are you open?"],
        ["bot", said[9][1]],
        ["Bob Stone", "Hi, Bob here. Weekdays 8:00 to 18:00 CET."],
        ["you", "Perfect, that's all. Bye!"],
    ]
    assert "reset your password" in said[3][1] and "Monday to Friday" in said[9][1]
    assert "closed, resolved, closed by Bob Stone (bob)" in out


def table_rows(output: str, width: int) -> list[list[str]]:
    """The body rows (not headers) of tables with `width` columns, in order."""
    rows = []
    for line in output.splitlines():
        parts = [p.strip() for p in line.split("│")[1:-1]]
        if len(parts) == width and parts[0]:
            rows.append(parts)
    return rows


# --- handoff up, as a subprocess.


def port_taken(output: str, ports: list[int]) -> bool:
    """Whether `handoff up` failed because one of `ports` was taken (see tests/ports.py)."""
    return any(f"cannot listen on 127.0.0.1:{p} for the" in output for p in ports)


async def up_on_fresh_ports(
    env: dict[str, str | None], data_dir: Path, api: int | None = None, temporal: int | None = None
) -> Result:
    """`handoff up` (in-process) with the API and Temporal ports given, fresh ones for the others
    (no UI), tried again on new ones if another process took one of those meanwhile."""

    async def attempt(ports: list[int]) -> Result:
        chosen = [api or ports[0], temporal or ports[1]]
        args = ["--port", str(chosen[0]), "--temporal-port", str(chosen[1]), "--ui-port", "0"]
        result = await cli(env, "up", *args, "--data-dir", str(data_dir))
        if port_taken(result.output, ports):
            raise PortTaken(result.output)
        return result

    return await on_fresh_ports(2, attempt)


class Up:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.api, self.temporal, self.ui = 0, 0, 0  # chosen by `start`
        self.data_dir = data_dir
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    async def start(self) -> None:
        """Start on fresh ports and wait until it serves (tried again on new ports if one was taken)."""

        async def on(ports: list[int]) -> None:
            self.api, self.temporal, self.ui = ports
            await self.start_here()

        await on_fresh_ports(3, on)

    async def restart(self) -> None:
        """Start again on the same ports (a widget finds it where it was), retried until they bind."""
        await on_the_same_port(self.start_here)

    async def start_here(self) -> None:
        """Start on the current ports and wait until it serves; `PortTaken` if one was taken."""
        self.launch()
        try:
            await self.wait_serving()
        except AssertionError:
            if self.process is not None and self.process.poll() is not None:
                taken = port_taken(self.output(), [self.api, self.temporal, self.ui])
                if taken or b"address already in use" in self.temporal_log():
                    raise PortTaken(self.output()) from None
            raise

    def temporal_log(self) -> bytes:
        log = self.data_dir / "temporal.log"
        return log.read_bytes() if log.exists() else b""

    def launch(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
        # But the tests' agent capacity (tests/conftest.py): the browser tests' agents take many.
        env["HANDOFF_AGENT_CAPACITY"] = os.environ.get("HANDOFF_AGENT_CAPACITY", "5")
        args = ["--port", str(self.api), "--temporal-port", str(self.temporal), "--ui-port", str(self.ui)]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "handoff.cli", "up", *args, "--data-dir", str(self.data_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir.parent,
            )

    def output(self) -> str:
        return self.log.read_text()

    async def read_output(self) -> str:
        return self.output()

    async def wait_serving(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url) as http:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.output()
                try:
                    if (await http.get("/openapi.json")).status_code == 200:
                        # The banner is printed once the API serves.
                        await eventually(self.read_output, lambda o: "Ctrl-C" in o)
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"handoff up not serving after {timeout}s:\n{self.output()}")

    def terminate(self) -> int:
        """SIGTERM; the exit code; and every child process must be gone."""
        assert self.process is not None
        children = psutil.Process(self.process.pid).children(recursive=True)
        assert children, "the dev server should be a child process"
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left behind: {alive}"
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                child.kill()
            self.process.kill()
            self.process.wait()


@pytest.mark.slow
async def test_up_serves_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    up = Up(data_dir, tmp_path / "up-1.log")
    alice = {"Authorization": "Bearer alice-demo-token-not-secret"}
    try:
        await up.start()
        banner = up.output()
        for line in [
            f"http://127.0.0.1:{up.api}/docs",
            f"127.0.0.1:{up.temporal}",
            f"http://127.0.0.1:{up.ui}",
            str(data_dir),
            "alice-demo-token-not-secret",
            "bob-demo-token-not-secret",
        ]:
            assert line in banner, banner

        async with httpx.AsyncClient(base_url=up.url) as http:
            created = await http.post("/conversations", json={"customer_id": "c-up", "text": "Hello"})
            assert created.status_code == 201, created.text
            cid, token = created.json()["id"], created.json()["customer_token"]
            customer = {"Authorization": f"Bearer {token}"}
            assert (await http.post(f"/conversations/{cid}/request-human", headers=customer)).status_code == 202
            await eventually(
                lambda: http.get(f"/conversations/{cid}", headers=alice), lambda r: r.json()["status"] == "waiting"
            )

        # Transcripts, keys and Temporal's files are the owner's only (issue 13, finding 3).
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir()}
        assert {"handoff.db", "handoff.db-wal", "temporal.db", "encryption.keys", "customer-token.secret"} <= set(modes)
        assert modes == dict.fromkeys(modes, 0o600), modes
        # Another `up` on the same data folder is refused while this one runs.
        second = await up_on_fresh_ports({}, data_dir)
        failed_cleanly(second, "already using")
        # The demo runs against the running Handoff (its Temporal address from the settings, and
        # its data folder, which holds the payload encryption key `up` made).
        demo_env = {
            "HANDOFF_TEMPORAL_ADDRESS": f"127.0.0.1:{up.temporal}",
            "HANDOFF_DATABASE_URL": f"sqlite:///{data_dir / 'handoff.db'}",
            "HANDOFF_ENCRYPTION_KEYS": None,
        }
        demo = await cli(demo_env, "demo")
        assert demo.exit_code == 0, demo.output
        assert "Bob Stone closed the conversation as resolved" in demo.output

        assert up.terminate() == 0, up.output()
        assert "Handoff stopped." in up.output() and "Traceback" not in up.output()

        up.log = tmp_path / "up-2.log"
        await up.restart()
        assert "Resuming 1 open conversation" in up.output(), up.output()
        async with httpx.AsyncClient(base_url=up.url) as http:
            state = (await http.get(f"/conversations/{cid}", headers=alice)).json()
            assert state["status"] == "waiting"
            assert [e["text"] for e in state["transcript"]][-1] == "The customer asked for a person"
            taken = await http.post(f"/conversations/{cid}/takeover", headers=alice)
            assert taken.status_code == 200 and taken.json()["status"] == "human", taken.text
            replied = await http.post(f"/conversations/{cid}/replies", headers=alice, json={"text": "Alice here."})
            assert replied.status_code == 200, replied.text
            seen = (await http.get(f"/conversations/{cid}/messages", headers=customer)).json()["messages"]
            assert [m["text"] for m in seen][-1] == "Alice here."
            closed = await http.post(f"/conversations/{cid}/close", headers=alice, json={"outcome": "resolved"})
            assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
        assert up.terminate() == 0, up.output()
        assert "Traceback" not in up.output()
    finally:
        up.kill()


async def test_up_refuses_to_start_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await up_on_fresh_ports({}, tmp_path, api=port)
        failed_cleanly(result, f"cannot listen on 127.0.0.1:{port} for the HTTP API")
        assert "pick another port (--port)" in result.output
        result = await up_on_fresh_ports({}, tmp_path, temporal=port)
        failed_cleanly(result, f"cannot listen on 127.0.0.1:{port} for the Temporal gRPC")
    bad = tmp_path / "agents.toml"
    bad.write_text("[[agents]]\nid = 'carol'\n")
    result = await up_on_fresh_ports({"HANDOFF_AGENTS_FILE": str(bad)}, tmp_path)
    failed_cleanly(result, "needs a non-empty name, token")


@pytest.mark.parametrize("command", ["api", "up"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "api.example.org"])
def test_the_public_demo_agents_are_refused_off_loopback(tmp_path: Path, command: str, host: str) -> None:
    """The Docker image's `handoff api --host 0.0.0.0` served the public demo tokens (issue 13, 6b)."""
    data_dir = tmp_path / "data"
    args = [command, "--host", host, "--port", "0"] + (["--data-dir", str(data_dir)] if command == "up" else [])
    result = invoke({"HANDOFF_AGENTS_FILE": None}, *args)
    failed_cleanly(result, f"refusing to listen on {host} with the demo agents, whose tokens are public")
    assert "set HANDOFF_AGENTS_FILE" in result.output
    assert not data_dir.exists()  # refused before anything started


async def test_history_shows_a_bot_answer_run_inside_the_workflow_task_without_its_text() -> None:
    """A saved conversation whose bot answered `SendMessage` updates as local activities: each
    marker reads as the BotAnswer it was, its attempt and the shape of its result, no text."""
    path = Path(__file__).parent / "fixtures" / "histories" / "local_bot__reference_conversation.json"
    history = WorkflowHistory.from_json("local_bot", path.read_text())
    converter = data_converter(Settings(encryption_keys=SecretStr(TEST_KEYS)))
    reader = HistoryReader(cast(Client, SimpleNamespace(data_converter=converter)))
    rows = [await reader.describe(e) for e in history.events]
    markers = [r for r in rows if r.event_type == "MarkerRecorded"]
    assert markers and all(r.name == "BotAnswer" for r in markers)
    assert all(r.details.startswith("local, attempt 1; returned ") for r in markers), markers
    assert all("text: " in r.details and "chars" in r.details for r in markers), markers
