"""`python -m bench stats`: the read paths of the agent UI at a million conversations (issue 12).

Generates a support history into a private PostgreSQL schema with COPY (1,000,000 conversations,
about 12 million facts over two years, 200 agents, the last 100,000 conversations still open:
waiting or held), then times the route functions the API serves them with, against the issue's
targets: `/stats` for all time (< 1 s), one agent over one week (< 100 ms), the Conversations
history's first page under several filters (< 50 ms), the live columns (< 50 ms). The baseline is
the reference computation (`compute_stats_reference`, today's definitions in code) on one week of
everything, which both paths must agree on (and on five weeks across a month's end). The schema
is dropped afterwards, unless `--keep`; `--reuse SCHEMA` measures a kept one again.

The history is made of plain rows (facts, the conversations table, ratings) written the way the
store writes them; the statistics index is derived from the facts by the store's own function
(`handoff.stat_events.db_rows`), so it is the index the store would hold, and its counts per day
(`stat_counts`) by migration 0008's backfill. `--conversations N` makes a smaller history for
trying. Asserts nothing; prints the table and writes bench/stats.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from handoff.api.deps import Services
from handoff.api.routes.history import history, stats
from handoff.api.routes.live import live_mine, live_waiting
from handoff.models import Agent, EntryKind, FactKind, Outcome, Status
from handoff.stat_events import FactRow, backfill_counts_sql, db_rows, fact_row
from handoff.stats import compute_stats, compute_stats_reference
from handoff.store import Store, conversation_agents, conversations, facts, ratings, stat_events

REPORT = Path(__file__).with_name("stats.md")
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
END = datetime(2026, 11, 30, tzinfo=UTC)
YEARS = 2
AGENTS = [Agent(id=f"agent-{n:03}", name=f"Agent {n:03}") for n in range(1, 201)]
CHUNK = 100_000  # conversations stamped out per transaction

T = TypeVar("T")


# --- The history.


@dataclass
class Generated:
    conversations: int = 0
    facts: int = 0
    index_rows: int = 0
    ratings: int = 0
    open: int = 0


def _line(values: tuple[Any, ...] | list[Any]) -> str:
    """One row in COPY's text format. No value here holds a tab, newline or backslash; times are
    aware UTC, whose offset PostgreSQL ignores for `timestamp without time zone`; `str` of a
    float is its shortest exact form, so durations arrive unchanged."""
    return "\t".join(["\\N" if v is None else str(v) for v in values]) + "\n"


class History:
    """One conversation at a time, as the rows the store would hold."""

    def __init__(self, rng: random.Random, agents: list[Agent]) -> None:
        self.rng = rng
        self.agents = agents

    def conversation(
        self, cid: str, start: datetime, open_: bool
    ) -> tuple[list[tuple[Any, ...]], tuple[Any, ...], tuple[Any, ...] | None]:
        """(fact rows, conversation row, rating row or None)."""
        rng = self.rng
        rows: list[tuple[Any, ...]] = []
        seq = 0
        t = start

        def fact(
            kind: FactKind, entry: EntryKind | None = None, agent: Agent | None = None, outcome: Outcome | None = None
        ) -> None:
            nonlocal seq
            number = len(rows) + 1
            entry_seq = None
            if entry is not None:
                seq += 1
                entry_seq = seq
            rows.append(
                (
                    f"{cid}:{number}",
                    cid,
                    number,
                    kind.value,
                    t,
                    entry_seq,
                    entry.value if entry else None,
                    (agent.name if agent else entry.value) if entry else None,
                    f"message {entry_seq}" if entry else None,
                    agent.id if agent else None,
                    agent.name if agent else None,
                    outcome.value if outcome else None,
                )
            )

        def later(low: float, high: float) -> None:
            nonlocal t
            t += timedelta(seconds=rng.uniform(low, high))

        fact(FactKind.STARTED)
        fact(FactKind.MESSAGE, EntryKind.CUSTOMER)
        later(1, 5)
        fact(FactKind.MESSAGE, EntryKind.BOT)
        status, holder, outcome, closer, waiting_since, assigned_at, closed_at = (
            Status.BOT,
            None,
            None,
            None,
            None,
            None,
            None,
        )
        rating = None
        if rng.random() < 0.55 and not open_:
            for _ in range(rng.randint(1, 4)):
                later(20, 300)
                fact(FactKind.MESSAGE, EntryKind.CUSTOMER)
                later(1, 5)
                fact(FactKind.MESSAGE, EntryKind.BOT)
            later(3600, 3600)  # the bot idle-close timer
            fact(FactKind.CLOSED, outcome=Outcome.INACTIVE)
            status, outcome, closed_at = Status.CLOSED, Outcome.INACTIVE, t
        else:
            later(10, 120)
            fact(FactKind.HUMAN_REQUESTED)
            status, waiting_since = Status.WAITING, t
            wait = rng.expovariate(1 / 240)
            if wait > 120:
                t_request = t
                t += timedelta(seconds=120)
                fact(FactKind.WAITING_SLA_BREACHED)
                t = t_request
            if open_ and rng.random() < 0.6:
                pass  # still waiting
            else:
                t += timedelta(seconds=wait)
                agent = rng.choice(self.agents)
                fact(FactKind.TAKEN_OVER, agent=agent)
                status, holder, waiting_since, assigned_at = Status.HUMAN, agent, None, t
                if rng.random() < 0.05 and not open_:
                    later(30, 300)
                    other = rng.choice(self.agents)
                    if other != agent:
                        fact(FactKind.TRANSFERRED, agent=other)
                        holder, agent, assigned_at = other, other, t
                for _ in range(rng.randint(2, 4) if not open_ else rng.randint(0, 1)):
                    later(20, 400)
                    fact(FactKind.MESSAGE, EntryKind.AGENT, agent=agent)
                    later(30, 300)
                    fact(FactKind.MESSAGE, EntryKind.CUSTOMER)
                if not open_:
                    later(30, 600)
                    outcome = Outcome.RESOLVED if rng.random() < 0.7 else Outcome.NOT_RESOLVED
                    fact(FactKind.CLOSED, agent=agent, outcome=outcome)
                    status, closer, holder, closed_at = Status.CLOSED, agent, None, t
                    if rng.random() < 0.3:
                        rating = (cid, rng.randint(1, 5), None, t + timedelta(minutes=5), agent.id, agent.name)
        conversation = (
            cid,
            f"customer-{cid}",
            status.value,
            holder.id if holder else None,
            holder.name if holder else None,
            outcome.value if outcome else None,
            closer.id if closer else None,
            closer.name if closer else None,
            start,
            t,
            waiting_since,
            assigned_at,
            closed_at,
            len(rows),
        )
        return rows, conversation, rating


def _fact_row(row: tuple[Any, ...]) -> FactRow:
    """The statistics columns of one generated fact row (`handoff.stat_events.fact_row`)."""
    _, _, number, kind, at, _, entry_kind, _, _, agent_id, _, outcome = row
    return fact_row(number, kind, at, entry_kind, agent_id, outcome)


# Templates: conversations played by History at a base time with three agent slots, with their
# index rows made by the store's `db_rows`; PostgreSQL then stamps out every conversation from one
# template, shifted to its start time (whole microseconds, so every duration is unchanged) and
# with the slots given to real agents (distinct per conversation). The day and `past_day` of an
# index row depend on the absolute time: they are recomputed there, by their definition.
BASE = datetime(2000, 1, 1, tzinfo=UTC)
SLOTS = [Agent(id=f"slot-{k}", name=f"Slot {k}") for k in range(3)]
CLOSED_TEMPLATES, OPEN_TEMPLATES = 400, 100


def _us(at: datetime | None) -> int | None:
    return None if at is None else (at - BASE) // timedelta(microseconds=1)


def _slot(agent_id: str | None) -> int | None:
    return None if agent_id is None else int(agent_id.removeprefix("slot-"))


def templates() -> dict[str, list[tuple[Any, ...]]]:
    """The template rows, per template table."""
    rng = random.Random(12)
    history_ = History(rng, SLOTS)
    out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TEMPLATE_TABLES}
    for t in range(CLOSED_TEMPLATES + OPEN_TEMPLATES):
        start = BASE + timedelta(seconds=rng.uniform(0, 86400))
        rows, conv, rating = history_.conversation(f"t{t}", start, open_=t >= CLOSED_TEMPLATES)
        for _, _, number, kind, at, entry_seq, entry_kind, author, text, agent_id, _, outcome in rows:
            out["tpl_facts"].append(
                (
                    t,
                    number,
                    kind,
                    _us(at),
                    entry_seq,
                    entry_kind,
                    author if agent_id is None else None,
                    text,
                    _slot(agent_id),
                    outcome,
                )
            )
        index_rows, handlers = db_rows(f"t{t}", [_fact_row(r) for r in rows])
        for r in index_rows:
            out["tpl_index"].append(
                (t, r["seq"], r["kind"], _us(r["at"]), _slot(r["agent_id"]), r["value"], _us(r["end_at"]))
            )
        out["tpl_handlers"].extend((t, _slot(h["agent_id"]), _us(h["first_at"]), _us(h["last_at"])) for h in handlers)
        _, _, status, holder, _, outcome, closer, _, started, updated, waiting, assigned, closed, last_fact = conv
        out["tpl_conversations"].append(
            (
                t,
                status,
                _slot(holder),
                outcome,
                _slot(closer),
                _us(started),
                _us(updated),
                _us(waiting),
                _us(assigned),
                _us(closed),
                last_fact,
            )
        )
        if rating is not None:
            out["tpl_ratings"].append((t, rating[1], _us(rating[3]), _slot(rating[4])))
    return out


TEMPLATE_TABLES = {
    "tpl_facts": "t int, number int, kind text, at_us bigint, entry_seq int, entry_kind text, author text, "
    "body text, slot int, outcome text",
    "tpl_index": "t int, seq int, kind text, at_us bigint, slot int, value float8, end_us bigint",
    "tpl_handlers": "t int, slot int, first_us bigint, last_us bigint",
    "tpl_conversations": "t int, status text, holder int, outcome text, closer int, started_us bigint, "
    "updated_us bigint, waiting_us bigint, assigned_us bigint, closed_us bigint, last_fact int",
    "tpl_ratings": "t int, score int, at_us bigint, slot int",
}

# The conversations n in [:lo, :hi), each with its id, template, start and agents.
EXPAND = """
WITH n AS (
    SELECT n, 'c' || lpad(n::text, 7, '0') AS cid,
        CASE WHEN n >= :total - :open THEN {closed} + n % {open_templates} ELSE (n * 7) % {closed} END AS t,
        timestamp '{first}' + ((n::numeric * :span_us) / :total)::bigint * interval '1 microsecond'
            - timestamp '2000-01-01' AS shift,
        (n / {closed}) * 37 + n * 13 AS agents
    FROM generate_series(:lo, :hi - 1) AS n
)
"""


def _agent_sql(slot: str, what: str) -> str:
    """The agent a template's slot is in conversation n (ids distinct within a conversation)."""
    index = f"lpad(((n.agents + {slot} * 101) % {len(AGENTS)} + 1)::text, 3, '0')"
    prefix = "'agent-'" if what == "id" else "'Agent '"
    return f"CASE WHEN {slot} IS NULL THEN NULL ELSE {prefix} || {index} END"


