"""The statistics index: each conversation's facts turned into the rows the statistics add up.

Why: `/stats` used to stream every fact of the window into Python (`handoff.stats`'s
`compute_stats_reference`, kept as the test oracle), which takes seconds at 10,000 conversations
and minutes at a million. The figures are counts, durations and percentiles of events that each
belong to one conversation, so they can be precomputed per conversation and added up in SQL.

`stat_rows(facts)` walks one conversation's facts (in number order) exactly as the reference does
with no window, and yields one `StatRow` per thing the reference would count:

- a count (`kind` one of `COUNTS` / `msg_<entry kind>`) at the time of the fact it counts, with
  the agent it is attributed to (`ATTRIBUTED` kinds) or none;
- a completed duration (`wait`, `first_response`, `handling`): `at` is when it ended, `value` its
  length in seconds (the reference's `timedelta.total_seconds()`, the same float);
- an interval that may be open (`wait_open`, `first_response_open`, `handling_open`): `at` is when
  it started, `end_at` when it ended (None: still open), `past_day` whether it was still unfinished
  at the end of its start day. Whether it is open in a window [since, until) is then a condition
  on those columns (`end_at is null or end_at >= until`; per day, `past_day or end_at >= until`).

Windows need nothing else because a conversation's facts are numbered in time order (all but
messages that change nothing else, see `standalone_rows`: a bot answer keeps the number reserved
when it was asked for, and its own time; such a row counts at its own time whatever its place):
the facts before `until` are a prefix of the conversation, and every row of that prefix is the same whether
the walk stops at `until` or not (the reference skips the facts at or after `until`; an interval
they would have ended is then open, which the `end_at >= until` condition says). The two
properties of the whole conversation "as recorded now" (taken over at all, handed off at all) are
the reference's too.

The rows are rewritten, for the whole conversation, in the transaction that inserts any of its
facts (`Store._write`), under a per-conversation lock: a retry that inserts nothing rewrites
nothing, a fact written twice is one fact, and facts arriving in any order or in concurrent
transactions give the rows of the facts as finally recorded. `conversation_agents` lists who
took over (or was transferred) each conversation, for the agent filter and the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from handoff.models import EntryKind, FactKind, Outcome

WAIT_DONE, FIRST_RESPONSE_DONE, HANDLING_DONE = "wait", "first_response", "handling"
DONE = (WAIT_DONE, FIRST_RESPONSE_DONE, HANDLING_DONE)
OPEN = {f"{what}_open": what for what in DONE}  # the open-interval kinds, to the duration they open

# Counted kinds, to the reference's tally field they add to.
COUNTS = {
    "started": "started",
    "with_agent": "with_agent",
    "bot_alone": "bot_alone",
    "handed_off": "handed_off",
    "request": "requests",
    "take_over": "take_overs",
    "hand_back": "hand_backs",
    "resolved": "resolved",
    "not_resolved": "not_resolved",
    "inactive": "inactive",
    "abandoned": "abandoned",
    "closed_without_agent": "closed_without_agent",
    "transfer": "transfers",
    "waiting_breach": "waiting_breaches",
    "first_reply_breach": "first_reply_breaches",
}
MESSAGE_PREFIX = "msg_"

# Kinds that belong to an agent (the agent filter keeps them only for that agent); the others
# belong to the conversation (kept under an agent filter when that agent took it over).
ATTRIBUTED = frozenset(
    {
        "take_over",
        "hand_back",
        "resolved",
        "not_resolved",
        "inactive",
        "abandoned",
        "closed_without_agent",
        "transfer",
        "first_reply_breach",
        MESSAGE_PREFIX + EntryKind.AGENT.value,
        *DONE,
        *OPEN,
    }
)


@dataclass(frozen=True)
class FactRow:
    """The columns of one fact the statistics need."""

    number: int
    kind: FactKind
    at: datetime
    entry_kind: EntryKind | None
    agent_id: str | None
    outcome: Outcome | None


@dataclass(frozen=True)
class StatRow:
    kind: str
    at: datetime
    agent_id: str | None = None
    value: float | None = None
    end_at: datetime | None = None
    past_day: bool | None = None

    @property
    def day(self) -> date:
        return self.at.date()


def fact_row(
    number: int, kind: str, at: datetime, entry_kind: str | None, agent_id: str | None, outcome: str | None
) -> FactRow:
    """A `FactRow` from database columns."""
    return FactRow(
        number=number,
        kind=FactKind(kind),
        at=at,
        entry_kind=EntryKind(entry_kind) if entry_kind else None,
        agent_id=agent_id,
        outcome=Outcome(outcome) if outcome else None,
    )


def _interval(kind: str, start: datetime, end: datetime | None, agent_id: str | None) -> StatRow:
    day_end = datetime.combine(start.date() + timedelta(days=1), time(), tzinfo=UTC)
    return StatRow(kind=kind + "_open", at=start, agent_id=agent_id, end_at=end, past_day=end is None or end >= day_end)


@dataclass
class _Held:
    agent_id: str
    since: datetime
    first_reply: datetime | None = None


def stat_rows(facts: Iterable[FactRow]) -> Iterator[StatRow]:
    """The statistics rows of one conversation, from its non-note facts (see the module doc)."""
    rows = sorted(facts, key=lambda f: f.number)
    taken_over_by = {r.agent_id for r in rows if r.kind in (FactKind.TAKEN_OVER, FactKind.TRANSFERRED)}
    handed_off = bool(taken_over_by) or any(r.kind is FactKind.HUMAN_REQUESTED for r in rows)
    waiting_since: datetime | None = None
    held: _Held | None = None

    def ended(held: _Held, at: datetime) -> Iterator[StatRow]:
        """The open-interval rows of an assignment ending at `at`."""
        yield _interval(HANDLING_DONE, held.since, at, held.agent_id)
        yield _interval(FIRST_RESPONSE_DONE, held.since, held.first_reply or at, held.agent_id)

    for r in rows:
        match r.kind:
            case FactKind.STARTED:
                yield StatRow("started", r.at)
                yield StatRow("with_agent" if taken_over_by else "bot_alone", r.at)
                if handed_off:
                    yield StatRow("handed_off", r.at)
            case FactKind.HUMAN_REQUESTED:
                yield StatRow("request", r.at)
                waiting_since = r.at
            case FactKind.TAKEN_OVER if r.agent_id is not None:
                yield StatRow("take_over", r.at, r.agent_id)
                if waiting_since is not None:
                    yield StatRow(WAIT_DONE, r.at, r.agent_id, value=(r.at - waiting_since).total_seconds())
                    yield _interval(WAIT_DONE, waiting_since, r.at, None)
                waiting_since = None
                held = _Held(agent_id=r.agent_id, since=r.at)
            case FactKind.MESSAGE if r.entry_kind is EntryKind.AGENT:
                yield StatRow(MESSAGE_PREFIX + EntryKind.AGENT.value, r.at, r.agent_id)
                if held is not None and held.first_reply is None and held.agent_id == r.agent_id:
                    yield StatRow(FIRST_RESPONSE_DONE, r.at, r.agent_id, value=(r.at - held.since).total_seconds())
                    held.first_reply = r.at
            case FactKind.MESSAGE if r.entry_kind is not None:
                yield StatRow(MESSAGE_PREFIX + r.entry_kind.value, r.at)
            case FactKind.HANDED_BACK | FactKind.CLOSED:
                if r.kind is FactKind.HANDED_BACK:
                    yield StatRow("hand_back", r.at, r.agent_id)
                elif r.outcome is Outcome.RESOLVED:
                    yield StatRow("resolved", r.at, r.agent_id)
                elif r.outcome is Outcome.INACTIVE:
                    yield StatRow("inactive", r.at, r.agent_id)
                    if waiting_since is not None:
                        yield StatRow("abandoned", r.at, r.agent_id)
                else:
                    yield StatRow("not_resolved", r.at, r.agent_id)
                if r.kind is FactKind.CLOSED and not handed_off:
                    yield StatRow("closed_without_agent", r.at, r.agent_id)
                if held is not None:
                    yield StatRow(HANDLING_DONE, r.at, r.agent_id, value=(r.at - held.since).total_seconds())
                    yield from ended(held, r.at)
                held = None
                if waiting_since is not None:
                    yield _interval(WAIT_DONE, waiting_since, r.at, None)
                    waiting_since = None
            case FactKind.TRANSFERRED | FactKind.RELEASED if held is not None:
                if r.kind is FactKind.TRANSFERRED:
                    yield StatRow("transfer", r.at, held.agent_id)
                yield StatRow(HANDLING_DONE, r.at, held.agent_id, value=(r.at - held.since).total_seconds())
                yield from ended(held, r.at)
                if r.kind is FactKind.TRANSFERRED and r.agent_id is not None:
                    held = _Held(agent_id=r.agent_id, since=r.at)
                else:
                    held = None
                    waiting_since = r.at
            case FactKind.WAITING_SLA_BREACHED:
                yield StatRow("waiting_breach", r.at)
            case FactKind.FIRST_REPLY_SLA_BREACHED:
                yield StatRow("first_reply_breach", r.at, r.agent_id)
    if waiting_since is not None:
        yield _interval(WAIT_DONE, waiting_since, None, None)
    if held is not None:
        yield _interval(HANDLING_DONE, held.since, None, held.agent_id)
        yield _interval(FIRST_RESPONSE_DONE, held.since, held.first_reply, held.agent_id)


def standalone_rows(fact: FactRow) -> list[StatRow] | None:
    """The rows of a fact that changes nothing else in its conversation's rows, wherever it falls
    among the others; None for any other fact.

    A note yields nothing; a customer, bot or system message yields its one count, and touches
    none of the walk's state (waits, assignments, first replies) nor the two whole-conversation
    properties. So writing one adds exactly its rows to the conversation's, whatever order the
    facts arrive in: the store then appends them instead of rewriting the conversation, which
    keeps a message's cost flat in a conversation of thousands (bench growth)."""
    if fact.kind is FactKind.NOTE:
        return []
    if fact.kind is FactKind.MESSAGE and fact.entry_kind not in (None, EntryKind.AGENT):
        assert fact.entry_kind is not None
        return [StatRow(MESSAGE_PREFIX + fact.entry_kind.value, fact.at)]
    return None


