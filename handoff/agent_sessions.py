"""Agent sessions of the console: a signed cookie instead of a token kept by the browser.

The console signs in with an agent token once (POST /session); the answer sets a cookie that
is HttpOnly (page scripts cannot read it), SameSite=Strict (no other site's page can make the
browser send it) and, over HTTPS, Secure. The cookie carries the agent id and an expiry, signed
with HMAC-SHA256 under the customer token secret (a purpose label keeps the two kinds of MAC
apart), so nothing is stored per session and every API process with the same secret accepts
it. The MAC also covers a digest of the agent's current token: replacing an agent's token in
the agents file ends their sessions. Sign-out deletes the cookie in the browser; a copy taken
before stays valid until it expires (`LIFETIME`), the price of keeping no session table.

The agent token itself is never put in a URL or logged; EventSource (which cannot send an
Authorization header) authenticates with this cookie.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from handoff.agents import AgentDirectory
from handoff.models import Agent

COOKIE_NAME = "handoff_session"
LIFETIME = timedelta(hours=12)
CSRF_HEADER = "X-Handoff-Console"
"""Sent by the console with every command made with the cookie: a cross-site form cannot set
it, so even a browser that ignored SameSite could not be made to send a command."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AgentSessions:
    def __init__(self, secret: bytes, agents: AgentDirectory, lifetime: timedelta = LIFETIME) -> None:
        self._secret = secret
        self._agents = agents
        self.lifetime = lifetime

    def _mac(self, agent_id: str, expires: int) -> bytes | None:
        entry = next((e for e in self._agents.agents if e.id == agent_id), None)
        if entry is None:
            return None
        token_digest = hashlib.sha256(entry.token.encode("utf-8")).hexdigest()
        message = "\0".join(("agent-session", agent_id, str(expires), token_digest)).encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def issue(self, agent: Agent, now: datetime | None = None) -> str:
        """The cookie value for `agent`, valid for `lifetime` from `now`."""
        expires = int(((now or datetime.now(UTC)) + self.lifetime).timestamp())
        mac = self._mac(agent.id, expires)
        if mac is None:
            raise ValueError(f"no agent {agent.id!r}")
        return f"{_b64(agent.id.encode('utf-8'))}.{expires}.{_b64(mac)}"

    def agent(self, cookie: str, now: datetime | None = None) -> Agent | None:
        """The agent a cookie signs in, or None if it is forged, expired or its agent is gone."""
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
            return None
        try:
            agent_id = _unb64(parts[0]).decode("utf-8")
            given = _unb64(parts[2])
        except (ValueError, binascii.Error):
            return None
        expires = int(parts[1])
        expected = self._mac(agent_id, expires)
        if expected is None or not hmac.compare_digest(given, expected):
            return None
        if expires <= (now or datetime.now(UTC)).timestamp():
            return None
        return self._agents.by_id(agent_id)
