"""`handoff conversations transfer | release | note` against the session's dev server and worker."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner, Result

from handoff.cli import app
from handoff.client import HandoffClient
from handoff.models import Agent, EntryKind, Status
from handoff.store import Store
from tests.helpers import eventually, new_id

# The demo agents (the CLI reads the agents file, and there is none here).
ALICE = Agent(id="alice", name="Alice Martin")


@pytest.fixture
def env(temporal_env: WorkflowEnvironment, worker: Worker, store: Store) -> dict[str, str | None]:
    return {
        "COLUMNS": "250",
        "HANDOFF_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "HANDOFF_TASK_QUEUE": worker.task_queue,
        "HANDOFF_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
    }


async def cli(env: dict[str, str | None], *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, ["conversations", *args], env=env)


def refused(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and message in result.output, result.output


async def test_an_agent_transfers_notes_and_releases_from_the_command_line(
    env: dict[str, str | None], handoff: HandoffClient
) -> None:
    cid = new_id()
    await handoff.start_or_message(cid, "customer-cli", "hello")
    await handoff.request_human(cid)
    await eventually(lambda: handoff.summary(cid), lambda s: s.status is Status.WAITING)
    await handoff.take_over(cid, ALICE)

    refused(await cli(env, "transfer", cid, "--as", "alice", "--to", "alice"), "already holds")
    refused(await cli(env, "transfer", cid, "--as", "alice", "--to", "nobody"), "no agent 'nobody'")
    refused(await cli(env, "release", cid, "--as", "bob"), "only Alice Martin")
    refused(await cli(env, "note", cid, " ", "--as", "bob"), "the note is empty")
    assert (await handoff.summary(cid)).agent == ALICE

    refused(await cli(env, "transfer", cid, "--as", "alice", "--to", "bob"), "Bob Stone is offline")
    online = await asyncio.to_thread(CliRunner().invoke, app, ["agents", "status", "online", "--as", "bob"], env=env)
    assert online.exit_code == 0 and "Bob Stone (bob) is online" in online.output, online.output
    done = await cli(env, "transfer", cid, "--as", "alice", "--to", "bob", "--note", "VIP")
    assert done.exit_code == 0 and "held by Bob Stone (bob)" in done.output, done.output
    done = await cli(env, "note", cid, "call back tomorrow", "--as", "alice")
    assert done.exit_code == 0, done.output
    done = await cli(env, "release", cid, "--as", "bob")
    assert done.exit_code == 0 and f"Conversation {cid}: waiting." in done.output, done.output

    listed = await asyncio.to_thread(CliRunner().invoke, app, ["agents", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    bob = [cell.strip() for cell in next(line for line in listed.output.splitlines() if "Bob Stone" in line).split("│")]
    assert bob[2:6] == ["bob", "online", "0", "100000"], listed.output  # tests/conftest.py's capacity
    work = await asyncio.to_thread(CliRunner().invoke, app, ["agents", "stats"], env=env)
    assert work.exit_code == 0 and "Occupancy" in work.output, work.output
    bob_work = [
        cell.strip() for cell in next(line for line in work.output.splitlines() if "Bob Stone" in line).split("│")
    ]
    assert bob_work[6:8] == ["0", "1"], work.output  # the transfer to Bob: a manual assignment
    bad = await asyncio.to_thread(CliRunner().invoke, app, ["agents", "status", "busy", "--as", "bob"], env=env)
    assert bad.exit_code == 2 and "busy" in bad.output, bad.output

    transcript = await handoff.transcript(cid)
    assert [e.text for e in transcript if e.kind is EntryKind.INTERNAL] == ["VIP", "call back tomorrow"]
    assert [e.text for e in transcript if e.kind is EntryKind.SYSTEM][-2:] == [
        "Alice Martin transferred the conversation to Bob Stone",
        "Bob Stone returned the conversation to the queue",
    ]
