"""`handoff conversations transfer | release | note`: an agent's hand-offs from the command line.

The agent acting is named by id (`--as`), from the agents file (HANDOFF_AGENTS_FILE, else the
demo agents), as the API knows them; the command goes to the workflow as the API's would.
"""

from __future__ import annotations

from typing import Annotated

import typer

from handoff.agents import AgentDirectory
from handoff.cli.connections import connect, open_store
from handoff.cli.main import console, fail, run
from handoff.config import Settings
from handoff.models import Agent, ConversationSummary

AgentOption = Annotated[str, typer.Option("--as", help="The id of the agent acting (from the agents file).")]
ConversationArgument = Annotated[str, typer.Argument(help="The conversation id.")]


def agent_by_id(settings: Settings, agent_id: str) -> Agent:
    agent = AgentDirectory.from_settings(settings.agents_file).by_id(agent_id)
    if agent is None:
        fail(f"no agent {agent_id!r} in the agents file")
    return agent


def _print(summary: ConversationSummary) -> None:
    holder = f", held by {summary.agent.name} ({summary.agent.id})" if summary.agent else ""
    console().print(f"Conversation {summary.conversation_id}: {summary.status.value}{holder}.", soft_wrap=True)


def transfer(
    conversation_id: ConversationArgument,
    agent_id: AgentOption,
    to: Annotated[str, typer.Option(help="The id of the agent who holds it next.")],
    note: Annotated[str | None, typer.Option(help="An internal note for agents (never the customer).")] = None,
) -> None:
    """Give a conversation you hold to another agent."""

    async def main() -> None:
        settings = Settings()
        agent, target = agent_by_id(settings, agent_id), agent_by_id(settings, to)
        with open_store(settings) as store:  # the target's capacity and status are read there
            handoff = await connect(settings, store)
            _print(await handoff.transfer(conversation_id, agent, target, note))

    run(main)


def release(conversation_id: ConversationArgument, agent_id: AgentOption) -> None:
    """Put a conversation you hold back in the Waiting column."""

    async def main() -> None:
        settings = Settings()
        agent = agent_by_id(settings, agent_id)
        with open_store(settings) as store:  # the slot it frees is counted there
            handoff = await connect(settings, store)
            _print(await handoff.release(conversation_id, agent))

    run(main)


def note(
    conversation_id: ConversationArgument,
    text: Annotated[str, typer.Argument(help="The note: agents see it, the customer never does.")],
    agent_id: AgentOption,
) -> None:
    """Add an internal note to a conversation that is not closed."""

    async def main() -> None:
        settings = Settings()
        agent = agent_by_id(settings, agent_id)
        handoff = await connect(settings)
        _print(await handoff.add_note(conversation_id, agent, text))

    run(main)
