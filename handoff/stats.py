"""Support statistics, computed from the recorded facts (the `facts` table of `handoff.store`).

Why facts and not Temporal or the `conversations` table: facts are written idempotently
(one row per event, keyed `{conversation_id}:{number}`) and outlive Temporal's retention, so
the figures are the same however often an activity was retried and however old the window.
The `conversations` projection holds only each conversation's latest state, which cannot tell
how long a customer waited or who held a conversation before.

Definitions (mirrored in README.md, section "Statistics")
-------------------------------------------------------

Window. `since`/`until` bound fact times, half-open: a fact counts when
`since <= at < until` (either bound may be omitted; naive datetimes are taken as UTC).
Everything recorded at or after `until` is treated as not having happened yet, except for
"handled by the bot alone / with an agent", which is a property of the conversation as recorded
now, and of the agent filter (see below). An empty window (since >= until) has all zero figures.

Counts (each is the number of facts of that kind in the window):
- conversations_started: `conversation_started` facts.
- closed_resolved / closed_not_resolved: `closed` facts by outcome.
- resolution_rate: closed_resolved / (closed_resolved + closed_not_resolved); null when nothing
  was closed.
- handled_by_bot_alone / handled_with_agent: of the conversations started in the window, those
  that have never been taken over (so far, whatever the window: this includes conversations still
  waiting for a person) / those taken over at least once. The two add up to conversations_started.
- human_requests: `human_requested` facts (the customer asked, or the bot decided to hand over).
- take_overs, hand_backs: `taken_over`, `handed_back` facts.
- messages: `message` facts by author kind: customer, bot, agent. System notes are not counted.

Durations (seconds; each completed interval is counted in the window, day and agent of the fact
that ENDS it, so every figure describes what happened in the window):
- waiting_time: from a `human_requested` fact to the next `taken_over` of that conversation
  (an agent may also take a conversation straight from the bot: such a take-over ends no wait).
  Attributed to the agent who took over.
- first_response_time: from a `taken_over` fact to that agent's first message in the same
  assignment (before the hand-back or close that ends it). An assignment ended without any agent
  message has no first response: it adds nothing to `count` (only to `open`, while it lasts).
- handling_time: from a `taken_over` fact to the `handed_back` or `closed` fact ending that
  assignment.
Each duration figure has `count` (completed intervals), `median_seconds` and `p90_seconds`
(null when count is 0) and `open`: intervals that START in the window and are unfinished at its
end (`until`, or everything recorded so far) - a customer still waiting, an agent still holding a
conversation (open handling), or holding it without having replied yet (open first response).
Open intervals are never part of the percentiles, which would otherwise depend on when the query
runs. In per_day an interval is open on the day it started when it was unfinished at the end of
that day (or of the window, if earlier), so that every day's figures are exactly those of a
window covering just that day.

Percentiles: linear interpolation between closest ranks (numpy's default, R type 7): for the
sorted values x[0..n-1] and p in [0, 1], h = (n - 1) * p and the result is
x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). The median is p = 0.5 (the usual
median, the mean of the two middle values for even n); p90 is p = 0.9. Results are rounded to
the millisecond.

Agent filter (`agent_id`). Facts that carry an agent - take-overs, hand-backs, closes, agent
messages, and the durations attributed to an agent - count only when that agent is `agent_id`.
Facts without an agent - conversations started, requests for a person, customer and bot
messages - count only in conversations that agent took over at least once, at any time (so
handled_by_bot_alone is 0 under an agent filter). Open waits belong to no agent yet and are left
out under an agent filter.

per_agent: the agent-attributable figures of every agent with at least one counted fact or
interval, sorted by name then id; the name is the latest one recorded for the id.
per_day: the totals per UTC calendar day of the fact's time, for every day from the first to the
last day with something counted (days with nothing in between are included, all zero); for a
day inside the window they equal the totals of the window [that day 00:00, next day 00:00).

Two computations of these definitions. `compute_stats_reference` is the definition in code: one
SQL query loads the narrow columns (no text) of the non-note facts of the conversations with a
fact in the window (and, under an agent filter, that the agent took over); the rest is a single
pass in Python, grouped by conversation. `compute_stats`, the product path, adds up the
statistics index of handoff/stat_events.py and its counts per day in SQL (docs/stats-at-scale.md);
the tests hold the two equal. One difference, by the definition above: an agent's name is the latest recorded for
the id before `until`, where the reference looked only at the conversations it loaded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import Field

from handoff.models import EntryKind, FactKind, Model, Outcome
from handoff.stat_events import ATTRIBUTED, COUNTS, DONE, MESSAGE_PREFIX, OPEN
from handoff.store import Store, UTCDateTime, conversation_agents, facts, ratings, stat_counts, stat_events

# --- The result: what the /stats endpoint returns and the CLI prints.


class DurationStats(Model):
    """Completed intervals in the window (percentiles in seconds) and intervals still open."""

    count: int = 0
    median_seconds: float | None = None
    p90_seconds: float | None = None
    open: int = 0


class MessageCounts(Model):
    customer: int = 0
    bot: int = 0
    agent: int = 0


class RatingStats(Model):
    """Customers' satisfaction ratings given in the window (see docs/statistics.md)."""

    count: int = 0
    mean: float | None = None
    distribution: dict[int, int] = Field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))
    response_rate: float | None = None


class Totals(Model):
    conversations_started: int = 0
    closed_resolved: int = 0
    closed_not_resolved: int = 0
    resolution_rate: float | None = None
    handled_by_bot_alone: int = 0
    handled_with_agent: int = 0
    human_requests: int = 0
    take_overs: int = 0
    hand_backs: int = 0
    waiting_time: DurationStats = Field(default_factory=DurationStats)
    first_response_time: DurationStats = Field(default_factory=DurationStats)
    handling_time: DurationStats = Field(default_factory=DurationStats)
    messages: MessageCounts = Field(default_factory=MessageCounts)
    # Issue 9 (definitions in docs/statistics.md).
    closed_inactive: int = 0
    handoff_rate: float | None = None
    bot_resolution_rate: float | None = None
    abandoned_in_queue: int = 0
    waiting_sla_breaches: int = 0
    first_reply_sla_breaches: int = 0
    transfers: int = 0
    rating: RatingStats = Field(default_factory=RatingStats)


