"""`handoff conversations list | show | history | suggestions | exclude-from-suggestions`: what ops
read about conversations (and keep out of AI assist).

`list` reads the database; `show` reads the running workflow when there is one (the live
state) and the database otherwise; `history` reads Temporal's event history of every run;
`suggestions` the replies AI assist offers for the customer's latest messages (database only);
`exclude-from-suggestions` keeps a conversation's replies out of them (database only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text
from temporalio.client import WorkflowExecutionStatus

from handoff.cli.connections import connect, describe, open_store
from handoff.cli.format import fmt_agent, fmt_duration, fmt_time, transcript_table
from handoff.cli.history import HistoryReader
from handoff.cli.main import CliError, console, run
from handoff.client import ConversationNotFound, HandoffClient, workflow_id
from handoff.config import Settings
from handoff.models import ConversationSummary, Status, TranscriptEntry


def list_conversations(
    status: Annotated[Status | None, typer.Option(help="Only conversations in this status.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only conversations assigned to this agent id.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
) -> None:
    """Conversations from the database, newest first."""

    async def main() -> None:
        with open_store(Settings()) as store:
            rows = store.conversations(status=status, agent_id=agent, limit=limit)
        if not rows:
            console().print("No conversations match.")
            return
        now = datetime.now(UTC)
        table = Table(title=f"{len(rows)} conversation(s), newest first (times in UTC)", title_justify="left")
        for column in ("Conversation", "Status", "Agent", "Outcome", "Started", "Updated", "Waiting for"):
            table.add_column(column, no_wrap=column in ("Conversation", "Status", "Outcome"))
        for row in rows:
            waiting = (now - row.waiting_since).total_seconds() if row.waiting_since else None
            table.add_row(
                row.conversation_id,
                row.status.value,
                row.agent.id if row.agent else "–",
                row.outcome.value if row.outcome else "–",
                fmt_time(row.started_at),
                fmt_time(row.updated_at),
                fmt_duration(waiting) if row.status is Status.WAITING else "–",
            )
        console().print(table)

    run(main)


@dataclass
class Shown:
    summary: ConversationSummary
    transcript: list[TranscriptEntry]
    source: str
    rejected_signals: int | None = None


async def load_conversation(settings: Settings, conversation_id: str) -> Shown:
    """From the workflow when it runs (the live state), else from the database."""
    why = "the workflow is no longer running"
    try:
        handoff: HandoffClient | None = await connect(settings)
    except CliError:
        handoff = None
        why = f"Temporal at {settings.temporal_address} is unreachable"
    if handoff is not None:
        description = await describe(handoff, conversation_id)
        if description is not None and description.status is WorkflowExecutionStatus.RUNNING:
            from workflows.conversation import ConversationWorkflow

            with open_store(settings) as store:
                handoff.store = store  # for the entries a long conversation no longer holds
                return Shown(
                    summary=await handoff.summary(conversation_id),
                    transcript=await handoff.transcript(conversation_id),
                    source="live, from the running workflow",
                    rejected_signals=await handoff.handle(conversation_id).query(ConversationWorkflow.rejected_signals),
                )
    with open_store(settings) as store:
        summary = store.summary(conversation_id)
        if summary is None:
            raise ConversationNotFound(f"no conversation {conversation_id!r}")
        return Shown(summary, store.transcript(conversation_id), f"from the database: {why}")


def show_conversation(conversation_id: Annotated[str, typer.Argument(help="The conversation id.")]) -> None:
    """One conversation: its state and its whole transcript, system notes included."""

    async def main() -> None:
        shown = await load_conversation(Settings(), conversation_id)
        s = shown.summary
        state = Table(show_header=False)
        state.add_column(style="bold")
        state.add_column()
        state.add_row("Status", s.status.value)
        state.add_row("Customer", s.customer_id)
        state.add_row("Agent", fmt_agent(s.agent))
        state.add_row("Outcome", s.outcome.value if s.outcome else "–")
        if s.closed_by:
            state.add_row("Closed by", fmt_agent(s.closed_by))
        state.add_row("Started", fmt_time(s.started_at))
        state.add_row("Updated", fmt_time(s.updated_at))
        if s.waiting_since:
            state.add_row("Waiting since", fmt_time(s.waiting_since))
        if s.assigned_at:
            state.add_row("Assigned at", fmt_time(s.assigned_at))
        if s.closed_at:
            state.add_row("Closed at", fmt_time(s.closed_at))
        if shown.rejected_signals:
            state.add_row("Refused signals", str(shown.rejected_signals))
        out = console()
        out.print(Text(f"Conversation {s.conversation_id}", style="bold"), f"({shown.source})", soft_wrap=True)
        out.print(state)
        out.print(transcript_table(shown.transcript, "Transcript (times in UTC; system notes in italics)"))

    run(main)


def conversation_history(
    conversation_id: Annotated[str, typer.Argument(help="The conversation id.")],
    all_events: Annotated[bool, typer.Option("--all", help="Also show workflow-task events.")] = False,
) -> None:
    """The conversation's Temporal event history, readable and without message contents."""

    async def main() -> None:
        handoff = await connect(Settings())
        runs = await conversation_runs(handoff, conversation_id)
        out = console()
        for number, (run_id, started, status) in enumerate(runs, start=1):
            handle = handoff.temporal.get_workflow_handle(workflow_id(conversation_id), run_id=run_id)
            history = await handle.fetch_history()
            events = HistoryReader(handoff.temporal)
            rows = [await events.describe(e) for e in history.events]
            shown = [r for r in rows if all_events or not r.event_type.startswith("WorkflowTask")]
            heading = f"Run {number} of {len(runs)}: {run_id} ({status}, started {fmt_time(started)} UTC)"
            out.print(Text(heading, style="bold"), soft_wrap=True)
            table = Table(
                caption=None if all_events else f"{len(rows) - len(shown)} workflow-task events hidden (--all)",
                caption_justify="left",
            )
            table.add_column("Event", justify="right")
            table.add_column("Time (UTC)", no_wrap=True)
            table.add_column("Type", no_wrap=True)
            table.add_column("Name", no_wrap=True)
            table.add_column("Details", overflow="fold")
            for r in shown:
                table.add_row(str(r.event_id), r.time, r.event_type, r.name, r.details)
            out.print(table)

    run(main)