def handlers(facts: Iterable[FactRow]) -> set[str]:
    """The agents who took the conversation over, or were transferred it, at any time."""
    return {
        f.agent_id for f in facts if f.kind in (FactKind.TAKEN_OVER, FactKind.TRANSFERRED) and f.agent_id is not None
    }


def db_row(conversation_id: str, seq: int, row: StatRow) -> dict[str, Any]:
    """One `stat_events` row, as insert parameters."""
    return {
        "conversation_id": conversation_id,
        "seq": seq,
        "kind": row.kind,
        "at": row.at,
        "day": row.day,
        "agent_id": row.agent_id,
        "value": row.value,
        "end_at": row.end_at,
        "past_day": row.past_day,
    }


def db_rows(conversation_id: str, facts: list[FactRow]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The `stat_events` and `conversation_agents` rows of one conversation, as insert parameters."""
    events = [db_row(conversation_id, seq, row) for seq, row in enumerate(stat_rows(facts))]
    if not events:
        return [], []
    first_at, last_at = min(e["at"] for e in events), max(e["at"] for e in events)
    agents = [
        {"conversation_id": conversation_id, "agent_id": a, "first_at": first_at, "last_at": last_at}
        for a in sorted(handlers(facts))
    ]
    return events, agents


# --- Counts per day (`stat_counts`): the rollup long windows add up instead of every row.

STILL_OPEN = date(9999, 12, 31)
"""The `end_day` of an interval not finished yet (later than any `until`)."""
NO_AGENT = ""
"""The `agent_id` of the counts of every agent together (a key column cannot be NULL)."""
# The scopes of `stat_counts` rows: per day for everyone (the totals and days of a window), per
# day and agent, per month and agent (the agents of a window: its whole months, then its days).
ALL_DAY, AGENT_DAY, AGENT_MONTH = "d", "a", "m"

CountKey = tuple[str, date, str, str, date]


def month_of(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def count_keys(kind: str, at: datetime, agent_id: str | None, end_at: datetime | None) -> list[CountKey]:
    """The `stat_counts` keys one `stat_events` row counts under: (scope, day or month, kind,
    agent, end day). For an interval that may be open the end day is the day it ended
    (`STILL_OPEN`: not yet); other kinds repeat the day.

    The day an interval ended is all a whole day needs to know: open on its start day when it
    ended on a later day, open at the end of a window when it ended on a later day than the
    window's last one (those ending on that last day are looked up, see `handoff.stats`). In a
    month row an end within the month is just "the month" (the month's intervals are open at the
    end of a window it lies in only if they ended after it); later ends are kept."""
    day = at.date()
    end_day = (STILL_OPEN if end_at is None else end_at.date()) if kind in OPEN else day
    keys = [(ALL_DAY, day, kind, NO_AGENT, end_day)]
    if agent_id is not None:
        month = month_of(day)
        keys.append((AGENT_DAY, day, kind, agent_id, end_day))
        keys.append((AGENT_MONTH, month, kind, agent_id, end_day if end_day >= next_month(day) else month))
    return keys


def count_deltas(removed: Iterable[CountKey], added: Iterable[CountKey]) -> list[dict[str, Any]]:
    """What rewriting index rows changes in `stat_counts`, as upsert parameters sorted by key
    (so concurrent writers lock the rows in one order), without the keys left unchanged."""
    n: dict[CountKey, int] = {}
    for key in removed:
        n[key] = n.get(key, 0) - 1
    for key in added:
        n[key] = n.get(key, 0) + 1
    return [
        {"scope": scope, "day": day, "kind": kind, "agent_id": agent_id, "end_day": end_day, "n": delta}
        for (scope, day, kind, agent_id, end_day), delta in sorted(n.items())
        if delta
    ]


def backfill_counts_sql(dialect: str) -> list[str]:
    """The statements filling `stat_counts` from the `stat_events` rows already recorded
    (migration 0008, the bench): the keys of `count_keys`, in SQL."""
    open_kinds = ", ".join(f"'{k}'" for k in sorted(OPEN))
    if dialect == "sqlite":
        end_at_day, month, after = (
            "date(end_at)",
            "date(day, 'start of month')",
            "date(day, 'start of month', '+1 month')",
        )
    else:
        end_at_day = "CAST(end_at AS date)"
        month = "CAST(date_trunc('month', day) AS date)"
        after = "CAST(date_trunc('month', day) + interval '1 month' AS date)"
    end_day = f"CASE WHEN kind IN ({open_kinds}) THEN COALESCE({end_at_day}, '{STILL_OPEN.isoformat()}') ELSE day END"
    insert = "INSERT INTO stat_counts (scope, day, kind, agent_id, end_day, n) "
    return [
        f"{insert}SELECT '{ALL_DAY}', day, kind, '{NO_AGENT}', {end_day}, count(*) FROM stat_events "
        "GROUP BY day, kind, 5",
        f"{insert}SELECT '{AGENT_DAY}', day, kind, agent_id, {end_day}, count(*) FROM stat_events "
        "WHERE agent_id IS NOT NULL GROUP BY day, kind, agent_id, 5",
        f"{insert}SELECT '{AGENT_MONTH}', {month}, kind, agent_id, "
        f"CASE WHEN end_day >= {after} THEN end_day ELSE {month} END, sum(n) FROM stat_counts "
        f"WHERE scope = '{AGENT_DAY}' GROUP BY 2, kind, agent_id, 5",
    ]
