"""A worker process killed with SIGKILL at each step of the reference conversation.

The scenarios (tests/faults/kill_scenarios.py) run in the background from the start of the
fault group; these tests wait for them and check each one. The conversation must end exactly
as the fault-free reference run: same transcript entry by entry, same facts in the database,
each once. And as proof the kill hit something: every activity in flight at the kill completed
later, on attempt 2 or more, run by the replacement worker (both read from the history).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import Played, assert_same_conversation
from tests.faults.kill_scenarios import SCENARIOS, Killed, Outcomes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def killed(kill_scenarios: asyncio.Task[Outcomes] | None) -> Outcomes:
    assert kill_scenarios is not None
    return await kill_scenarios


def outcome(killed: Outcomes, scenario: str) -> Killed:
    result = killed[scenario]
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_conversation_ends_as_without_the_fault(scenario: str, killed: Outcomes, reference: Played) -> None:
    run = outcome(killed, scenario)
    assert_same_conversation(run.run, reference)
    assert run.run.summary.closed_by is not None and run.run.summary.closed_by.name == "Bob Stone"


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_activities_in_flight_were_run_again_by_the_new_worker(scenario: str, killed: Outcomes) -> None:
    run = outcome(killed, scenario)
    assert run.in_flight
    for pending, done in zip(run.in_flight, run.completions, strict=True):
        assert done is not None, f"{pending.activity_type} never completed"
        assert done.activity_type == pending.activity_type
        assert done.attempt >= 2
        assert done.identity == run.replacement


async def test_continue_as_new_completes_after_the_kill(killed: Outcomes) -> None:
    run = outcome(killed, "continue_as_new")
    assert run.continued_as_new_after_kill
    assert run.run.runs > 2
