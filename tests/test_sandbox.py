"""The worker's workflow runner (handoff/sandbox.py) is still Temporal's sandbox: a workflow that
reads the wall clock fails, one that keeps the rules runs, run after run; and the module the
sandbox imports for every run has its bytecode written."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import workflows.conversation
from handoff.sandbox import CompiledOnceRunner, compile_workflow_modules
from tests.sandbox_probe import KeepsTheRules, ReadsTheWallClock
from workflows import ConversationWorkflow


async def test_the_sandbox_still_refuses_a_wall_clock_read(temporal_env: WorkflowEnvironment) -> None:
    task_queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    client = temporal_env.client
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReadsTheWallClock, KeepsTheRules],
        workflow_runner=CompiledOnceRunner(),
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(ReadsTheWallClock.run, id=f"clock-{uuid.uuid4().hex}", task_queue=task_queue)
        assert "RestrictedWorkflowAccessError" in repr(failed.value.cause), repr(failed.value.cause)
        # Twice: the second run reuses the compiled snippets, and is refused the same way.
        with pytest.raises(WorkflowFailureError):
            await client.execute_workflow(ReadsTheWallClock.run, id=f"clock-{uuid.uuid4().hex}", task_queue=task_queue)
        for _ in range(2):
            answer = await client.execute_workflow(
                KeepsTheRules.run, "kept", id=f"rules-{uuid.uuid4().hex}", task_queue=task_queue
            )
            assert answer.startswith("kept at ")


def test_the_workflow_module_the_sandbox_imports_per_run_has_its_bytecode_written() -> None:
    """Even with PYTHONDONTWRITEBYTECODE set, a new conversation does not compile its module from source."""
    compile_workflow_modules(ConversationWorkflow)
    for module in (workflows, workflows.conversation):
        source = Path(str(module.__file__))
        cached = Path(importlib.util.cache_from_source(str(source)))
        assert cached.exists() and cached.stat().st_mtime >= source.stat().st_mtime
