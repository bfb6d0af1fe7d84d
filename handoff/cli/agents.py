"""`handoff agents list | status`: the team at work from the command line (issue 10).

`list` reads the database only; `status` writes the agent's status there (and, going offline
with HANDOFF_OFFLINE_RETURNS=true, puts what they hold back in the queue through Temporal).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from handoff import presence
from handoff.agents import AgentDirectory
from handoff.availability import AgentStatus
from handoff.cli.connections import connect, open_store
from handoff.cli.format import fmt_duration, fmt_time
from handoff.cli.main import console, run
from handoff.cli.people import AgentOption, agent_by_id
from handoff.config import Settings


def list_agents() -> None:
    """Every agent of the agents file: status, conversations held, capacity."""
    settings = Settings()
    directory = AgentDirectory.from_settings(settings.agents_file)
    with open_store(settings) as store:
        rows = presence.team(store, [e.agent for e in directory.agents], directory.capacities(settings.agent_capacity))
    table = Table("Agent", "Id", "Status", "Holding", "Capacity", "Since")
    for row in rows:
        table.add_row(
            row.agent.name,
            row.agent.id,
            row.status.value,
            str(row.holding),
            str(row.capacity),
            fmt_time(row.status_since),
        )
    console().print(table)


def agent_stats(
    since: Annotated[str | None, typer.Option(help="From this date or time (ISO, UTC unless given).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this date or time (a bare date includes it).")] = None,
) -> None:
    """Per agent: time online, conversation-seconds held, occupancy, assignments automatic and manual."""
    from handoff.cli.stats import parse_when

    settings = Settings()
    directory = AgentDirectory.from_settings(settings.agents_file)
    with open_store(settings) as store:
        rows = presence.work_stats(
            store,
            [e.agent for e in directory.agents],
            directory.capacities(settings.agent_capacity),
            parse_when(since),
            parse_when(until, end_of_day=True),
        )
    table = Table("Agent", "Online", "Held", "Capacity", "Occupancy", "Automatic", "Manual")
    for row in rows:
        table.add_row(
            row.agent.name,
            fmt_duration(row.online_seconds),
            fmt_duration(row.held_seconds),
            str(row.capacity),
            "-" if row.occupancy is None else f"{row.occupancy:.0%}",
            str(row.automatic_assignments),
            str(row.manual_assignments),
        )
    console().print(table)


def set_status(
    status: Annotated[AgentStatus, typer.Argument(help="online, away or offline.")],
    agent_id: AgentOption,
) -> None:
    """Set an agent's status (offline with HANDOFF_OFFLINE_RETURNS=true returns what they hold)."""
    from handoff.assignment import change_status

    async def main() -> None:
        settings = Settings()
        agent = agent_by_id(settings, agent_id)
        capacities = AgentDirectory.from_settings(settings.agents_file).capacities(settings.agent_capacity)
        with open_store(settings) as store:
            if status is AgentStatus.OFFLINE and settings.offline_returns:
                handoff = await connect(settings, store)
                await change_status(handoff, store, agent, status, offline_returns=True)
            else:
                presence.set_status(store, agent.id, status)
            now = presence.team(store, [agent], capacities)[0]
        console().print(
            f"{agent.name} ({agent.id}) is {now.status.value}, holding {now.holding} of {now.capacity}.", soft_wrap=True
        )

    run(main)
