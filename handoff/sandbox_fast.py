"""The fast path of handoff/sandbox.py: Temporal's sandboxed instance, running its entry snippets
from compiled code. It subclasses the SDK's private `_Instance`, so it is only ever imported and
used through `handoff.sandbox.workflow_runner()`, which checks first that the SDK installed still
has the private names and shapes this module relies on, and otherwise runs the stock sandbox.
"""

from __future__ import annotations

import functools
from types import CodeType
from typing import Any

from temporalio.converter import (
    SerializationContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance


@functools.lru_cache(maxsize=64)
def _compiled(code: str) -> CodeType:
    """The SDK's few distinct snippets (one set per workflow type), each compiled once."""
    return compile(code, "<string>", "exec")


class CompiledOnceInstance(_Instance):
    """The SDK's sandboxed instance, running its snippets from compiled code."""

    def _run_code(self, code: str, **extra_globals: Any) -> None:
        # exec() takes a code object as well as a string; everything else is the SDK's own.
        super()._run_code(_compiled(code), **extra_globals)  # type: ignore[arg-type]

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        """For a payload of no pending command (a signal, an update, the workflow's input, most
        of a task's payloads) the SDK's answer is the workflow's own context, made from the run's
        info; answer it here rather than entering the sandbox to ask. Any other payload is the
        SDK's question as before. (`command_info` is the SDK's private `CommandInfo`; `Any` so
        that this module does not import it.)"""
        if command_info is None:
            info = self.instance_details.info
            return WorkflowSerializationContext(namespace=info.namespace, workflow_id=info.workflow_id)
        return super().get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        """Likewise the external-storage context the SDK asks for every payload sequence of a
        workflow task (whether or not external storage is configured): for a payload of no
        pending command it is the current workflow run, made from the run's info."""
        if command_info is None:
            info = self.instance_details.info
            return StorageDriverStoreContext(
                target=StorageDriverWorkflowInfo(
                    id=info.workflow_id, run_id=info.run_id, type=info.workflow_type, namespace=info.namespace
                )
            )
        return super().get_external_store_context(command_info)


class CompiledOnceRunner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner` (same restrictions, same isolation per run) without recompiling
    its own entry snippets at every workflow task."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return CompiledOnceInstance(det, self.runner_class, self.restrictions)
