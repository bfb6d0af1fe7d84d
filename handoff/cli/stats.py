"""`handoff stats`: the statistics of `handoff.stats`, computed from the recorded facts, as tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import typer
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from handoff.cli.connections import open_store
from handoff.cli.format import fmt_duration
from handoff.cli.main import console, fail, run
from handoff.config import Settings


def stats(
    since: Annotated[str | None, typer.Option(help="From this date or time (ISO, UTC unless given).")] = None,
    until: Annotated[str | None, typer.Option(help="Until this date (inclusive) or time (exclusive).")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent id.")] = None,
) -> None:
    """The statistics, computed from the recorded facts in the database."""
    from handoff.stats import compute_stats

    async def main() -> None:
        with open_store(Settings()) as store:
            result = compute_stats(
                store, since=parse_when(since), until=parse_when(until, end_of_day=True), agent_id=agent
            )
        for table in stats_tables(result.model_dump(mode="json")):
            console().print(table)

    run(main)


def parse_when(value: str | None, end_of_day: bool = False) -> datetime | None:
    """An ISO date or date-time; naive values are UTC; a bare date as --until means the whole day."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1) if end_of_day else day, time(), tzinfo=UTC)
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(f"cannot read {value!r} as a date or time; use e.g. 2025-06-01 or 2025-06-01T14:00")
    return at if at.tzinfo else at.replace(tzinfo=UTC)


LABELS = {
    "conversations_started": "Conversations started",
    "closed_resolved": "Closed as resolved",
    "closed_not_resolved": "Closed as not resolved",
    "handled_by_bot_alone": "Handled by the bot alone",
    "handled_with_agent": "Handled with an agent",
    "human_requests": "Requests for a person",
    "take_overs": "Take-overs",
    "hand_backs": "Hand-backs",
    "first_response_time": "First agent response",
    "closed_inactive": "Closed as inactive",
    "handoff_rate": "Hand-off rate",
    "bot_resolution_rate": "Closed by the bot alone",
    "abandoned_in_queue": "Abandoned in the queue",
    "waiting_sla_breaches": "Waiting SLA breaches",
    "first_reply_sla_breaches": "First-reply SLA breaches",
    "per_agent": "Per agent",
    "per_day": "Per day (UTC)",
}
# Column headers of the per-agent and per-day tables: short, they sit side by side.
SHORT_LABELS = {
    "conversations_started": "Started",
    "closed_resolved": "Resolved",
    "closed_not_resolved": "Not resolved",
    "resolution_rate": "Resolution",
    "handled_by_bot_alone": "Bot alone",
    "handled_with_agent": "With agent",
    "human_requests": "Person asked",
    "first_response_time": "First response",
    "closed_inactive": "Inactive",
    "handoff_rate": "Hand-off",
    "bot_resolution_rate": "Bot closed",
    "abandoned_in_queue": "Abandoned",
    "waiting_sla_breaches": "Waiting SLA",
    "first_reply_sla_breaches": "Reply SLA",
    "agent_id": "Agent",
    "agent_name": "Name",
}


def label(key: str, short: bool = False) -> str:
    return (short and SHORT_LABELS.get(key)) or LABELS.get(key) or key.replace("_", " ").capitalize()


def is_duration(value: Any) -> bool:
    return isinstance(value, dict) and "median_seconds" in value


def fmt_value(key: str, value: Any, compact: bool = False) -> str:
    """One statistics value as text: rates as percents, durations as median / p90 with counts."""
    if value is None:
        return "–"
    if is_duration(value) and compact:
        if not value.get("count"):
            return "–"
        return f"{fmt_duration(value['median_seconds'])} / {fmt_duration(value['p90_seconds'])}"
    if is_duration(value):
        if not value.get("count"):
            text = "none completed"
        else:
            median, p90 = fmt_duration(value["median_seconds"]), fmt_duration(value["p90_seconds"])
            text = f"median {median}, p90 {p90} (n={value['count']})"
        return f"{text}, {value['open']} still open" if value.get("open") else text
    if isinstance(value, dict) and compact:
        return " / ".join(fmt_value(k, v) for k, v in value.items())
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt_value(k, v)}" for k, v in value.items())
    if isinstance(value, float) and "rate" in key:
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def stats_tables(data: dict[str, Any]) -> list[RenderableType]:
    """Render the statistics from their model_dump(mode="json"): each object (the totals) as a
    metric/value table, each list (per agent, per day) as a table of counts and a table of
    durations and message counts.

    Generic over the fields, so a figure added to `handoff.stats` shows up without a change here.
    """
    window = [f"{label(k).lower()} {fmt_value(k, v)}" for k, v in data.items() if not isinstance(v, dict | list)]
    scope = "; ".join(w for w in window if not w.endswith("–")) or "all time, all agents"
    tables: list[RenderableType] = [Text(f"Statistics: {scope} (times in UTC)", style="bold")]
    for key, value in data.items():
        if isinstance(value, dict):
            table = Table(title=label(key), show_header=False, title_justify="left")
            table.add_column(style="bold")
            table.add_column()
            for k, v in value.items():
                table.add_row(label(k), fmt_value(k, v))
            tables.append(table)
        elif isinstance(value, list):
            tables += list_tables(label(key), [row for row in value if isinstance(row, dict)])
    return tables


def list_tables(title: str, rows: list[dict[str, Any]]) -> list[RenderableType]:
    if not rows:
        return [Text(f"{title}: nothing recorded", style="italic")]
    columns = list(dict.fromkeys(c for row in rows for c in row))
    # Identifying text columns (the day, the agent) first; then counts; then nested figures.
    keys = [c for c in columns if all(isinstance(r.get(c), str) for r in rows)]
    nested = [c for c in columns if any(isinstance(r.get(c), dict) for r in rows)]
    counts = [c for c in columns if c not in keys and c not in nested]
    tables: list[RenderableType] = []
    for part, part_title in ((counts, title), (nested, f"{title}: times and messages")):
        if not part:
            continue
        table = Table(title=part_title, title_justify="left")
        for column in keys:
            table.add_column(label(column, short=True), no_wrap=True)
        for column in part:
            header = label(column, short=True)
            sample = next((r[column] for r in rows if isinstance(r.get(column), dict)), None)
            if is_duration(sample):
                header += " (median / p90)"
            elif isinstance(sample, dict):
                header += f" ({' / '.join(sample)})"
            table.add_column(header, justify="right")
        for row in rows:
            table.add_row(*(fmt_value(c, row.get(c), compact=True) for c in [*keys, *part]))
        tables.append(table)
    return tables