class DayStats(Totals):
    """The totals of one UTC calendar day."""

    day: date


class AgentStats(Model):
    agent_id: str
    agent_name: str
    take_overs: int = 0
    hand_backs: int = 0
    closed_resolved: int = 0
    closed_not_resolved: int = 0
    resolution_rate: float | None = None
    first_response_time: DurationStats = Field(default_factory=DurationStats)
    handling_time: DurationStats = Field(default_factory=DurationStats)
    messages: int = 0
    # Issue 9.
    closed_inactive: int = 0
    first_reply_sla_breaches: int = 0
    transfers: int = 0
    rating: RatingStats = Field(default_factory=RatingStats)


class Stats(Model):
    """The statistics of one window; `since`, `until`, `agent_id` echo the filters applied."""

    since: datetime | None = None
    until: datetime | None = None
    agent_id: str | None = None
    totals: Totals = Field(default_factory=Totals)
    per_agent: list[AgentStats] = Field(default_factory=list)
    per_day: list[DayStats] = Field(default_factory=list)


# --- Percentiles.


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"percentile {p} is not between 0 and 1")
    ordered = sorted(values)
    lo = _rank(len(ordered), p)
    return _interpolated(ordered[lo : lo + 2], len(ordered), p)


def _rank(n: int, p: float) -> int:
    """The rank (from 0) of the lower of the two values the `p` percentile of `n` values lies between."""
    return math.floor((n - 1) * p)


def _interpolated(pair: list[float], n: int, p: float) -> float:
    """The `p` percentile of `n` sorted values from the values at ranks `_rank(n, p)` and the next
    (just the first when it is the last value)."""
    h = (n - 1) * p
    lo = math.floor(h)
    if len(pair) == 1:
        return pair[0]
    return pair[0] + (h - lo) * (pair[1] - pair[0])


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _durations(done: list[float], open_: int) -> DurationStats:
    return DurationStats(
        count=len(done),
        median_seconds=_rounded(percentile(done, 0.5)),
        p90_seconds=_rounded(percentile(done, 0.9)),
        open=open_,
    )


def _rate(resolved: int, not_resolved: int) -> float | None:
    closed = resolved + not_resolved
    return resolved / closed if closed else None


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _ratings(scores: list[int], agent_closed: int) -> RatingStats:
    distribution = dict.fromkeys(range(1, 6), 0)
    for score in scores:
        distribution[score] = distribution.get(score, 0) + 1
    return RatingStats(
        count=len(scores),
        mean=_rounded(sum(scores) / len(scores)) if scores else None,
        distribution=distribution,
        response_rate=_ratio(len(scores), agent_closed),
    )


# --- Accumulating events.


WAIT, FIRST_RESPONSE, HANDLING = "wait", "first_response", "handling"


@dataclass
class _Tally:
    """The raw figures of one bucket (the totals, one day or one agent)."""

    started: int = 0
    bot_alone: int = 0
    with_agent: int = 0
    resolved: int = 0
    not_resolved: int = 0
    requests: int = 0
    take_overs: int = 0
    hand_backs: int = 0
    waits: list[float] = field(default_factory=list)
    first_responses: list[float] = field(default_factory=list)
    handlings: list[float] = field(default_factory=list)
    # Intervals still open, by WAIT, FIRST_RESPONSE, HANDLING.
    open: dict[str, int] = field(default_factory=dict)
    messages: dict[EntryKind, int] = field(default_factory=dict)
    # Issue 9.
    handed_off: int = 0
    inactive: int = 0
    closed_without_agent: int = 0
    abandoned: int = 0
    waiting_breaches: int = 0
    first_reply_breaches: int = 0
    transfers: int = 0
    ratings: list[int] = field(default_factory=list)
    # Durations summarised by the database (compute_stats): by WAIT, FIRST_RESPONSE, HANDLING,
    # (count, median, p90); the reference fills the lists above instead.
    summarised: dict[str, tuple[int, float | None, float | None]] = field(default_factory=dict)

    def duration(self, what: str, done: list[float]) -> DurationStats:
        open_ = self.open.get(what, 0)
        if what in self.summarised:
            count, median, p90 = self.summarised[what]
            return DurationStats(count=count, median_seconds=_rounded(median), p90_seconds=_rounded(p90), open=open_)
        return _durations(done, open_)

    def issue9_totals(self) -> dict[str, Any]:
        closed = self.resolved + self.not_resolved + self.inactive
        return {
            "closed_inactive": self.inactive,
            "handoff_rate": _ratio(self.handed_off, self.started),
            "bot_resolution_rate": _ratio(self.closed_without_agent, closed),
            "abandoned_in_queue": self.abandoned,
            "waiting_sla_breaches": self.waiting_breaches,
            "first_reply_sla_breaches": self.first_reply_breaches,
            "transfers": self.transfers,
            "rating": _ratings(self.ratings, self.resolved + self.not_resolved),
        }

    def totals(self) -> Totals:
        return Totals(
            conversations_started=self.started,
            closed_resolved=self.resolved,
            closed_not_resolved=self.not_resolved,
            resolution_rate=_rate(self.resolved, self.not_resolved),
            handled_by_bot_alone=self.bot_alone,
            handled_with_agent=self.with_agent,
            human_requests=self.requests,
            take_overs=self.take_overs,
            hand_backs=self.hand_backs,
            waiting_time=self.duration(WAIT, self.waits),
            first_response_time=self.duration(FIRST_RESPONSE, self.first_responses),
            handling_time=self.duration(HANDLING, self.handlings),
            messages=MessageCounts(
                customer=self.messages.get(EntryKind.CUSTOMER, 0),
                bot=self.messages.get(EntryKind.BOT, 0),
                agent=self.messages.get(EntryKind.AGENT, 0),
            ),
            **self.issue9_totals(),
        )

    def agent(self, agent_id: str, name: str) -> AgentStats:
        return AgentStats(
            agent_id=agent_id,
            agent_name=name,
            take_overs=self.take_overs,
            hand_backs=self.hand_backs,
            closed_resolved=self.resolved,
            closed_not_resolved=self.not_resolved,
            resolution_rate=_rate(self.resolved, self.not_resolved),
            first_response_time=self.duration(FIRST_RESPONSE, self.first_responses),
            handling_time=self.duration(HANDLING, self.handlings),
            messages=self.messages.get(EntryKind.AGENT, 0),
            closed_inactive=self.inactive,
            first_reply_sla_breaches=self.first_reply_breaches,
            transfers=self.transfers,
            rating=_ratings(self.ratings, self.resolved + self.not_resolved),
        )


