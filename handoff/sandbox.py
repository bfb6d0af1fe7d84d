"""The workflow sandbox Handoff's worker runs conversations in: Temporal's own, kept on, made cheaper.

The sandbox catches accidental non-determinism (a clock read, I/O, a restricted module) before it
reaches production, so the worker keeps it. Profiling the worker through the reference
conversations (docs/benchmarks.md, "Worker CPU") showed two costs of the SDK's sandbox that
buy no isolation, and this module removes them:

- **Compiling the same snippets again and again.** The SDK enters the sandbox by `exec`-ing a
  short source string (activate this activation; give the serialization context of this
  command; create the instance) several times per workflow task: once per activation and once
  per payload sequence its payload visitors pass over (five passes a task). `exec` of a string
  compiles it every time, ~11 µs, about a tenth of the worker's Python time. `CompiledOnceRunner`
  runs the same code, compiled once: the same globals, the same importer, the same restrictions.
  And most of those entries only ask which serialization context a payload of no pending
  command gets, whose answer is fixed for the run (the workflow's own): that one is answered
  without entering the sandbox.
- **Compiling the workflow module for every run.** The sandbox imports the workflow's module
  afresh for every workflow run (that isolation is the point, and stays); with
  `PYTHONDONTWRITEBYTECODE` set (the Docker image sets it) nothing ever writes its bytecode, so
  every new conversation compiled `workflows/conversation.py` from source (~1.5 ms).
  `compile_workflow_modules` writes that bytecode once at start-up where it can (the image
  compiles it at build time, where the source folder is writable).

Which modules the sandbox shares with the host is unchanged: the workflow module imports
everything else it needs (the rules, models, activities' signatures) under
`workflow.unsafe.imports_passed_through()`, so per run the sandbox imports only `workflows`
and `workflows.conversation` (profiled); pydantic, temporalio and the standard library are
passed through by the SDK's defaults.
"""

from __future__ import annotations

import functools
import py_compile
import sys
from types import CodeType
from typing import Any

from temporalio.converter import SerializationContext, WorkflowSerializationContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance


@functools.lru_cache(maxsize=64)
def _compiled(code: str) -> CodeType:
    """The SDK's few distinct snippets (one set per workflow type), each compiled once."""
    return compile(code, "<string>", "exec")


class _CompiledOnceInstance(_Instance):
    """The SDK's sandboxed instance, running its snippets from compiled code."""

    def _run_code(self, code: str, **extra_globals: Any) -> None:
        # exec() takes a code object as well as a string; everything else is the SDK's own.
        super()._run_code(_compiled(code), **extra_globals)  # type: ignore[arg-type]

    def get_serialization_context(self, command_info: CommandInfo | None) -> SerializationContext | None:
        """For a payload of no pending command (a signal, an update, the workflow's input, most
        of a task's payloads) the SDK's answer is the workflow's own context, made from the run's
        info; answer it here rather than entering the sandbox to ask. Any other payload is the
        SDK's question as before."""
        if command_info is None:
            info = self.instance_details.info
            return WorkflowSerializationContext(namespace=info.namespace, workflow_id=info.workflow_id)
        return super().get_serialization_context(command_info)


class CompiledOnceRunner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner` (same restrictions, same isolation per run) without recompiling
    its own entry snippets at every workflow task."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _CompiledOnceInstance(det, self.runner_class, self.restrictions)


def compile_workflow_modules(*workflow_classes: type) -> None:
    """Write the bytecode of the modules the sandbox imports afresh for each run (the workflows'
    modules and their packages), so no run compiles them from source. Best effort: a read-only
    source folder (the Docker image) has its bytecode from the build."""
    names: set[str] = set()
    for cls in workflow_classes:
        parts = cls.__module__.split(".")
        names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    for name in sorted(names):
        source = getattr(sys.modules.get(name), "__file__", None)
        if source is None or not source.endswith(".py"):
            continue
        try:
            py_compile.compile(source, doraise=True, quiet=1)
        except (OSError, py_compile.PyCompileError):
            continue
