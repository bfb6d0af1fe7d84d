"""Agent tokens: the agents file named by HANDOFF_AGENTS_FILE, or the demo agents without it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from handoff.agents import AgentDirectory, AgentsFileError
from handoff.api import create_app
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.models import Agent
from handoff.store import Store
from tests.api.helpers import ALICE, bearer, ok, refused

TEAM = """
[[agents]]
id = "carol"
name = "Carol Diaz"
token = "carol-long-random-token-for-tests"

[[agents]]
id = "dan"
name = "Dan Ito"
token = "dan-long-random-token-for-tests"
"""


T = "a-token-of-24-characters"
U = "another-token-of-24-char"


def test_the_demo_agents_are_alice_and_bob() -> None:
    demo = AgentDirectory.default()
    assert demo.is_demo
    assert [(a.id, a.name, a.token) for a in demo.agents] == [
        ("alice", "Alice Martin", "alice-demo-token-not-secret"),
        ("bob", "Bob Stone", "bob-demo-token-not-secret"),
    ]
    assert demo.by_token("bob-demo-token-not-secret") == Agent(id="bob", name="Bob Stone")
    assert demo.by_token("bob-demo-token-not-secret ") is None
    assert demo.by_token("") is None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "no [[agents]]"),
        ("[[agents]]\nid = 'a'\nname = 'A'\n", "token"),
        ("[[agents]]\nid = 'a'\nname = ' '\ntoken = 't'\n", "name"),
        (
            f"[[agents]]\nid = 'a'\nname = 'A'\ntoken = '{T}'\n[[agents]]\nid = 'a'\nname = 'B'\ntoken = '{U}'\n",
            "twice",
        ),
        (
            f"[[agents]]\nid = 'a'\nname = 'A'\ntoken = '{T}'\n[[agents]]\nid = 'b'\nname = 'B'\ntoken = '{T}'\n",
            "same token",
        ),
        ("[[agents]]\nid = 'a'\nname = 'A'\ntoken = 't'\n", "token is 1 characters; use at least 24"),
        (f"[[agents]]\nid = 'a'\nname = 'A'\ntoken = '{T[:23]}'\n", "token is 23 characters; use at least 24"),
        ("[[agents]]\nid = 'a'\nname = 'A'\ntoken = 'replace-with-a-long-random-token'\n", "placeholder token"),
        ("[[agents]\n", "cannot read"),
    ],
)
def test_a_bad_agents_file_is_refused_with_the_reason(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    with pytest.raises(AgentsFileError, match=re.escape(complaint)):
        AgentDirectory.from_file(path)
    with pytest.raises(AgentsFileError, match="cannot read"):
        AgentDirectory.from_file(tmp_path / "missing.toml")


async def test_the_api_takes_its_agents_from_handoff_agents_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, handoff: HandoffClient, store: Store
) -> None:
    path = tmp_path / "team.toml"
    path.write_text(TEAM)
    monkeypatch.setenv("HANDOFF_AGENTS_FILE", str(path))
    settings = Settings(customer_token_secret=SecretStr("a-secret-of-enough-length"))
    app = create_app(settings, client=handoff, store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://handoff.test") as api:
        mine = await ok(api.get("/live/mine", headers=bearer("carol-long-random-token-for-tests")))
        assert mine["agent"] == {"id": "carol", "name": "Carol Diaz"}
        # The demo tokens no longer open anything.
        await refused(api.get("/live/mine", headers=ALICE), 401)