@dataclass
class _Row:
    """The columns of one fact the statistics need (no text)."""

    conversation_id: str
    number: int
    kind: FactKind
    at: datetime
    entry_kind: EntryKind | None
    agent_id: str | None
    agent_name: str | None
    outcome: Outcome | None


@dataclass
class _Assignment:
    agent_id: str
    since: datetime
    first_reply: datetime | None = None


class _Accumulator:
    """Routes each event of the window to the totals, its UTC day and its agent."""

    def __init__(self, since: datetime | None, until: datetime | None, agent_filter: str | None) -> None:
        self.since = since
        self.until = until
        self.agent_filter = agent_filter
        self.total = _Tally()
        self.days: dict[date, _Tally] = {}
        self.agents: dict[str, _Tally] = {}
        self.names: dict[str, tuple[datetime, str]] = {}

    def in_window(self, at: datetime) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def name(self, agent_id: str, name: str | None, at: datetime) -> None:
        known = self.names.get(agent_id)
        if name and (known is None or at >= known[0]):
            self.names[agent_id] = (at, name)

    def _name(self, agent_id: str) -> str:
        known = self.names.get(agent_id)
        return known[1] if known else agent_id

    def _passes(self, agent_id: str | None, *, handled: bool, attributed: bool) -> bool:
        """The agent filter: `attributed` figures belong to `agent_id` (None for a wait no agent
        ended yet), the others to the conversation, which `handled` says the agent took over."""
        if self.agent_filter is None:
            return True
        return agent_id == self.agent_filter if attributed else handled

    def _day(self, at: datetime) -> _Tally:
        return self._on(at.date())

    def _on(self, day: date) -> _Tally:
        tally = self.days.get(day)
        if tally is None:
            tally = self.days[day] = _Tally()
        return tally

    def _agent(self, agent_id: str) -> _Tally:
        tally = self.agents.get(agent_id)
        if tally is None:
            tally = self.agents[agent_id] = _Tally()
        return tally

    def buckets(self, at: datetime, agent_id: str | None, *, handled: bool, attributed: bool) -> Iterator[_Tally]:
        """The tallies an event at `at` counts in: none outside the window or the agent filter."""
        if not self.in_window(at) or not self._passes(agent_id, handled=handled, attributed=attributed):
            return
        yield self.total
        yield self._day(at)
        if attributed and agent_id is not None:
            yield self._agent(agent_id)

    def opened(self, what: str, start: datetime, end: datetime | None, agent_id: str | None, *, handled: bool) -> None:
        """Count an interval starting in the window as open where it is unfinished: in the totals
        and for its agent when it has not ended before the end of the window (`end` is None), on
        its start day when it has not ended before the end of that day (or of the window)."""
        if not self.in_window(start) or not self._passes(agent_id, handled=handled, attributed=True):
            return
        day_end = datetime.combine(start.date() + timedelta(days=1), time(), tzinfo=UTC)
        if self.until is not None:
            day_end = min(day_end, self.until)
        tallies = [self._day(start)] if end is None or end >= day_end else []
        if end is None:
            tallies.append(self.total)
            if agent_id is not None:
                tallies.append(self._agent(agent_id))
        for t in tallies:
            t.open[what] = t.open.get(what, 0) + 1

    def conversation(self, rows: list[_Row]) -> None:
        """Walk one conversation's facts in order and count what falls in the window."""
        taken_over_by = {r.agent_id for r in rows if r.kind in (FactKind.TAKEN_OVER, FactKind.TRANSFERRED)}
        handled = self.agent_filter in taken_over_by
        handed_off = bool(taken_over_by) or any(r.kind is FactKind.HUMAN_REQUESTED for r in rows)
        waiting_since: datetime | None = None
        held: _Assignment | None = None

        def event(at: datetime, agent_id: str | None = None, *, attributed: bool = False) -> Iterator[_Tally]:
            return self.buckets(at, agent_id, handled=handled, attributed=attributed)

        for r in rows:
            if self.until is not None and r.at >= self.until:
                continue  # not happened yet, as seen from the end of the window
            if r.agent_id is not None:
                self.name(r.agent_id, r.agent_name, r.at)
            match r.kind:
                case FactKind.STARTED:
                    for t in event(r.at):
                        t.started += 1
                        if taken_over_by:
                            t.with_agent += 1
                        else:
                            t.bot_alone += 1
                        if handed_off:
                            t.handed_off += 1
                case FactKind.HUMAN_REQUESTED:
                    for t in event(r.at):
                        t.requests += 1
                    waiting_since = r.at
                case FactKind.TAKEN_OVER if r.agent_id is not None:
                    for t in event(r.at, r.agent_id, attributed=True):
                        t.take_overs += 1
                        if waiting_since is not None:
                            t.waits.append((r.at - waiting_since).total_seconds())
                    if waiting_since is not None:
                        # Open waits belong to no agent yet: `None`, whoever ended this one.
                        self.opened(WAIT, waiting_since, r.at, None, handled=handled)
                    waiting_since = None
                    held = _Assignment(agent_id=r.agent_id, since=r.at)
                case FactKind.MESSAGE if r.entry_kind is EntryKind.AGENT:
                    first = held is not None and held.first_reply is None and held.agent_id == r.agent_id
                    for t in event(r.at, r.agent_id, attributed=True):
                        t.messages[EntryKind.AGENT] = t.messages.get(EntryKind.AGENT, 0) + 1
                        if held is not None and first:
                            t.first_responses.append((r.at - held.since).total_seconds())
                    if held is not None and first:
                        held.first_reply = r.at
                case FactKind.MESSAGE if r.entry_kind is not None:
                    for t in event(r.at):
                        t.messages[r.entry_kind] = t.messages.get(r.entry_kind, 0) + 1
                case FactKind.HANDED_BACK | FactKind.CLOSED:
                    for t in event(r.at, r.agent_id, attributed=True):
                        if r.kind is FactKind.HANDED_BACK:
                            t.hand_backs += 1
                        elif r.outcome is Outcome.RESOLVED:
                            t.resolved += 1
                        elif r.outcome is Outcome.INACTIVE:
                            t.inactive += 1
                            t.abandoned += waiting_since is not None
                        else:
                            t.not_resolved += 1
                        if r.kind is FactKind.CLOSED and not handed_off:
                            t.closed_without_agent += 1
                        if held is not None:
                            t.handlings.append((r.at - held.since).total_seconds())
                    if held is not None:
                        self.opened(HANDLING, held.since, r.at, held.agent_id, handled=handled)
                        # Without a reply, the first-response interval ends with the assignment.
                        replied = held.first_reply or r.at
                        self.opened(FIRST_RESPONSE, held.since, replied, held.agent_id, handled=handled)
                    held = None
                    if waiting_since is not None:
                        # Closed from the queue (gone inactive): the wait ends without a take-over.
                        self.opened(WAIT, waiting_since, r.at, None, handled=handled)
                        waiting_since = None
                case FactKind.TRANSFERRED | FactKind.RELEASED if held is not None:
                    # The holder's assignment ends: a transfer starts the next holder's, a release a wait.
                    for t in event(r.at, held.agent_id, attributed=True):
                        t.transfers += r.kind is FactKind.TRANSFERRED
                        t.handlings.append((r.at - held.since).total_seconds())
                    self.opened(HANDLING, held.since, r.at, held.agent_id, handled=handled)
                    self.opened(FIRST_RESPONSE, held.since, held.first_reply or r.at, held.agent_id, handled=handled)
                    if r.kind is FactKind.TRANSFERRED and r.agent_id is not None:
                        held = _Assignment(agent_id=r.agent_id, since=r.at)
                    else:
                        held = None
                        waiting_since = r.at
                case FactKind.WAITING_SLA_BREACHED:
                    for t in event(r.at):
                        t.waiting_breaches += 1
                case FactKind.FIRST_REPLY_SLA_BREACHED:
                    for t in event(r.at, r.agent_id, attributed=True):
                        t.first_reply_breaches += 1
        # Still open at the end of the window.
        if waiting_since is not None:
            self.opened(WAIT, waiting_since, None, None, handled=handled)
        if held is not None:
            self.opened(HANDLING, held.since, None, held.agent_id, handled=handled)
            self.opened(FIRST_RESPONSE, held.since, held.first_reply, held.agent_id, handled=handled)

    def rating(self, score: int, at: datetime, agent_id: str | None, agent_name: str | None) -> None:
        """A rating counts in the window, day and agent (who closed the conversation) of its time."""
        if agent_id is not None:
            self.name(agent_id, agent_name, at)
        for t in self.buckets(at, agent_id, handled=False, attributed=True):
            t.ratings.append(score)

    def result(self, agent_id: str | None) -> Stats:
        per_day: list[DayStats] = []
        if self.days:
            day, last = min(self.days), max(self.days)
            while day <= last:
                tally = self.days.get(day, _Tally())
                per_day.append(DayStats(day=day, **tally.totals().model_dump()))
                day += timedelta(days=1)
        per_agent = [tally.agent(agent, self._name(agent)) for agent, tally in self.agents.items()]
        per_agent.sort(key=lambda a: (a.agent_name, a.agent_id))
        return Stats(
            since=self.since,
            until=self.until,
            agent_id=agent_id,
            totals=self.total.totals(),
            per_agent=per_agent,
            per_day=per_day,
        )


