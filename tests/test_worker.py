"""`python worker.py`: configured from the environment, serves conversations, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from handoff.client import HandoffClient
from handoff.store import Store
from tests.helpers import customer_view, eventually, new_id, wait_for_entries

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_worker_from_environment_serves_and_shuts_down_cleanly(
    temporal_env: WorkflowEnvironment, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    task_queue = f"worker-test-{new_id()[:8]}"
    database_url = f"sqlite:///{tmp_path / 'handoff.db'}"
    env = {
        **os.environ,
        "HANDOFF_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "HANDOFF_TASK_QUEUE": task_queue,
        "HANDOFF_DATABASE_URL": database_url,
    }
    process = subprocess.Popen(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        handoff = HandoffClient(temporal_env.client, task_queue)
        conversation_id = new_id()
        await handoff.start_or_message(conversation_id, "customer-1", "hello")
        transcript = await wait_for_entries(handoff, conversation_id, 2)
        assert customer_view(transcript)[1] == ("bot", "Hello! How can I help you today?")
        # It writes to the database it was configured with.
        await eventually(lambda: _summary(database_url, conversation_id), lambda found: found)
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output.decode()
    assert b"worker shutting down" in output
    assert b"Traceback" not in output


async def _summary(database_url: str, conversation_id: str) -> bool:
    store = Store(database_url)
    try:
        return store.summary(conversation_id) is not None
    finally:
        store.close()
