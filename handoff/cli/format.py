"""How values and transcripts look on screen: times in UTC, durations, agents, the two views
of a transcript (the agents' with system notes, the customer's without)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy
from rich.table import Table

from handoff.models import CUSTOMER_VISIBLE, Agent, EntryKind, TranscriptEntry


def fmt_time(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "–"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24:02d} h"


def fmt_agent(agent: Agent | None) -> str:
    return f"{agent.name} ({agent.id})" if agent else "–"


def redacted(url: str) -> str:
    """A database URL fit to print: no password."""
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def transcript_table(entries: Sequence[TranscriptEntry], title: str) -> Table:
    """The agents' view: every entry with its sequence number, kind and author."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Time", no_wrap=True)
    table.add_column("Kind")
    table.add_column("Author")
    table.add_column("Text", overflow="fold")
    for e in entries:
        style = "italic dim" if e.kind is EntryKind.SYSTEM else ""
        table.add_row(str(e.seq), fmt_time(e.at), e.kind.value, e.author, e.text, style=style)
    return table


def customer_table(entries: Sequence[TranscriptEntry], title: str) -> Table:
    """The customer's view: messages only, as the chat widget shows them (never system notes)."""
    table = Table(title=title, title_justify="left")
    table.add_column("Time", no_wrap=True)
    table.add_column("From")
    table.add_column("Text", overflow="fold")
    for e in entries:
        if e.kind in CUSTOMER_VISIBLE:
            table.add_row(fmt_time(e.at), "you" if e.kind is EntryKind.CUSTOMER else e.author, e.text)
    return table