# --- Loading.


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _query(since: datetime | None, until: datetime | None, agent_id: str | None) -> sa.Select[Any]:
    """The needed columns of every non-note fact of the conversations the window touches."""
    query = sa.select(
        facts.c.conversation_id,
        facts.c.number,
        facts.c.kind,
        facts.c.at,
        facts.c.entry_kind,
        facts.c.agent_id,
        facts.c.agent_name,
        facts.c.outcome,
    ).where(facts.c.kind != FactKind.NOTE.value)
    if since is not None or until is not None:
        touched = sa.select(facts.c.conversation_id)
        if since is not None:
            touched = touched.where(facts.c.at >= since)
        if until is not None:
            touched = touched.where(facts.c.at < until)
        query = query.where(facts.c.conversation_id.in_(touched))
    if agent_id is not None:
        handled = sa.select(facts.c.conversation_id).where(
            facts.c.kind.in_([FactKind.TAKEN_OVER.value, FactKind.TRANSFERRED.value]), facts.c.agent_id == agent_id
        )
        query = query.where(facts.c.conversation_id.in_(handled))
    return query.order_by(facts.c.conversation_id, facts.c.number)


def _rows(store: Store, query: sa.Select[Any]) -> Iterator[list[_Row]]:
    """The query's rows, one list per conversation."""
    current: list[_Row] = []
    with store.engine.connect() as conn:
        for conversation_id, number, kind, at, entry_kind, agent, agent_name, outcome in conn.execute(query):
            if current and current[0].conversation_id != conversation_id:
                yield current
                current = []
            current.append(
                _Row(
                    conversation_id=conversation_id,
                    number=number,
                    kind=FactKind(kind),
                    at=at,
                    entry_kind=EntryKind(entry_kind) if entry_kind else None,
                    agent_id=agent,
                    agent_name=agent_name,
                    outcome=Outcome(outcome) if outcome else None,
                )
            )
    if current:
        yield current