def _at(column: str) -> str:
    return f"timestamp '2000-01-01' + n.shift + {column} * interval '1 microsecond'"


INSERTS = [
    f"""INSERT INTO facts (key, conversation_id, number, kind, at, entry_seq, entry_kind, author, text, agent_id,
        agent_name, outcome)
    SELECT n.cid || ':' || f.number, n.cid, f.number, f.kind, {_at("f.at_us")}, f.entry_seq, f.entry_kind,
        COALESCE(f.author, {_agent_sql("f.slot", "name")}), f.body, {_agent_sql("f.slot", "id")},
        {_agent_sql("f.slot", "name")}, f.outcome
    FROM n JOIN tpl_facts f ON f.t = n.t""",
    f"""INSERT INTO stat_events (conversation_id, seq, kind, at, day, agent_id, value, end_at, past_day)
    SELECT n.cid, i.seq, i.kind, {_at("i.at_us")}, ({_at("i.at_us")})::date, {_agent_sql("i.slot", "id")}, i.value,
        {_at("i.end_us")},
        CASE WHEN i.kind IN ('wait_open', 'first_response_open', 'handling_open')
            THEN i.end_us IS NULL OR {_at("i.end_us")} >= ({_at("i.at_us")})::date + 1 END
    FROM n JOIN tpl_index i ON i.t = n.t""",
    f"""INSERT INTO conversation_agents (agent_id, conversation_id, first_at, last_at)
    SELECT {_agent_sql("h.slot", "id")}, n.cid, {_at("h.first_us")}, {_at("h.last_us")}
    FROM n JOIN tpl_handlers h ON h.t = n.t""",
    f"""INSERT INTO conversations (id, customer_id, status, agent_id, agent_name, outcome, closed_by_id, closed_by_name,
        started_at, updated_at, waiting_since, assigned_at, closed_at, last_fact)
    SELECT n.cid, 'customer-' || n.cid, c.status, {_agent_sql("c.holder", "id")}, {_agent_sql("c.holder", "name")},
        c.outcome, {_agent_sql("c.closer", "id")}, {_agent_sql("c.closer", "name")}, {_at("c.started_us")},
        {_at("c.updated_us")}, {_at("c.waiting_us")}, {_at("c.assigned_us")}, {_at("c.closed_us")}, c.last_fact
    FROM n JOIN tpl_conversations c ON c.t = n.t""",
    f"""INSERT INTO ratings (conversation_id, score, comment, at, agent_id, agent_name)
    SELECT n.cid, r.score, NULL, {_at("r.at_us")}, {_agent_sql("r.slot", "id")}, {_agent_sql("r.slot", "name")}
    FROM n JOIN tpl_ratings r ON r.t = n.t""",
]


