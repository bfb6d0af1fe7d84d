"""Statistics that scale (issue 12): the statistics index (`compute_stats`) gives exactly the
figures of the reference computation (`compute_stats_reference`, today's definitions in code) on
random histories played through the real rules, on SQLite and on PostgreSQL, whatever order the
batches are written in, however often they are retried, and for any window and agent filter."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handoff import stats
from handoff.lifecycle import Conversation, Rejected, new_state
from handoff.models import (
    AddNote,
    Agent,
    AgentReply,
    BotAnswered,
    Close,
    Command,
    CustomerMessage,
    Fact,
    HandBack,
    Outcome,
    RecordBatch,
    Release,
    RequestHuman,
    TakeOver,
    TimerSettings,
    Transfer,
)
from handoff.stat_events import count_keys, db_rows, fact_row
from handoff.stats import compute_stats, compute_stats_reference
from handoff.store import Rating, Store, conversation_agents, facts, metadata, stat_counts, stat_events
from tests.conftest import private_store
from tests.helpers import ALICE, BOB
from tests.test_migrations import database_url, first_release_database  # noqa: F401 (a fixture)

CAROL = Agent(id="agent-carol", name="Carol Diaz")
AGENTS = [ALICE, BOB, CAROL]
T0 = datetime(2025, 5, 30, 20, 0, tzinfo=UTC)  # evenings: conversations cross midnight, and May into June
TIMERS = TimerSettings(
    bot_idle_close=timedelta(hours=5),
    human_idle_close=timedelta(hours=8),
    waiting_sla=timedelta(minutes=30),
    first_reply_sla=timedelta(hours=1),
)

agents = st.sampled_from(AGENTS)
commands: st.SearchStrategy[Command | str] = st.one_of(
    st.just(CustomerMessage(text="hello")),
    st.just(BotAnswered(reply_to=1, text="the bot's answer")),
    st.builds(BotAnswered, reply_to=st.just(1), text=st.just("a person will help"), wants_human=st.just(True)),
    st.just(RequestHuman()),
    st.builds(TakeOver, agent=agents),
    st.builds(AgentReply, agent=agents, text=st.just("on it")),
    st.builds(HandBack, agent=agents),
    st.builds(Close, agent=agents, outcome=st.sampled_from([Outcome.RESOLVED, Outcome.NOT_RESOLVED])),
    st.builds(Transfer, agent=agents, to=agents),
    st.builds(Release, agent=agents),
    st.builds(AddNote, agent=agents, text=st.just("internal")),
    st.just("timer"),
)
# (seconds after the previous step, the command): steps up to a few hours apart.
steps = st.lists(st.tuples(st.integers(0, 4 * 3600), commands), min_size=1, max_size=14)
conversations = st.lists(
    st.tuples(st.integers(0, 3 * 86400), steps, st.one_of(st.none(), st.integers(1, 5))), min_size=1, max_size=5
)
# Busier histories, for the percentiles: each conversation starts with a request, a take-over, a
# reply and a close or hand-back (minutes to hours apart), then goes on at random; up to 15 of them.
delay = st.integers(0, 3 * 3600)
exchange = st.builds(
    lambda agent, d1, d2, d3, d4, end: [
        (d1, RequestHuman()),
        (d2, TakeOver(agent=agent)),
        (d3, AgentReply(agent=agent, text="on it")),
        (d4, end(agent)),
    ],
    agents,
    delay,
    delay,
    delay,
    delay,
    st.sampled_from(
        [lambda a: Close(agent=a, outcome=Outcome.RESOLVED), lambda a: HandBack(agent=a), lambda a: Release(agent=a)]
    ),
)
busy_conversations = st.lists(
    st.tuples(
        st.integers(0, 3 * 86400),
        st.builds(lambda first, rest: first + rest, exchange, st.lists(st.tuples(delay, commands), max_size=6)),
        st.one_of(st.none(), st.integers(1, 5)),
    ),
    min_size=2,
    max_size=15,
)


def play(
    conversation_id: str, start: int, script: list[tuple[int, Command | str]]
) -> tuple[list[RecordBatch], datetime]:
    """The batches the workflow would record for this script (rejected commands change nothing),
    and the time of the last one."""
    now = T0 + timedelta(seconds=start)
    conv = Conversation(new_state(conversation_id, f"customer-{conversation_id}", now, timers=TIMERS))
    first = conv.apply(CustomerMessage(text="hi"), now)
    batches = [RecordBatch(summary=conv.state.summary(), facts=first)]
    for seconds, command in script:
        now += timedelta(seconds=seconds)
        if command == "timer":
            fired = conv.next_timer()
            if fired is None or fired.deadline < now - timedelta(seconds=seconds):
                continue
            now = fired.deadline
            command = fired
        assert not isinstance(command, str)
        try:
            new = conv.apply(command, now)
        except Rejected:
            continue
        batches.append(RecordBatch(summary=conv.state.summary(), facts=new))
    return batches, now


def clear(store: Store) -> None:
    with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(sa.delete(table))


def windows(data: st.DataObject) -> Iterator[tuple[datetime | None, datetime | None]]:
    """All time, and a few windows with random bounds (some on midnight, some not)."""
    yield None, None
    bound = st.one_of(
        st.none(),
        st.integers(-86400, 5 * 86400).map(lambda s: T0 + timedelta(seconds=s)),
        st.integers(0, 5).map(lambda d: datetime.combine(T0.date() + timedelta(days=d), datetime.min.time(), UTC)),
    )
    for _ in range(3):
        yield data.draw(bound), data.draw(bound)


def same(store: Store, since: datetime | None, until: datetime | None, agent_id: str | None) -> None:
    """`compute_stats` equals the reference, with the percentiles of long windows read by rank
    (`stats.RANK_MIN_SPAN`, here any window) and by sorting the window's durations."""
    reference = compute_stats_reference(store, since=since, until=until, agent_id=agent_id)
    for span in (stats.RANK_MIN_SPAN, timedelta(0)):
        default, stats.RANK_MIN_SPAN = stats.RANK_MIN_SPAN, span
        try:
            fast = compute_stats(store, since=since, until=until, agent_id=agent_id)
        finally:
            stats.RANK_MIN_SPAN = default
        assert fast.model_dump() == reference.model_dump(), (since, until, agent_id, span)


