"""A workflow that breaks the sandbox's rules on purpose (tests/test_sandbox.py): it reads the
wall clock, which a workflow must not (workflow.now() is the deterministic clock)."""

from __future__ import annotations

import datetime

from temporalio import workflow


@workflow.defn(name="ReadsTheWallClock", failure_exception_types=[Exception])
class ReadsTheWallClock:
    @workflow.run
    async def run(self) -> str:
        return datetime.datetime.now().isoformat()


@workflow.defn(name="KeepsTheRules")
class KeepsTheRules:
    @workflow.run
    async def run(self, text: str) -> str:
        await workflow.sleep(0.01)
        return f"{text} at {workflow.now().year}"