def compute_stats_reference(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    agent_id: str | None = None,
) -> Stats:
    """The statistics of the window [since, until), optionally for one agent (see the module doc),
    computed by streaming the facts through Python: the definition in code, kept as the oracle
    `compute_stats` is tested against (tests/test_stats_scale.py) and the bench's baseline."""
    since, until = _utc(since), _utc(until)
    acc = _Accumulator(since, until, agent_id)
    if since is not None and until is not None and since >= until:
        return acc.result(agent_id)
    for rows in _rows(store, _query(since, until, agent_id)):
        acc.conversation(rows)
    query = sa.select(ratings.c.score, ratings.c.at, ratings.c.agent_id, ratings.c.agent_name)
    if agent_id is not None:
        query = query.where(ratings.c.agent_id == agent_id)
    if since is not None:
        query = query.where(ratings.c.at >= since)
    if until is not None:
        query = query.where(ratings.c.at < until)
    with store.engine.connect() as conn:
        for score, at, rated_agent, rated_name in conn.execute(query):
            acc.rating(score, at, rated_agent, rated_name)
    return acc.result(agent_id)


# --- The product path: the statistics index added up in SQL (handoff/stat_events.py).


def compute_stats(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    agent_id: str | None = None,
) -> Stats:
    """The statistics of the window [since, until), optionally for one agent (see the module doc).

    Equal to `compute_stats_reference` (tests/test_stats_scale.py), from the statistics index
    (docs/stats-at-scale.md): the counts of the window's whole days and months from `stat_counts`
    (no agent filter), of its partial days (or all of it, under an agent filter: that agent's
    conversations) from the index rows; the exact percentiles of the completed durations, read by
    rank from the durations in value order for a long window on PostgreSQL, else sorted
    (`percentile_cont`, the same interpolation; on SQLite in Python); the ratings grouped by day
    and by agent; each counted agent's latest name."""
    since, until = _utc(since), _utc(until)
    acc = _Accumulator(since, until, agent_id)
    if since is not None and until is not None and since >= until:
        return acc.result(agent_id)
    with store.engine.connect() as conn, conn.begin():
        dialect = conn.dialect.name
        if dialect == "postgresql":
            # One snapshot for the queries below, so that the figures agree with each other.
            conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            # Grouping and percentiles in memory, not in temporary files (the default is 4 MB).
            conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
        whole = _whole_days(since, until) if agent_id is None else None
        if whole is None:
            done = _add_counts(conn, acc, _where(dialect, since, until, agent_id), until)
        else:
            # The window's whole days from the counts per day, its partial first and last days
            # (and the intervals of the whole days that ended on the last one) from the rows.
            done = _add_day_counts(conn, acc, whole, until)
            first, last = _midnight(whole[0]), _midnight(whole[1])
            for lo, hi in ((since, first), (last, until)):
                if lo is not None and hi is not None and lo < hi:
                    _merge(done, _add_counts(conn, acc, _where(dialect, lo, hi, None), until))
        if agent_id is None and _long(since, until) and dialect == "postgresql":
            _add_durations_by_rank(conn, acc, since, until, done)
        else:
            _add_durations(conn, acc, _where(dialect, since, until, agent_id, DONE))
        _add_ratings(conn, acc, since, until, agent_id)
        _add_names(conn, acc, until)
    return acc.result(agent_id)


def _where(
    dialect: str,
    since: datetime | None,
    until: datetime | None,
    agent_id: str | None,
    kinds: tuple[str, ...] | None = None,
) -> list[sa.ColumnElement[bool]]:
    """The index rows of the window (by `at`) and agent filter, optionally of `kinds` only."""
    e = stat_events.c
    where: list[sa.ColumnElement[bool]] = []
    if kinds is not None:
        where.append(e.kind.in_(kinds))
    if since is not None:
        where.append(e.at >= since)
    if until is not None:
        where.append(e.at < until)
    if agent_id is not None:
        # The agent's conversations with index rows in the window, from the index alone
        # (`ix_conversation_agents_agent_span`: no visit of the table's scattered rows).
        a = conversation_agents.c
        handled = sa.select(a.conversation_id).where(a.agent_id == agent_id)
        if since is not None:
            handled = handled.where(a.last_at >= since)
        if until is not None:
            handled = handled.where(a.first_at < until)
        where.append(_any_of(dialect, e.conversation_id, handled))
        where.append(sa.or_(e.kind.not_in(sorted(ATTRIBUTED)), e.agent_id == agent_id))
    return where


def _any_of(dialect: str, column: sa.ColumnElement[Any], ids: sa.Select[Any]) -> sa.ColumnElement[bool]:
    """`column IN (ids)`; on PostgreSQL `column = ANY(ARRAY(ids))`, which the planner reads as a
    few primary-key probes. Left with `IN`, it guesses hundreds of conversations for an agent's
    week (there are a dozen) and scans the whole week of everyone's rows instead (0.1 s)."""
    if dialect == "postgresql":
        return column == sa.any_(sa.func.array(ids.scalar_subquery()))
    return column.in_(ids)


RANK_MIN_SPAN = timedelta(days=28)
"""Windows at least this long (or open-ended) read their percentiles by rank from the durations
in value order (`_add_durations_by_rank`); shorter ones sort the window's durations."""