async def conversation_runs(handoff: HandoffClient, conversation_id: str) -> list[tuple[str, datetime, str]]:
    """Every run of the conversation's workflow (continue-as-new makes several), oldest first."""
    latest = await describe(handoff, conversation_id)
    if latest is None:
        raise ConversationNotFound(f"no conversation {conversation_id!r} in Temporal")
    # Visibility (the run list) lags a moment behind: the latest run comes from describe().
    runs = {latest.run_id: (latest.start_time, latest.status)}
    async for w in handoff.temporal.list_workflows(f"WorkflowId = '{workflow_id(conversation_id)}'"):
        runs.setdefault(w.run_id, (w.start_time, w.status))
    return sorted(
        ((run_id, started, status.name.lower() if status else "?") for run_id, (started, status) in runs.items()),
        key=lambda r: r[1],
    )


def conversation_suggestions(conversation_id: Annotated[str, typer.Argument(help="The conversation id.")]) -> None:
    """The replies AI assist suggests for the customer's latest messages, best first."""
    from handoff.assist import Assistant, customer_context
    from handoff.bot import KnowledgeBaseBot

    async def main() -> None:
        settings = Settings()
        assistant = Assistant(
            KnowledgeBaseBot.from_file(settings.knowledge_base), embeddings=settings.assist_embeddings
        )
        with open_store(settings) as store:
            if store.summary(conversation_id) is None:
                raise ConversationNotFound(f"no conversation {conversation_id!r} in the database")
            context = customer_context(store.transcript(conversation_id))
            suggested = assistant.suggest(store, context, exclude_conversation=conversation_id)
        out = console()
        if not context:
            out.print("No customer message to suggest a reply to.")
            return
        out.print(Text("Customer: ", style="bold") + Text(" / ".join(context)))
        if not suggested:
            out.print("No suggestion is close enough.")
            return
        table = Table(title="Suggested replies, best first", title_justify="left")
        for column in ("Score", "Source", "Reply", "Id"):
            table.add_column(column, no_wrap=column in ("Score", "Id"))
        for suggestion in suggested:
            source = suggestion.source.conversation_id or "knowledge base"
            table.add_row(f"{suggestion.score:.2f}", source, suggestion.text, suggestion.id)
        out.print(table)

    run(main)


def conversation_exclude(
    conversation_id: Annotated[str, typer.Argument(help="The conversation id.")],
    by: Annotated[str, typer.Option(help="Who excludes it (kept with the exclusion).")] = "ops",
) -> None:
    """Keep a conversation's replies out of suggestions from now on (before or after its close)."""
    from handoff.assist import exclude_from_index

    async def main() -> None:
        settings = Settings()
        with open_store(settings) as store:
            if store.summary(conversation_id) is None:
                raise ConversationNotFound(f"no conversation {conversation_id!r} in the database")
            removed = exclude_from_index(store, conversation_id, by)
        console().print(
            f"Conversation {conversation_id} is kept out of suggestions ({removed} indexed repl"
            f"{'y' if removed == 1 else 'ies'} taken out).",
            soft_wrap=True,  # one line, however narrow the terminal: scripts read it
        )

    run(main)