def generate(store: Store, total: int, open_total: int, progress: Callable[[str], None]) -> Generated:
    """The history: templates COPYed into temporary tables, every conversation stamped out from
    one of them by PostgreSQL, a chunk at a time; the secondary indexes built afterwards (faster
    than maintaining them row by row), then VACUUM ANALYZE."""
    secondary = [i for t in (facts, conversations, stat_events, conversation_agents, ratings) for i in t.indexes]
    with store.engine.begin() as conn:
        for index in secondary:
            index.drop(conn)
    first = str((END - timedelta(days=365 * YEARS)).replace(tzinfo=None))
    expand = EXPAND.format(closed=CLOSED_TEMPLATES, open_templates=OPEN_TEMPLATES, first=first)
    span_us = timedelta(days=365 * YEARS) // timedelta(microseconds=1)
    with store.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            for name, columns in TEMPLATE_TABLES.items():
                cur.execute(f"CREATE TEMPORARY TABLE {name} ({columns})")
            for name, rows in templates().items():
                with cur.copy(f"COPY {name} FROM STDIN") as copy:
                    copy.write("".join(_line(r) for r in rows))
        conn.commit()
        for lo in range(0, total, CHUNK):
            params = {"lo": lo, "hi": min(total, lo + CHUNK), "total": total, "open": open_total, "span_us": span_us}
            for insert in INSERTS:
                conn.execute(sa.text(expand + insert), params)
            conn.commit()
            progress(f"{params['hi']:,} conversations")
    progress("counting per day (stat_counts)")
    with store.engine.begin() as conn:
        for statement in backfill_counts_sql("postgresql"):
            conn.execute(sa.text(statement))
    progress("building the indexes")
    with store.engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '256MB'"))
        for index in secondary:
            index.create(conn)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    return counted(store, open_total)


