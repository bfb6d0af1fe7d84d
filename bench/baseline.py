"""The baseline: the least a hand-written Temporal workflow needs to carry the reference conversation.

It receives the same 19 inputs (the same signal and update names, the same payload models,
signal-with-start for the opening message), the customer's as signals: when the driver writes
as Handoff's API does, Handoff gets those as updates instead (`SendMessage`, `AskForHuman`),
which costs its worker more; bench/baseline_updates.py is this baseline taking them as updates
too (`python -m bench cpu --baseline-updates`). It runs one no-op activity per
message the bot answers, nothing else: no rules beyond "the bot answers while it holds the
conversation", no validators, no search attributes, no database, no continue-as-new. What
Handoff costs over this is the price of its guarantees.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from handoff.models import AgentReply, Close, CustomerMessage, HandBack, RequestHuman, TakeOver

WORKFLOW_NAME = "BaselineConversation"
ANSWER_ACTIVITY = "NoOpAnswer"


@activity.defn(name=ANSWER_ACTIVITY)
async def noop_answer(text: str) -> str:
    """Stands in for the bot: answers instantly, touches nothing."""
    return "ok"


@workflow.defn(name=WORKFLOW_NAME)
class BaselineConversation:
    def __init__(self) -> None:
        self.status = "bot"
        self.transcript: list[str] = []
        self.unanswered: list[str] = []

    @workflow.run
    async def run(self, conversation_id: str) -> str:
        while self.status != "closed":
            await workflow.wait_condition(lambda: bool(self.unanswered) or self.status == "closed")
            if self.unanswered:
                answer = await workflow.execute_activity(
                    noop_answer, self.unanswered.pop(0), start_to_close_timeout=timedelta(seconds=10)
                )
                if self.status == "bot":
                    self.transcript.append(answer)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status

    @workflow.signal(name="CustomerMessage")
    def customer_message(self, command: CustomerMessage) -> None:
        self.transcript.append(command.text)
        if self.status == "bot":
            self.unanswered.append(command.text)

    @workflow.signal(name="RequestHuman")
    def request_human(self, command: RequestHuman) -> None:
        self.status = "waiting"
        self.unanswered.clear()

    @workflow.update(name="TakeOver")
    def take_over(self, command: TakeOver) -> str:
        self.status = "human"
        return self.status

    @workflow.update(name="Reply")
    def reply(self, command: AgentReply) -> str:
        self.transcript.append(command.text)
        return self.status

    @workflow.update(name="HandBack")
    def hand_back(self, command: HandBack) -> str:
        self.status = "bot"
        return self.status

    @workflow.update(name="Close")
    def close(self, command: Close) -> str:
        self.status = "closed"
        return self.status