# (kind, "total" | "day" | "agent", the day or agent or None) -> completed durations counted.
Done = dict[tuple[str, str, Any], int]
# (kind, day, agent, by agent, count, open at the end of the window, open at the end of its day)
CountRow = tuple[str, date | None, str | None, bool, int, int, int]


def _midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), tzinfo=UTC)


def _whole_days(since: datetime | None, until: datetime | None) -> tuple[date | None, date | None] | None:
    """The whole UTC days [first, last) of the window (None: unbounded), or None when it has none."""
    first = None if since is None else since.date() + timedelta(days=0 if since.time() == time() else 1)
    last = None if until is None else until.date()
    if first is not None and last is not None and first >= last:
        return None
    return first, last


def _long(since: datetime | None, until: datetime | None) -> bool:
    return since is None or until is None or until - since >= RANK_MIN_SPAN


def _merge(into: Done, more: Done) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


def _add_day_counts(
    conn: sa.Connection, acc: _Accumulator, whole: tuple[date | None, date | None], until: datetime | None
) -> Done:
    """The counts and open intervals of the window's whole days from `stat_counts` (no agent
    filter): the days (and the totals as their sum) from the per-day rows, the agents from the
    per-month rows of the whole months and the per-day rows of the days around them. An interval
    of those days is open on its day when it ended on a later one (the day ends before `until`),
    and open at the end of the window when it ended on a later day than `until`'s, or on that day
    at or after `until`: those few are looked up by their end (`ix_stat_events_end_at`)."""
    from handoff.stat_events import AGENT_DAY, AGENT_MONTH, ALL_DAY, NO_AGENT, STILL_OPEN, month_of, next_month

    c = stat_counts.c
    first, last = whole

    def days(lo: date | None, hi: date | None) -> list[sa.ColumnElement[bool]]:
        return [*([c.day >= lo] if lo is not None else []), *([c.day < hi] if hi is not None else [])]

    cutoff = until.date() if until is not None else STILL_OPEN - timedelta(days=1)
    n, n_open = sa.func.sum(c.n), sa.func.sum(sa.case((c.end_day > cutoff, c.n), else_=0))
    by_day = (
        sa.select(c.kind, c.day, n, n_open, sa.func.sum(sa.case((c.end_day > c.day, c.n), else_=0)))
        .where(c.scope == ALL_DAY, *days(first, last))
        .group_by(c.kind, c.day)
        .having(n != 0)
    )
    # The agents: whole months [months_from, months_to) from the month rows, the other days from the day rows.
    months_from = None if first is None else first if first.day == 1 else next_month(first)
    months_to = None if last is None else month_of(last)
    if months_from is not None and months_to is not None and months_from >= months_to:
        agent_rows = sa.and_(c.scope == AGENT_DAY, *days(first, last))
    else:
        agent_rows = sa.or_(
            sa.and_(c.scope == AGENT_MONTH, *days(months_from, months_to)),
            *([sa.and_(c.scope == AGENT_DAY, *days(first, months_from))] if months_from is not None else []),
            *([sa.and_(c.scope == AGENT_DAY, *days(months_to, last))] if months_to is not None else []),
        )
    by_agent = sa.select(c.kind, c.agent_id, n, n_open).where(agent_rows).group_by(c.kind, c.agent_id).having(n != 0)
    rows: list[CountRow] = []
    for kind, day, count, count_open, count_open_day in conn.execute(by_day):
        day = day if isinstance(day, date) else date.fromisoformat(day)
        rows.append((kind, day, None, False, int(count), int(count_open), int(count_open_day)))
    for kind, agent, count, count_open in conn.execute(by_agent):
        rows.append((kind, None, None if agent == NO_AGENT else agent, True, int(count), int(count_open), 0))
    if until is not None:
        e = stat_events.c
        ended = [e.end_at >= until, e.end_at < _midnight(until.date() + timedelta(days=1))]
        if first is not None:
            ended.append(e.at >= _midnight(first))
        if last is not None:
            ended.append(e.at < _midnight(last))
        late = sa.select(e.kind, e.agent_id, sa.func.count()).where(*ended).group_by(e.kind, e.agent_id)
        for ended_kind, ended_agent, n_ended in conn.execute(late):
            rows.append((ended_kind, None, None, False, 0, n_ended, 0))
            rows.append((ended_kind, None, ended_agent, True, 0, n_ended, 0))
    return _fold_counts(acc, rows)


def _add_counts(
    conn: sa.Connection, acc: _Accumulator, where: list[sa.ColumnElement[bool]], until: datetime | None
) -> Done:
    """Every count, and the open intervals: grouped by kind and day (the days, and the totals as
    their sum), and by kind and agent (the agents). PostgreSQL does both in one scan."""
    e = stat_events.c
    ends_later = e.end_at.is_(None) if until is None else sa.or_(e.end_at.is_(None), e.end_at >= until)
    figures = (
        sa.func.count(),
        sa.func.sum(sa.case((ends_later, 1), else_=0)),
        sa.func.sum(sa.case((sa.or_(e.past_day, ends_later), 1), else_=0)),
    )
    if conn.dialect.name == "postgresql":
        query = (
            sa.select(e.kind, e.day, e.agent_id, sa.func.grouping(e.day), *figures)
            .where(*where)
            .group_by(sa.func.grouping_sets(sa.tuple_(e.kind, e.day), sa.tuple_(e.kind, e.agent_id)))
        )
        rows = [(kind, day, agent, bool(by_agent), *n) for kind, day, agent, by_agent, *n in conn.execute(query)]
    else:
        by_day = sa.select(e.kind, e.day, sa.null(), sa.false(), *figures).where(*where).group_by(e.kind, e.day)
        by_agent = sa.select(e.kind, sa.null(), e.agent_id, sa.true(), *figures).where(*where)
        by_agent = by_agent.where(e.kind.in_(sorted(ATTRIBUTED)), e.agent_id.is_not(None)).group_by(e.kind, e.agent_id)
        rows = [(*r[:3], bool(r[3]), *r[4:]) for q in (by_day, by_agent) for r in conn.execute(q)]
    return _fold_counts(
        acc, [(kind, day, agent, by_agent, n, int(o), int(od)) for kind, day, agent, by_agent, n, o, od in rows]
    )