def check_random_histories(
    store: Store,
    data: st.DataObject,
    strategy: st.SearchStrategy[list[tuple[int, list[tuple[int, Command | str]], int | None]]] = conversations,
) -> None:
    clear(store)
    histories = data.draw(strategy)
    writes: list[RecordBatch] = []
    for n, (start, script, rating) in enumerate(histories):
        batches, end = play(f"c{n}", start, script)
        writes.extend(batches)
        closer = batches[-1].summary.closed_by if batches[-1].summary else None
        if rating is not None and closer is not None:
            assert store.add_rating(Rating(f"c{n}", rating, None, end + timedelta(minutes=rating), closer))
    # Retries (a batch written again, or first one fact of it alone) and crashes (batches
    # written late, in any order, across conversations).
    retried = data.draw(st.lists(st.sampled_from(writes), max_size=6)) if writes else []
    singles: list[RecordBatch | list[Fact]] = [b.facts[:1] for b in retried if b.facts]
    order = data.draw(st.permutations([*writes, *retried, *singles]))
    for batch in order:
        if isinstance(batch, list):
            store.record_entries(batch)  # a fact written alone, by another writer
        else:
            store.record(batch)
    # The index written piecemeal (rows appended, conversations rewritten) is the one the
    # recorded facts give, and its figures are the reference's.
    assert index_of(store) == derived_from_facts(store)
    assert counts_of(store) == counted_from_index(store)
    for since, until in windows(data):
        for agent in [None, *(a.id for a in AGENTS)]:
            same(store, since, until, agent)


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with private_store("sqlite", tmp_path_factory) as store:
        yield store