def counted(store: Store, open_total: int) -> Generated:
    """What a generated schema holds."""
    with store.engine.connect() as conn:
        counts = [
            conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("conversations", "facts", "stat_events", "ratings")
        ]
    return Generated(conversations=counts[0], facts=counts[1], index_rows=counts[2], ratings=counts[3], open=open_total)


# --- Timing.


@dataclass
class Figure:
    what: str
    target_ms: float | None
    times_ms: list[float]
    note: str = ""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    def row(self) -> str:
        target = f"< {self.target_ms:g} ms" if self.target_ms is not None else ""
        verdict = "" if self.target_ms is None else ("met" if self.median_ms < self.target_ms else "**missed**")
        times = f"{self.median_ms:,.1f} ms | {max(self.times_ms):,.1f} ms"
        return f"| {self.what} | {times} | {target} | {verdict} | {self.note} |"


def timed(call: Callable[[], Awaitable[T]], repeat: int) -> tuple[list[float], T]:
    """Milliseconds of each of `repeat` calls after one warm-up call, and the last result."""

    async def run() -> tuple[list[float], T]:
        result = await call()
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            result = await call()
            times.append((time.perf_counter() - began) * 1000)
        return times, result

    return asyncio.run(run())


def measure(store: Store, open_total: int) -> list[Figure]:
    s = cast(Services, SimpleNamespace(db=store))
    caller = AGENTS[0]
    figures: list[Figure] = []
    # All time is the slowest figure by far: two timed calls after the warm-up.
    times, everything = timed(lambda: stats(caller, s), 2)
    figures.append(
        Figure("/stats, all time", 1000, times, f"{everything.totals.conversations_started:,} conversations")
    )

    week_times: list[float] = []
    weeks = [END - timedelta(days=7 * k) for k in (1, 10, 52, 90)]
    for k, week_end in enumerate(weeks):
        agent = AGENTS[(k * 37) % len(AGENTS)]
        week_start = datetime.combine(week_end.date() - timedelta(days=7), datetime.min.time(), UTC)
        more, _ = timed(
            lambda since=week_start, agent=agent: stats(  # type: ignore[misc]
                caller, s, since=since, until=since + timedelta(days=7), agent=agent.id
            ),
            5,
        )
        week_times.extend(more)
    figures.append(Figure("/stats, one agent, one week", 100, week_times, "4 agents x 4 weeks"))

    filters: list[tuple[str, dict[str, Any]]] = [
        ("no filter", {}),
        ("status=closed", {"status_": Status.CLOSED}),
        ("status=waiting", {"status_": Status.WAITING}),
        ("outcome=not_resolved", {"outcome": Outcome.NOT_RESOLVED}),
        ("agent", {"agent": AGENTS[5].id}),
        ("agent + outcome=resolved", {"agent": AGENTS[6].id, "outcome": Outcome.RESOLVED}),
        ("since/until: one month a year ago", {"since": END - timedelta(days=365), "until": END - timedelta(days=335)}),
    ]
    for name, kwargs in filters:
        times, page = timed(lambda kwargs=kwargs: history(caller, s, **kwargs), 7)  # type: ignore[misc]
        figures.append(Figure(f"history first page, {name}", 50, times, f"{len(page.conversations)} rows"))

    times, waiting = timed(lambda: live_waiting(caller, s), 7)
    figures.append(
        Figure("live: Waiting column", 50, times, f"{len(waiting.conversations)} shown of {open_total:,} open")
    )
    mine_times: list[float] = []
    for agent in AGENTS[:5]:
        more, mine = timed(lambda agent=agent: live_mine(agent, s), 3)  # type: ignore[misc]
        mine_times.extend(more)
    figures.append(Figure("live: My conversations", 50, mine_times, f"5 agents, e.g. {len(mine.conversations)} held"))
    return figures


