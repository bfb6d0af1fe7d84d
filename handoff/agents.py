"""Who the agents are: bearer tokens mapped to an agent id and display name.

The support team's agents live in a TOML file of `[[agents]]` tables (`id`, `name`,
`token`) named by `HANDOFF_AGENTS_FILE`; without it, `demo_agents.toml` ships two demo
agents whose tokens are public (the CLI prints them at start-up), so a fresh install can be
driven with `curl` at once; the CLI refuses them on any address but loopback. Every token
must be at least 24 characters (and not deploy/agents.toml's placeholder). Tokens are kept
only as SHA-256 digests in memory, so a lookup compares digests and never leaks a token's
prefix through timing.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from handoff.availability import Capacities
from handoff.models import Agent

DEMO_AGENTS_FILE = Path(__file__).with_name("demo_agents.toml")
MIN_TOKEN_CHARS = 24
"""An agent token is a password that never expires: short ones can be guessed."""
PLACEHOLDER_PREFIX = "replace-with-"
"""How deploy/agents.toml's placeholder tokens start: a deployment must not go live with them."""
TOKEN_RECIPE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


class AgentsFileError(ValueError):
    """The agents file is missing, unreadable, or has a bad or duplicate entry."""


@dataclass(frozen=True)
class AgentEntry:
    id: str
    name: str
    token: str
    # Issue 10: conversations this agent may hold at once (None: HANDOFF_AGENT_CAPACITY).
    max_conversations: int | None = None

    @property
    def agent(self) -> Agent:
        return Agent(id=self.id, name=self.name)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class AgentDirectory:
    """The agents who may call the agent side of the API."""

    def __init__(self, agents: list[AgentEntry], source: Path | None = None) -> None:
        self.agents = list(agents)
        self.source = source
        self._by_digest: dict[bytes, AgentEntry] = {}
        ids: set[str] = set()
        for entry in self.agents:
            if entry.id in ids:
                raise AgentsFileError(f"agent id {entry.id!r} appears twice")
            digest = _digest(entry.token)
            if digest in self._by_digest:
                raise AgentsFileError(f"agent {entry.id!r} has the same token as {self._by_digest[digest].id!r}")
            ids.add(entry.id)
            self._by_digest[digest] = entry

    @classmethod
    def from_file(cls, path: Path | str) -> AgentDirectory:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise AgentsFileError(f"cannot read agents file {path}: {e}") from e
        tables = data.get("agents")
        if not isinstance(tables, list) or not tables:
            raise AgentsFileError(f"agents file {path} has no [[agents]] tables")
        entries = []
        for number, table in enumerate(tables, start=1):
            values = {key: table.get(key) if isinstance(table, dict) else None for key in ("id", "name", "token")}
            bad = [key for key, value in values.items() if not isinstance(value, str) or not value.strip()]
            if bad:
                raise AgentsFileError(f"agents file {path}: agent #{number} needs a non-empty {', '.join(bad)}")
            token = str(values["token"])
            if len(token) < MIN_TOKEN_CHARS:
                raise AgentsFileError(
                    f"agents file {path}: agent #{number}'s token is {len(token)} characters; "
                    f"use at least {MIN_TOKEN_CHARS} random ones ({TOKEN_RECIPE})"
                )
            if token.startswith(PLACEHOLDER_PREFIX):
                raise AgentsFileError(
                    f"agents file {path}: agent #{number} still has the placeholder token; "
                    f"replace it with a random one ({TOKEN_RECIPE})"
                )
            # Agent validates the id and name lengths the rest of Handoff relies on.
            try:
                Agent(id=str(values["id"]), name=str(values["name"]))
            except ValueError as e:
                raise AgentsFileError(f"agents file {path}: agent #{number}: {e}") from e
            capacity = table.get("max_conversations") if isinstance(table, dict) else None
            if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1):
                raise AgentsFileError(
                    f"agents file {path}: agent #{number}'s max_conversations must be a whole number of at least 1"
                )
            entries.append(
                AgentEntry(id=str(values["id"]), name=str(values["name"]), token=token, max_conversations=capacity)
            )
        try:
            return cls(entries, source=path)
        except AgentsFileError as e:
            raise AgentsFileError(f"agents file {path}: {e}") from e

    @classmethod
    def default(cls) -> AgentDirectory:
        """The two demo agents, whose tokens are public: for trying Handoff out on loopback only."""
        return cls.from_file(DEMO_AGENTS_FILE)

    @classmethod
    def from_settings(cls, agents_file: Path | None) -> AgentDirectory:
        """The file `HANDOFF_AGENTS_FILE` names, else the demo agents."""
        return cls.from_file(agents_file) if agents_file is not None else cls.default()

    @property
    def is_demo(self) -> bool:
        return self.source == DEMO_AGENTS_FILE

    def capacities(self, default: int) -> Capacities:
        """How many conversations each agent may hold: their `max_conversations`, else `default`."""
        return Capacities(default, {e.id: e.max_conversations for e in self.agents if e.max_conversations is not None})

    def by_id(self, agent_id: str) -> Agent | None:
        entry = next((e for e in self.agents if e.id == agent_id), None)
        return entry.agent if entry else None

    def by_token(self, token: str) -> Agent | None:
        entry = self._by_digest.get(_digest(token))
        return entry.agent if entry else None