def _fold_counts(acc: _Accumulator, rows: list[CountRow]) -> Done:
    """Add grouped counts to the totals, days and agents; the completed durations counted, by
    scope, for their percentiles."""
    done: Done = {}
    for kind, day, agent, by_agent, n, n_open, n_open_day in rows:
        if kind in DONE:
            for key in [(kind, "agent", agent)] if by_agent else [(kind, "total", None), (kind, "day", day)]:
                done[key] = done.get(key, 0) + n
        if by_agent:
            if kind not in ATTRIBUTED or agent is None:
                continue
            tallies = [acc._agent(agent)] if kind not in OPEN or n_open else []
        elif kind in OPEN and not n_open_day:
            tallies = [acc.total]
        else:
            assert day is not None
            tallies = [acc.total, acc._on(day)]
        for t in tallies:
            if kind in OPEN:
                what = OPEN[kind]
                # The totals and agents count what is open at the end of the window; a day, what
                # was still open at the end of that day.
                opened = n_open_day if t is not acc.total and not by_agent else n_open
                t.open[what] = t.open.get(what, 0) + int(opened)
            elif kind in COUNTS:
                setattr(t, COUNTS[kind], getattr(t, COUNTS[kind]) + n)
            elif kind.startswith(MESSAGE_PREFIX):
                entry_kind = EntryKind(kind.removeprefix(MESSAGE_PREFIX))
                t.messages[entry_kind] = t.messages.get(entry_kind, 0) + n
            # Completed durations: counted with their percentiles (_add_durations).
    return done


def _add_durations(conn: sa.Connection, acc: _Accumulator, where: list[sa.ColumnElement[bool]]) -> None:
    """The count, median and p90 of each completed duration in the totals, per day and per agent."""
    e = stat_events.c
    groups: dict[tuple[str, str, Any], tuple[int, float | None, float | None]] = {}
    if conn.dialect.name == "postgresql":
        quantiles = sa.func.percentile_cont(sa.literal_column("ARRAY[0.5, 0.9]::float8[]")).within_group(e.value)
        query = (
            sa.select(
                e.kind,
                e.day,
                e.agent_id,
                sa.func.grouping(e.day),
                sa.func.grouping(e.agent_id),
                sa.func.count(),
                quantiles,
            )
            .where(*where)
            .group_by(sa.func.grouping_sets(sa.tuple_(e.kind), sa.tuple_(e.kind, e.day), sa.tuple_(e.kind, e.agent_id)))
        )
        for kind, day, agent, no_day, no_agent, n, (median, p90) in conn.execute(query):
            scope = "total" if no_day and no_agent else "day" if not no_day else "agent"
            groups[(kind, scope, day if scope == "day" else agent)] = (n, median, p90)
    else:
        # SQLite has no percentile function: the durations alone, in order, and the same
        # interpolation as the reference.
        values: dict[tuple[str, str, Any], list[float]] = {}
        for kind, day, agent, value in conn.execute(sa.select(e.kind, e.day, e.agent_id, e.value).where(*where)):
            for key in ((kind, "total", None), (kind, "day", day), (kind, "agent", agent)):
                values.setdefault(key, []).append(value)
        for key, done in values.items():
            groups[key] = (len(done), percentile(done, 0.5), percentile(done, 0.9))
    for (kind, scope, key), summary in groups.items():
        if scope == "total":
            acc.total.summarised[kind] = summary
        elif scope == "day":
            acc._on(key).summarised[kind] = summary
        elif key is not None:
            acc._agent(key).summarised[kind] = summary


def _add_durations_by_rank(
    conn: sa.Connection, acc: _Accumulator, since: datetime | None, until: datetime | None, done: Done
) -> None:
    """The count, median and p90 of each completed duration of a long window (no agent filter),
    exactly, with no sort: the counts are known (`done`), so each percentile is the value at a
    known rank (and the next) of the window's durations in value order, which PostgreSQL reads
    from the partial indexes on (kind, value), (kind, day, value) and (kind, agent, value) by
    skipping entries: from the smallest for a rank in the lower half, from the largest for one in
    the upper half (the p90 skips a tenth). Measured faster than numbering the entries once for
    both ranks. One statement per scope and direction, the lookups sent as arrays. Agents show no
    waiting time: theirs are not looked up."""
    window = ["e.value IS NOT NULL"]
    params: dict[str, Any] = {}
    if since is not None:
        window.append("e.at >= :since")
        params["since"] = since
    if until is not None:
        window.append("e.at < :until")
        params["until"] = until
    typed = [sa.bindparam(name, type_=UTCDateTime) for name in params]
    for scope, column, cast in (("total", None, "text"), ("day", "day", "date"), ("agent", "agent_id", "text")):
        counted = [
            (kind, key, n)
            for (kind, s, key), n in sorted(done.items(), key=str)
            if s == scope and n > 0 and (scope != "agent" or (key is not None and kind != WAIT))
        ]
        at_rank: dict[tuple[str, Any], dict[int, float]] = {}
        for descending in (False, True):
            # (kind, key, entries to skip, the rank of the first value read)
            lookups: list[tuple[str, Any, int, int]] = []
            for kind, key, n in counted:
                for p in (0.5, 0.9):
                    rank = _rank(n, p)
                    if descending and 2 * rank >= n - 1:
                        skip = max(n - 2 - rank, 0)
                        lookups.append((kind, key, skip, n - 1 - skip))
                    elif not descending and 2 * rank < n - 1:
                        lookups.append((kind, key, rank, rank))
            if not lookups:
                continue
            same = f"AND e.{column} = q.key" if column else ""
            direction = " DESC" if descending else ""
            query = sa.text(
                f"SELECT q.i, v.value FROM unnest(CAST(:kinds AS text[]), CAST(:keys AS {cast}[]), "
                "CAST(:skips AS int[])) WITH ORDINALITY AS q(kind, key, skip, i) "
                f"CROSS JOIN LATERAL (SELECT e.value FROM stat_events AS e WHERE e.kind = q.kind {same} "
                f"AND {' AND '.join(window)} ORDER BY e.value{direction} OFFSET q.skip LIMIT 2) AS v "
                f"ORDER BY q.i, v.value{direction}"
            ).bindparams(*typed)
            result = conn.execute(
                query,
                {
                    **params,
                    "kinds": [kind for kind, _, _, _ in lookups],
                    "keys": [key for _, key, _, _ in lookups],
                    "skips": [skip for _, _, skip, _ in lookups],
                },
            )
            read = 0
            previous = None
            for i, value in result:
                kind, key, _, first = lookups[i - 1]
                read = read + 1 if i == previous else 0
                previous = i
                at_rank.setdefault((kind, key), {})[first - read if descending else first + read] = value
        for kind, key, n in counted:
            values = at_rank[(kind, key)]
            median, p90 = (_interpolated(_pair(values, _rank(n, p)), n, p) for p in (0.5, 0.9))
            tally = acc.total if scope == "total" else acc._on(key) if scope == "day" else acc._agent(key)
            tally.summarised[kind] = (n, median, p90)


