"""The workflow sandbox Handoff's worker runs conversations in: Temporal's own, kept on, made cheaper.

The sandbox catches accidental non-determinism (a clock read, I/O, a restricted module) before it
reaches production, so the worker keeps it. Profiling the worker through the reference
conversations (docs/benchmarks.md, "Worker CPU") showed two costs of the SDK's sandbox that
buy no isolation, and this module removes them:

- **Compiling the same snippets again and again.** The SDK enters the sandbox by `exec`-ing a
  short source string (activate this activation; give the serialization context of this
  command; create the instance) several times per workflow task: once per activation and once
  per payload sequence its payload visitors pass over (five passes a task). `exec` of a string
  compiles it every time, ~11 µs, about a tenth of the worker's Python time.
  `CompiledOnceRunner` (handoff/sandbox_fast.py) runs the same code, compiled once: the same
  globals, the same importer, the same restrictions.
  And most of those entries only ask which serialization context (or, since SDK 1.35,
  external-storage context) a payload of no pending command gets, whose answer is fixed for
  the run (the workflow's own): those are answered without entering the sandbox.
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

**Private SDK names.** The compiled-once runner (handoff/sandbox_fast.py) subclasses the SDK's
private `workflow_sandbox._runner._Instance`, which a new SDK release may rename or reshape
(pyproject allows any 1.x). `workflow_runner()` checks those names and their shapes first; if
they are not what this code was written against, it logs one warning and returns the SDK's stock
`SandboxedWorkflowRunner`: the same sandbox, only without the savings.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import py_compile
import sys

from temporalio.worker import WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

log = logging.getLogger("handoff.sandbox")

_SDK_RUNNER_MODULE = "temporalio.worker.workflow_sandbox._runner"

# The private methods the fast path overrides or calls, with the parameters it passes them.
_EXPECTED_PARAMETERS = {
    "__init__": ["self", "instance_details", "runner_class", "restrictions"],
    "_run_code": ["self", "code", "extra_globals"],
    "get_serialization_context": ["self", "command_info"],
    "get_external_store_context": ["self", "command_info"],
}


def fast_path_unavailable() -> str | None:
    """Why the compiled-once runner cannot be used with the SDK installed, or None if it can."""
    try:
        instance_class = importlib.import_module(_SDK_RUNNER_MODULE)._Instance
    except (ImportError, AttributeError) as missing:
        return f"{_SDK_RUNNER_MODULE}._Instance is missing ({missing})"
    for name, expected in _EXPECTED_PARAMETERS.items():
        method = getattr(instance_class, name, None)
        if not callable(method):
            return f"_Instance.{name} is missing"
        parameters = list(inspect.signature(method).parameters)
        if parameters != expected:
            return f"_Instance.{name} takes {parameters}, not {expected}"
    if not {"runner_class", "restrictions"} <= set(SandboxedWorkflowRunner.__dataclass_fields__):
        return "SandboxedWorkflowRunner has no runner_class or restrictions"
    return None


def workflow_runner() -> WorkflowRunner:
    """The worker's workflow runner: the sandbox, compiled once where the SDK allows it."""
    problem = fast_path_unavailable()
    if problem is None:
        try:
            from handoff.sandbox_fast import CompiledOnceRunner
        except (ImportError, AttributeError, TypeError) as failed:
            problem = f"handoff.sandbox_fast does not load ({failed!r})"
        else:
            return CompiledOnceRunner()
    log.warning("workflow sandbox: the stock runner, not the compiled-once one: %s", problem)
    return SandboxedWorkflowRunner()


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
