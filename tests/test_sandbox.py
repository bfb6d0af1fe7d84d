"""The worker's workflow runner (handoff/sandbox.py) is still Temporal's sandbox: a workflow that
reads the wall clock fails, one that keeps the rules runs, run after run; and the module the
sandbox imports for every run has its bytecode written. If the SDK installed lacks the private
names the compiled-once runner relies on, the worker falls back to the stock sandbox and still
runs (simulated here by taking those names away)."""

from __future__ import annotations

import importlib.util
import logging
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker, WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance
from temporalio.workflow import _Definition

import workflows.conversation
from handoff.sandbox import compile_workflow_modules, fast_path_unavailable, workflow_runner
from tests.sandbox_probe import KeepsTheRules, ReadsTheWallClock
from workflows import ConversationWorkflow


def test_the_worker_runs_the_compiled_once_runner_with_the_sdk_it_was_written_for() -> None:
    reason = fast_path_unavailable()
    if reason is not None:  # a newer SDK: the fallback below is what runs, and is tested
        pytest.skip(f"the installed SDK has no fast path: {reason}")
    from handoff.sandbox_fast import CompiledOnceRunner

    assert isinstance(workflow_runner(), CompiledOnceRunner)


async def test_the_sandbox_still_refuses_a_wall_clock_read(temporal_env: WorkflowEnvironment) -> None:
    await _refuses_the_wall_clock_and_runs_the_rules(temporal_env, workflow_runner())


class _NoRunCode:
    """What a reshaped SDK might have: an `_Instance` whose snippets run some other way."""

    def __init__(self, instance_details: object, runner_class: object, restrictions: object) -> None: ...

    def get_serialization_context(self, command_info: object) -> None: ...


@pytest.mark.parametrize("missing", ["the _runner module", "_Instance", "_Instance._run_code"])
async def test_without_the_private_sdk_names_the_worker_falls_back_to_the_stock_sandbox(
    missing: str,
    temporal_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner_module = sys.modules["temporalio.worker.workflow_sandbox._runner"]
    if missing == "the _runner module":
        monkeypatch.setitem(sys.modules, "temporalio.worker.workflow_sandbox._runner", None)
    elif missing == "_Instance":
        monkeypatch.delattr(runner_module, "_Instance")
    else:
        monkeypatch.setattr(runner_module, "_Instance", _NoRunCode)
    with caplog.at_level(logging.WARNING, logger="handoff.sandbox"):
        runner = workflow_runner()
    assert type(runner) is SandboxedWorkflowRunner
    warnings = [r.getMessage() for r in caplog.records if r.name == "handoff.sandbox"]
    assert len(warnings) == 1 and "stock runner" in warnings[0], warnings
    monkeypatch.undo()  # the SDK itself needs its internals back to run the stock sandbox
    await _refuses_the_wall_clock_and_runs_the_rules(temporal_env, runner)


def test_a_reshaped_private_method_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    def _run_code(self: _Instance, source: str, globals_: dict[str, object]) -> None: ...

    monkeypatch.setattr(_Instance, "_run_code", _run_code)
    assert "_run_code" in str(fast_path_unavailable())


async def _refuses_the_wall_clock_and_runs_the_rules(temporal_env: WorkflowEnvironment, runner: WorkflowRunner) -> None:
    task_queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    client = temporal_env.client
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReadsTheWallClock, KeepsTheRules],
        workflow_runner=runner,
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


def workflow_definition(cls: type) -> _Definition:
    return _Definition.must_from_class(cls)


async def test_the_contexts_answered_outside_the_sandbox_are_the_sdks_own() -> None:
    """The fast path answers a payload's serialization and external-storage contexts without
    entering the sandbox; its answers are those the SDK gives from inside."""
    reason = fast_path_unavailable()
    if reason is not None:
        pytest.skip(f"the installed SDK has no fast path: {reason}")
    from temporalio.worker.workflow_sandbox import _runner

    from handoff.sandbox_fast import CompiledOnceRunner

    captured: list[_Instance] = []

    class Capturing(CompiledOnceRunner):
        def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
            instance = super().create_instance(det)
            assert isinstance(instance, _Instance)
            captured.append(instance)
            return instance

    # What the worker does for each workflow type at start: an instance with the SDK's fake info.
    Capturing().prepare_workflow(workflow_definition(KeepsTheRules))
    [instance] = captured
    assert instance.instance_details.info is _runner._fake_info
    assert instance.get_serialization_context(None) == _Instance.get_serialization_context(instance, None)
    assert instance.get_external_store_context(None) == _Instance.get_external_store_context(instance, None)
