"""Saved histories of complete conversations replay against today's workflow code.

A change that would break conversations already running (non-determinism) fails here.
The fixtures are recorded by tests/fixtures/make_histories.py and must not be regenerated
to make this test pass. Their payloads are encrypted under the fixed test key
(tests/encryption_keys.py), so replay also proves that the codec decrypts what it wrote.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from handoff.config import Settings
from handoff.converter import data_converter
from handoff.sandbox import workflow_runner
from tests.encryption_keys import TEST_KEY_ID, TEST_KEYS
from tests.security.history import history_payloads, key_ids, unencrypted
from workflows import ConversationWorkflow

HISTORIES = sorted((Path(__file__).parent / "fixtures" / "histories").glob("*.json"))


def test_there_are_histories_of_every_kind() -> None:
    names = {p.stem.split("-run")[0] for p in HISTORIES}
    assert {"reference_conversation", "closed_straight_from_the_bot", "continued_as_new"} <= names
    # Issue 8: read-side conversations (bot answers under reserved seqs, commands written by the API).
    assert {"read_side__reference_conversation", "read_side__continued_as_new"} <= names
    # Issue 8, cost: customer messages and requests as updates, search attributes at the close only.
    assert {"cost__reference_conversation", "cost__continued_as_new"} <= names
    # Issue 10: automatic assignment's take-overs and an offline agent's release.
    assert "agents_at_work" in names
    # Timers kept while their deadlines move later, re-armed when they fire, replaced by an earlier one.
    assert "lazy_timers" in names
    # The bot answering inside the workflow task (local activities), by update and by signal.
    assert {"local_bot__reference_conversation", "local_bot__continued_as_new"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_saved_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    converter = data_converter(Settings(encryption_keys=SecretStr(TEST_KEYS)))
    # The worker's runner (handoff/sandbox.py): what replays conversations in production.
    replayer = Replayer(workflows=[ConversationWorkflow], data_converter=converter, workflow_runner=workflow_runner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_saved_histories_hold_only_encrypted_payloads(path: Path) -> None:
    """What Temporal stored for these conversations: every payload encrypted under the test key."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    assert history_payloads(history)
    assert unencrypted(history) == []
    assert key_ids(history) == {TEST_KEY_ID}
