"""Issue 10: the pure rules of availability, capacity and automatic assignment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from handoff.availability import (
    AgentLoad,
    AgentStatus,
    Capacities,
    Waiting,
    occupancy,
    online_seconds,
    plan_assignments,
    refusal,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def load(
    agent_id: str, held: int, capacity: int, idle: float = 0, status: AgentStatus = AgentStatus.ONLINE
) -> AgentLoad:
    return AgentLoad(agent_id, status, held, capacity, at(idle))


def test_a_refusal_says_who_is_at_capacity_or_not_online() -> None:
    assert refusal("Ben Stone", AgentStatus.ONLINE, 5, 5, require_online=False) == (
        "at_capacity",
        "Ben Stone is at capacity (5 of 5)",
    )
    assert refusal("Ben Stone", AgentStatus.AWAY, 0, 5, require_online=False) is None  # a manual take-over
    assert refusal("Ben Stone", AgentStatus.AWAY, 0, 5, require_online=True) == (
        "not_online",
        "Ben Stone is away: a conversation can only be transferred to an agent who is online",
    )
    assert Capacities(5, {"ben": 2}).of("ben") == 2 and Capacities(5, {"ben": 2}).of("ana") == 5


def test_the_oldest_wait_goes_to_the_most_free_capacity_then_the_longest_idle() -> None:
    waiting = [Waiting("c3", at(3)), Waiting("c1", at(1)), Waiting("c2", at(2)), Waiting("c4", at(4))]
    agents = [
        load("ana", held=1, capacity=3, idle=10),  # 2 free
        load("ben", held=0, capacity=2, idle=20),  # 2 free, idle since later
        load("cy", held=0, capacity=5, idle=0, status=AgentStatus.AWAY),  # not online: nothing
        load("dee", held=2, capacity=2),  # full
    ]
    assert plan_assignments(waiting, agents, at(100)) == [("c1", "ana"), ("c2", "ben"), ("c3", "ana"), ("c4", "ben")]


def test_conversations_left_over_wait_for_a_slot() -> None:
    waiting = [Waiting(f"c{i}", at(i)) for i in range(5)]
    assert plan_assignments(waiting, [load("ana", 0, 2)], at(100)) == [("c0", "ana"), ("c1", "ana")]
    assert plan_assignments(waiting, [], at(100)) == []


@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(1, 6), st.sampled_from(list(AgentStatus))), max_size=6),
    st.integers(0, 30),
)
def test_a_plan_never_exceeds_capacity_nor_assigns_twice(agents: list[tuple[int, int, AgentStatus]], n: int) -> None:
    loads = [load(f"a{i}", held, cap, idle=i, status=status) for i, (held, cap, status) in enumerate(agents)]
    waiting = [Waiting(f"c{i}", at(i)) for i in range(n)]
    plan = plan_assignments(waiting, loads, at(1000))
    assert len({c for c, _ in plan}) == len(plan)
    free = sum(a.free for a in loads if a.status is AgentStatus.ONLINE)
    assert len(plan) == min(n, free)  # none forgotten while a slot is free
    assert [c for c, _ in plan] == [w.conversation_id for w in waiting][: len(plan)]  # oldest first
    for a in loads:
        assert sum(1 for _, who in plan if who == a.agent_id) <= (a.free if a.status is AgentStatus.ONLINE else 0)


def test_time_online_and_occupancy() -> None:
    changes = [(at(0), AgentStatus.ONLINE), (at(60), AgentStatus.AWAY), (at(90), AgentStatus.ONLINE)]
    assert online_seconds(changes, at(0), at(120)) == 90
    assert online_seconds(changes, at(30), at(100)) == 40
    assert online_seconds([], at(0), at(100)) == 0
    assert occupancy(held_seconds=90, capacity=2, online=90) == 0.5
    assert occupancy(held_seconds=0, capacity=2, online=0) is None