def baseline(store: Store) -> tuple[Figure, Figure, bool]:
    """The reference and the index on the same week of everything, and whether they agree; and
    whether they agree on five weeks across a month's end, from and to mid-day (the counts of
    whole days and months, the rows of the partial days, the percentiles read by rank)."""
    since = END - timedelta(days=80, hours=5, minutes=17)
    until = since + timedelta(days=35, hours=9)
    agree_long = compute_stats(store, since=since, until=until) == compute_stats_reference(
        store, since=since, until=until
    )
    since = datetime.combine((END - timedelta(days=30)).date(), datetime.min.time(), UTC)
    until = since + timedelta(days=7)
    began = time.perf_counter()
    reference = compute_stats_reference(store, since=since, until=until)
    reference_ms = (time.perf_counter() - began) * 1000
    times = []
    for _ in range(3):
        began = time.perf_counter()
        fast = compute_stats(store, since=since, until=until)
        times.append((time.perf_counter() - began) * 1000)
    n = reference.totals.conversations_started
    return (
        Figure("reference computation, one week, all agents (baseline)", None, [reference_ms], f"{n:,} started"),
        Figure("/stats path, the same week", None, times, f"{reference_ms / statistics.median(times):,.0f}x faster"),
        fast == reference and agree_long,
    )


