"""The baseline taking the customer's inputs as updates (`python -m bench cpu --baseline-updates`).

Handoff's API sends customer messages and requests for a person as updates (`SendMessage`,
`AskForHuman`: the answer carries the facts the API writes); the issue's baseline
(bench/baseline.py) takes them as signals. This workflow is that baseline plus the two updates,
answering the status, the least an update can answer, to measure what the transport alone
costs. A module of its own, so that the default baseline's runs, which the sandbox imports
afresh, do not define these handlers too.
"""

from __future__ import annotations

from temporalio import workflow

from bench.baseline import BaselineConversation

with workflow.unsafe.imports_passed_through():
    from handoff.models import CustomerMessage, RequestHuman

WORKFLOW_NAME = "BaselineConversationUpdates"


@workflow.defn(name=WORKFLOW_NAME)
class BaselineConversationUpdates(BaselineConversation):
    @workflow.run
    async def run(self, conversation_id: str) -> str:
        return await super().run(conversation_id)

    @workflow.update(name="SendMessage")
    def send_message(self, command: CustomerMessage) -> str:
        self.customer_message(command)
        return self.status

    @workflow.update(name="AskForHuman")
    def ask_for_human(self, command: RequestHuman) -> str:
        self.request_human(command)
        return self.status