@pytest.fixture(scope="module")
def postgres_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with private_store("postgresql", tmp_path_factory) as store:
        yield store


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_index_equals_the_reference_on_sqlite(sqlite_store: Store, data: st.DataObject) -> None:
    check_random_histories(sqlite_store, data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_index_equals_the_reference_on_postgresql(postgres_store: Store, data: st.DataObject) -> None:
    check_random_histories(postgres_store, data)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_busy_histories_on_sqlite(sqlite_store: Store, data: st.DataObject) -> None:
    check_random_histories(sqlite_store, data, busy_conversations)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_busy_histories_on_postgresql(postgres_store: Store, data: st.DataObject) -> None:
    check_random_histories(postgres_store, data, busy_conversations)


def _without_seq(row: tuple[object, ...]) -> tuple[str, ...]:
    """An index row as comparable text, without its position (rows appended by a later write
    come last, a rewrite puts them in walk order: the figures depend on the set of rows)."""
    return tuple(str(v) for i, v in enumerate(row) if i != 1)


def index_of(store: Store) -> tuple[list[tuple[str, ...]], list[tuple[object, ...]]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(stat_events)).all()
        handlers = conn.execute(sa.select(conversation_agents).order_by(*conversation_agents.c)).all()
    return sorted(_without_seq(tuple(r)) for r in rows), [tuple(r) for r in handlers]


def derived_from_facts(store: Store) -> tuple[list[tuple[str, ...]], list[tuple[object, ...]]]:
    """The index rows the recorded facts give, derived afresh."""
    f = facts.c
    query = sa.select(f.conversation_id, f.number, f.kind, f.at, f.entry_kind, f.agent_id, f.outcome).where(
        f.kind != "note"
    )
    by_conversation: dict[str, list[object]] = {}
    with store.engine.connect() as conn:
        for cid, *columns in conn.execute(query):
            by_conversation.setdefault(cid, []).append(fact_row(*columns))
    rows: list[tuple[str, ...]] = []
    handlers: list[tuple[object, ...]] = []
    for cid in sorted(by_conversation):
        new_rows, new_handlers = db_rows(cid, by_conversation[cid])  # type: ignore[arg-type]
        rows.extend(_without_seq(tuple(r.values())) for r in new_rows)
        handlers.extend((h["agent_id"], h["conversation_id"], h["first_at"], h["last_at"]) for h in new_handlers)
    return sorted(rows), sorted(handlers)


def counts_of(store: Store) -> dict[tuple[object, ...], int]:
    """`stat_counts` as maintained by the writes (keys counted down to zero left out)."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(stat_counts)).all()
    return {(scope, day, kind, agent, end_day): n for scope, day, kind, agent, end_day, n in rows if n}


def counted_from_index(store: Store) -> dict[tuple[object, ...], int]:
    """The counts per day the statistics index rows give, counted afresh."""
    e = stat_events.c
    counted: dict[tuple[object, ...], int] = {}
    with store.engine.connect() as conn:
        for row in conn.execute(sa.select(e.kind, e.at, e.agent_id, e.end_at)):
            for key in count_keys(*row):
                counted[key] = counted.get(key, 0) + 1
    return counted


def test_concurrent_writers_of_one_conversation_leave_the_index_of_all_its_facts(postgres_store: Store) -> None:
    """Writers at once (the workflow's batch and the bot activity's answer, or a retry racing
    the original) on PostgreSQL: the index is that of every fact recorded, whoever commits last."""
    store = postgres_store
    clear(store)
    written: list[Fact] = []
    for n in range(6):
        script: list[tuple[int, Command | str]] = [
            (10, RequestHuman()),
            (20, TakeOver(agent=ALICE)),
            (30, AgentReply(agent=ALICE, text="hi")),
            (40, Transfer(agent=ALICE, to=BOB)),
            (50, AgentReply(agent=BOB, text="hello")),
            (60, Close(agent=BOB, outcome=Outcome.RESOLVED)),
        ]
        played, _ = play(f"race{n}", n * 3600, script)
        written.extend(f for b in played for f in b.facts)
    errors: list[BaseException] = []

    def write(some: list[Fact]) -> None:
        try:
            for fact in some:
                store.record_entries([fact])
        except BaseException as e:  # collected, so a failing thread fails the test
            errors.append(e)

    threads = [threading.Thread(target=write, args=(written[i::3],)) for i in range(3)]
    threads.append(threading.Thread(target=write, args=(list(reversed(written)),)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert index_of(store) == derived_from_facts(store)
    assert counts_of(store) == counted_from_index(store)
    for agent in [None, ALICE.id, BOB.id]:
        same(store, None, None, agent)
    assert compute_stats(store).totals.transfers == 6


def test_a_migrated_database_has_the_index_of_its_facts(database_url: str) -> None:  # noqa: F811
    """Upgrading a database holding conversations backfills the index from their facts."""
    old = first_release_database(database_url)
    store = Store(database_url)
    try:
        rows, handlers = index_of(store)
        assert rows and (rows, handlers) == derived_from_facts(store)
        assert counts_of(store) and counts_of(store) == counted_from_index(store)
        assert compute_stats(store).totals.messages.customer == 1
        for agent in [None, "alice"]:
            same(store, None, None, agent)
    finally:
        store.close()
        old.dispose()
