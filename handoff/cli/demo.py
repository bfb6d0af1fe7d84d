"""`handoff demo`: a scripted conversation through every transition, printed as it happens,
then what the customer saw next to what the agents saw.

It runs against a running Handoff (its worker must poll the task queue), or with `--embedded`
against a temporary dev server and an in-process worker that are gone afterwards.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from handoff.agents import AgentDirectory
from handoff.bot import KnowledgeBaseBot
from handoff.cli.connections import connect, open_store
from handoff.cli.format import customer_table, fmt_agent, transcript_table
from handoff.cli.main import REPORTED, console, fail, report, run
from handoff.cli.servers import embedded_server, embedded_settings, start_embedded
from handoff.client import HandoffClient, HandoffError
from handoff.config import Settings
from handoff.models import CUSTOMER_VISIBLE, Agent, EntryKind, Outcome


def demo(
    embedded: Annotated[
        bool, typer.Option(help="Run against a temporary embedded Temporal and worker instead of a running Handoff.")
    ] = False,
) -> None:
    """Play a scripted conversation through every transition; print what each side saw."""
    out = console()
    conversation_id = f"demo-{uuid.uuid4().hex[:12]}"
    if not embedded:

        async def main() -> None:
            settings = Settings()
            handoff = await connect(settings)
            await require_worker(handoff, settings)
            await Demo(handoff, out, conversation_id).play()

        run(main)
        return
    with tempfile.TemporaryDirectory(prefix="handoff-demo-") as tmp:
        folder = Path(tmp)
        server = embedded_server(folder)
        try:
            # The log file goes with the temporary folder: a failure says what it knows.
            start_embedded(server, out, "a temporary Temporal dev server", log_hint=False)
            run(lambda: embedded_demo(embedded_settings(folder, server), out, conversation_id))
        except REPORTED as e:
            report(e)
        finally:
            server.stop()


async def embedded_demo(settings: Settings, out: Console, conversation_id: str) -> None:
    """The demo with a worker in this process, recording into a new database."""
    from worker import build_worker

    handoff = await connect(settings)
    with open_store(settings, create=True) as store:
        async with build_worker(handoff.temporal, settings.task_queue, store, KnowledgeBaseBot.from_file()):
            await Demo(handoff, out, conversation_id).play()


async def require_worker(handoff: HandoffClient, settings: Settings) -> None:
    """Fail fast when nothing polls the task queue: the demo would otherwise just hang."""
    response = await handoff.temporal.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    if not response.pollers:
        fail(
            f"no worker polls task queue {settings.task_queue!r} on {settings.temporal_address}; "
            "start `handoff up` (or `handoff worker`), or run `handoff demo --embedded`"
        )


def demo_agents() -> tuple[Agent, Agent]:
    """Alice and Bob, the demo agents the API also knows by default."""
    by_id = {entry.id: entry.agent for entry in AgentDirectory.default().agents}
    return by_id["alice"], by_id["bob"]


@dataclass
class Demo:
    """A scripted conversation through every transition, printed as it happens."""

    handoff: HandoffClient
    out: Console
    conversation_id: str
    seen: int = 0

    async def customer(self, text: str, bot_answers: int = 0) -> None:
        self.out.print(Text(f"customer › {text}", style="cyan"))
        if self.seen == 0:
            await self.handoff.start_or_message(self.conversation_id, "demo-customer", text)
        else:
            await self.handoff.send_message(self.conversation_id, text)
        await self.show_new(1 + bot_answers)

    async def show_new(self, count: int) -> None:
        """Wait for `count` new transcript entries (the bot answers asynchronously); print them."""
        try:
            async with asyncio.timeout(30):
                while True:
                    entries = await self.handoff.transcript(self.conversation_id, after_seq=self.seen)
                    if len(entries) >= count:
                        break
                    await asyncio.sleep(0.1)
        except TimeoutError:
            fail("no answer from the worker within 30 s; is a worker running on this task queue?")
        for e in entries:
            if e.kind is EntryKind.SYSTEM:
                self.out.print(Text(f"   note · {e.text}", style="italic dim"))
            elif e.kind in CUSTOMER_VISIBLE and e.kind is not EntryKind.CUSTOMER:
                self.out.print(
                    Text(f"{e.author:>8} › {e.text}", style="green" if e.kind is EntryKind.BOT else "yellow")
                )
        self.seen += len(entries)

    async def agent(self, agent: Agent, action: str, command: Awaitable[Any], new_entries: int) -> None:
        self.out.print(Text(f"{agent.name} {action}", style="bold"))
        await command
        await self.show_new(new_entries)

    async def play(self) -> None:
        h, cid = self.handoff, self.conversation_id
        alice, bob = demo_agents()
        await self.customer("Hello", bot_answers=1)
        await self.customer("How do I reset my password?", bot_answers=1)
        await self.customer("I'd like to talk to a person, please", bot_answers=2)  # answer + note
        await self.agent(alice, "takes over", h.take_over(cid, alice), 1)
        try:
            await h.take_over(cid, bob)
        except HandoffError as refused:
            self.out.print(Text(f"{bob.name} tries to take over too → refused: {refused.message}", style="red"))
        await self.agent(alice, "replies", h.reply(cid, alice, "Hi, I'm Alice. The reset link is on its way."), 1)
        await self.customer("Got it, thank you!")
        await self.agent(alice, "hands the conversation back to the bot", h.hand_back(cid, alice), 1)
        await self.customer("When are you open?", bot_answers=1)
        self.out.print(Text("customer presses “talk to a person”", style="cyan"))
        await h.request_human(cid)
        await self.show_new(1)
        await self.agent(bob, "takes over", h.take_over(cid, bob), 1)
        await self.agent(bob, "replies", h.reply(cid, bob, "Hi, Bob here. Weekdays 8:00 to 18:00 CET."), 1)
        await self.customer("Perfect, that's all. Bye!")
        await self.agent(bob, "closes it as resolved", h.close(cid, bob, Outcome.RESOLVED), 1)
        final = await h.result(cid)
        transcript = await h.transcript(cid)
        self.out.print()
        self.out.print(customer_table(transcript, "What the customer saw (no system notes)"))
        self.out.print(transcript_table(transcript, "What the agents saw (with system notes)"))
        self.out.print(
            f"Conversation {cid}: {final.status.value}, {final.outcome.value if final.outcome else '–'}, "
            f"closed by {fmt_agent(final.closed_by)}."
        )