FACT_COLUMNS = [c.name for c in facts.c]
CONVERSATION_COLUMNS = [
    "id", "customer_id", "status", "agent_id", "agent_name", "outcome", "closed_by_id", "closed_by_name",
    "started_at", "updated_at", "waiting_since", "assigned_at", "closed_at", "last_fact",
]  # fmt: skip
RATING_COLUMNS = ["conversation_id", "score", "comment", "at", "agent_id", "agent_name"]


# --- The embedded default: SQLite at the scale of the README's first measurement.


def sqlite_figures(conversations_: int, directory: Path) -> tuple[list[Figure], bool]:
    """The index path against the reference on a SQLite file of `conversations_` conversations
    over 30 days (the README measured the reference at 7,000: 1.3-1.5 s for all time)."""
    store = Store(f"sqlite:///{directory / 'handoff.db'}")
    try:
        rng = random.Random(7)
        history_ = History(rng, AGENTS[:20])
        first = END - timedelta(days=30)
        tables: dict[sa.Table, list[dict[str, Any]]] = {t: [] for t in (facts, conversations, ratings)}
        tables.update({stat_events: [], conversation_agents: []})
        for n in range(conversations_):
            cid = f"s{n:06}"
            start = first + timedelta(days=30) * (n / conversations_)
            rows, conv, rating = history_.conversation(cid, start, open_=n >= conversations_ * 0.95)
            tables[facts].extend(dict(zip(FACT_COLUMNS, r, strict=True)) for r in rows)
            tables[conversations].append(dict(zip(CONVERSATION_COLUMNS, conv, strict=True)))
            if rating is not None:
                tables[ratings].append(dict(zip(RATING_COLUMNS, rating, strict=True)))
            index_rows, handlers = db_rows(cid, [_fact_row(r) for r in rows])
            tables[stat_events].extend(index_rows)
            tables[conversation_agents].extend(handlers)
        with store.engine.begin() as conn:
            for table, rows_ in tables.items():
                conn.execute(sa.insert(table), rows_)
            for statement in backfill_counts_sql("sqlite"):
                conn.execute(sa.text(statement))
        began = time.perf_counter()
        reference = compute_stats_reference(store)
        reference_ms = (time.perf_counter() - began) * 1000
        times = []
        for _ in range(3):
            began = time.perf_counter()
            fast = compute_stats(store)
            times.append((time.perf_counter() - began) * 1000)
        week = END - timedelta(days=7)
        week_times = []
        for agent in AGENTS[:5]:
            began = time.perf_counter()
            compute_stats(store, since=week, until=END, agent_id=agent.id)
            week_times.append((time.perf_counter() - began) * 1000)
        what = f"SQLite, {conversations_:,} conversations over 30 days"
        return [
            Figure(f"{what}: reference computation, all time (baseline)", None, [reference_ms]),
            Figure(
                f"{what}: /stats path, all time", None, times, f"{reference_ms / statistics.median(times):,.0f}x faster"
            ),
            Figure(f"{what}: /stats path, one agent, one week", None, week_times, "5 agents"),
        ], fast == reference
    finally:
        store.close()


