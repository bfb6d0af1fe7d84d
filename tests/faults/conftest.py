"""Fixtures of the fault group: one dev server of our own, labs, the reference run, and the
worker-kill scenarios started in the background.

The group does not use the session's in-process-managed server (tests/conftest.py): it needs
a server it can address from worker subprocesses; the tests that stop and kill a server start
their own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from handoff.devserver import DevServer
from tests.faults.conversations import Conversation
from tests.faults.harness import InMemoryDevServer, Lab, Played, file_dev_server, open_lab, played
from tests.faults.kill_scenarios import SCENARIOS, Outcomes, run_all
from tests.helpers import new_id

LabFactory = Callable[..., Awaitable[Lab]]


@pytest.fixture(scope="session")
async def faults_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    """A dev server of the group's own (in memory: the tests that restart one start their own)."""
    async with file_dev_server(tmp_path_factory.mktemp("faults-temporal"), InMemoryDevServer) as server:
        yield server


@pytest.fixture(scope="module")
async def labs(faults_server: DevServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LabFactory]:
    """Opens labs (task queue + database + worker processes) and kills their workers at the end."""
    opened: list[Lab] = []

    async def open_one(name: str, *, database_url: str | None = None, server: DevServer | None = None) -> Lab:
        lab = await open_lab(server or faults_server, tmp_path_factory.mktemp(name), name, database_url=database_url)
        opened.append(lab)
        return lab

    try:
        yield open_one
    finally:
        for lab in opened:
            lab.close()


@pytest.fixture(scope="session", autouse=True)
async def kill_scenarios(
    request: pytest.FixtureRequest, faults_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[asyncio.Task[Outcomes] | None]:
    """The worker-kill scenarios, started as soon as the fault group begins if test_worker_kill.py
    is part of the run: they mostly wait out Temporal's activity timeouts (30 s), so the other
    fault tests run meanwhile and the group stays within its time budget."""
    if not any(item.path.name == "test_worker_kill.py" for item in request.session.items):
        yield None
        return
    labs = {name: await open_lab(faults_server, tmp_path_factory.mktemp(name), f"kill-{name}") for name in SCENARIOS}
    task = asyncio.create_task(run_all(labs))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for lab in labs.values():
            lab.close()


@pytest.fixture(scope="session")
async def reference(faults_server: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Played:
    """The reference conversation played once without any fault: what every fault run must equal."""
    lab = await open_lab(faults_server, tmp_path_factory.mktemp("reference"), "reference")
    try:
        await lab.workers.start()
        conversation = Conversation(lab.handoff, new_id())
        summary = await conversation.play_rest()
        return await played(lab, conversation.id, summary)
    finally:
        lab.close()