def _pair(at_rank: dict[int, float], rank: int) -> list[float]:
    """The values at `rank` and the next one, when there is one."""
    return [at_rank[r] for r in (rank, rank + 1) if r in at_rank]


def _add_ratings(
    conn: sa.Connection, acc: _Accumulator, since: datetime | None, until: datetime | None, agent_id: str | None
) -> None:
    """The ratings of the window, counted by day and score (the days, and the totals as their
    sum) and by agent and score (the agents). PostgreSQL does both in one scan."""
    r = ratings.c
    day = sa.cast(r.at, sa.Date) if conn.dialect.name == "postgresql" else sa.func.date(r.at)
    where: list[sa.ColumnElement[bool]] = []
    if agent_id is not None:
        where.append(r.agent_id == agent_id)
    if since is not None:
        where.append(r.at >= since)
    if until is not None:
        where.append(r.at < until)
    found: list[tuple[Any, str | None, bool, int, int]]
    if conn.dialect.name == "postgresql":
        query = (
            sa.select(day, r.agent_id, sa.func.grouping(r.agent_id), r.score, sa.func.count())
            .where(*where)
            .group_by(sa.func.grouping_sets(sa.tuple_(day, r.score), sa.tuple_(r.agent_id, r.score)))
        )
        found = [(d, agent, not no_agent, score, n) for d, agent, no_agent, score, n in conn.execute(query)]
    else:
        days = sa.select(day, r.score, sa.func.count()).where(*where).group_by(day, r.score)
        agents = sa.select(r.agent_id, r.score, sa.func.count()).where(*where).group_by(r.agent_id, r.score)
        found = [(d, None, False, score, n) for d, score, n in conn.execute(days)]
        found += [(None, agent, True, score, n) for agent, score, n in conn.execute(agents)]
    for rated_day, agent, by_agent, score, n in found:
        if by_agent:
            tallies = [acc._agent(agent)] if agent is not None else []
        else:
            rated_day = rated_day if isinstance(rated_day, date) else date.fromisoformat(rated_day)
            tallies = [acc.total, acc._on(rated_day)]
        for t in tallies:
            t.ratings.extend([score] * n)


def _add_names(conn: sa.Connection, acc: _Accumulator, until: datetime | None) -> None:
    """Each counted agent's latest name recorded before `until`: on a fact or a rating, the
    rating winning a tie (the reference reads the ratings last). One index probe per agent and
    table (`ix_facts_agent_at`); on PostgreSQL all in one statement."""
    agents = sorted(acc.agents)
    if not agents:
        return
    before = "" if until is None else "AND t.at < :until"
    found: dict[str, list[tuple[datetime, int, str]]] = {}
    for rank, (table, order) in enumerate(
        [("facts", "t.at DESC, t.conversation_id DESC, t.number DESC"), ("ratings", "t.at DESC")]
    ):
        latest = (
            f"SELECT t.at, t.agent_name FROM {table} AS t WHERE t.agent_id = {{agent}} {before} "
            f"AND COALESCE(t.agent_name, '') <> '' ORDER BY {order} LIMIT 1"
        )
        params: dict[str, Any] = {} if until is None else {"until": until}
        typed = [sa.bindparam("until", type_=UTCDateTime)] if until is not None else []
        results: list[tuple[Any, ...]]
        if conn.dialect.name == "postgresql":
            lateral = sa.text(
                f"SELECT a.agent_id, l.at, l.agent_name FROM unnest(CAST(:agents AS text[])) AS a(agent_id) "
                f"CROSS JOIN LATERAL ({latest.format(agent='a.agent_id')}) AS l"
            ).bindparams(*typed)
            query = lateral.columns(agent_id=sa.String, at=UTCDateTime, agent_name=sa.String)
            results = [tuple(row) for row in conn.execute(query, {**params, "agents": agents})]
        else:
            one = sa.text(latest.format(agent=":agent")).bindparams(*typed)
            query = one.columns(at=UTCDateTime, agent_name=sa.String)
            results = [(agent, *row) for agent in agents for row in conn.execute(query, {**params, "agent": agent})]
        for agent, at, name in results:
            found.setdefault(agent, []).append((at, rank, name))
    for agent, candidates in found.items():
        at, _, name = max(candidates)
        acc.names[agent] = (at, name)