# --- The run.


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench stats", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--conversations", type=int, default=1_000_000, help="how many (default 1,000,000)")
    parser.add_argument(
        "--open", type=int, default=None, help="of which still open (default 100,000, or 10%% when fewer)"
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"a PostgreSQL database (default {DEFAULT_URL})")
    parser.add_argument("--output", type=Path, default=REPORT)
    parser.add_argument("--keep", action="store_true", help="keep the generated schema (it is printed) to look into")
    parser.add_argument(
        "--reuse", metavar="SCHEMA", help="measure a schema kept by --keep again instead of generating one (kept)"
    )
    parser.add_argument("--sqlite", type=int, default=7000, help="conversations of the SQLite comparison (0: none)")
    args = parser.parse_args(argv)
    total: int = args.conversations
    open_total: int = args.open if args.open is not None else min(100_000, total // 10)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    schema = args.reuse or f"bench_stats_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(args.database_url)
    if not args.reuse:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.engine.make_url(args.database_url).update_query_dict({"options": f"-csearch_path={schema}"})
    store = Store(url.render_as_string(hide_password=False))  # a reused schema is migrated here
    try:
        began = time.perf_counter()
        generated = counted(store, open_total) if args.reuse else generate(store, total, open_total, log)
        generation_s = time.perf_counter() - began
        log("measuring" if args.reuse else f"generated in {generation_s:,.0f} s; measuring")
        figures = measure(store, open_total)
        reference, fast, agree = baseline(store)
        figures += [reference, fast]
    finally:
        store.close()
        if args.keep or args.reuse:
            log(f"kept the schema {schema}")
        else:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    if args.sqlite:
        log(f"SQLite: {args.sqlite:,} conversations")
        with tempfile.TemporaryDirectory() as directory:
            more, sqlite_agree = sqlite_figures(args.sqlite, Path(directory))
        figures += more
        agree = agree and sqlite_agree
    text = report(generated, None if args.reuse else generation_s, figures, agree)
    args.output.write_text(text)
    print(text)
    log(f"wrote {args.output}")


def report(generated: Generated, generation_s: float | None, figures: list[Figure], agree: bool) -> str:
    made = (
        "measured again on a kept schema" if generation_s is None else f"generated and indexed in {generation_s:,.0f} s"
    )
    lines = [
        f"PostgreSQL, {generated.conversations:,} conversations ({generated.open:,} open), {generated.facts:,} facts, "
        f"{generated.index_rows:,} statistics index rows, {generated.ratings:,} ratings, over {YEARS} years, "
        f"{len(AGENTS)} agents; {made}. "
        f"Median (and worst) of the timed calls after a warm-up, through the API's route functions.",
        "",
        "| What | Median | Worst | Target | | Notes |",
        "|---|---:|---:|---|---|---|",
        *(f.row() for f in figures),
        "",
        "The index path and the reference agree (PostgreSQL: the baseline week, and five weeks from and to "
        "mid-day across a month's end; SQLite: all time): "
        f"{'yes' if agree else '**NO**'}.",
        "",
    ]
    return "\n".join(lines)
