"""What the console and the widget need from the API (issue 11): the session cookie that signs
the console in, the Team view, and the pages with their security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from handoff.agent_sessions import COOKIE_NAME, AgentSessions
from handoff.agents import AgentDirectory, AgentEntry
from handoff.api import create_app
from handoff.config import Settings
from handoff.models import Agent
from tests.api.helpers import ALICE, ok, refused, start


@pytest.fixture
async def browser_like(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, like one browser (the shared `api` client must stay signed out)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://handoff.test", timeout=60) as client:
        yield client


async def test_the_session_cookie_signs_the_console_in_and_out(browser_like: httpx.AsyncClient) -> None:
    http = browser_like
    assert (await ok(http.get("/session")))["agent"] is None
    assert "unknown agent token" in await refused(http.post("/session", json={"token": "not-a-token-" * 3}), 401)
    assert COOKIE_NAME not in http.cookies

    signed_in = await http.post("/session", json={"token": "alice-demo-token-not-secret"})
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["agent"] == {"id": "alice", "name": "Alice Martin"}
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie, cookie
    assert "alice-demo-token-not-secret" not in cookie
    assert "Secure" not in cookie  # plain http here; set over https

    assert (await ok(http.get("/session")))["agent"]["id"] == "alice"
    assert (await ok(http.get("/live/mine")))["agent"]["id"] == "alice"
    # A command with the cookie needs the console's header, which a cross-site form cannot send.
    created = await start(http, customer_id="console-api-customer")
    refusal = await refused(http.post(f"/conversations/{created['id']}/takeover"), 403)
    assert "X-Handoff-Console" in refusal
    taken = await ok(http.post(f"/conversations/{created['id']}/takeover", headers={"X-Handoff-Console": "1"}))
    assert taken["agent"]["id"] == "alice"
    # A bearer token still wins over the cookie (backends, the CLI).
    assert (await ok(http.get("/live/mine", headers={"Authorization": "Bearer bob-demo-token-not-secret"})))["agent"][
        "id"
    ] == "bob"

    signed_out = await http.delete("/session")
    assert signed_out.status_code == 204
    assert COOKIE_NAME not in http.cookies
    assert (await ok(http.get("/session")))["agent"] is None
    await refused(http.get("/live/mine"), 401)


async def test_a_forged_or_stale_cookie_signs_nobody_in(browser_like: httpx.AsyncClient) -> None:
    http = browser_like
    for forged in ("", "x", "YWxpY2U.99999999999.AAAA", "YWxpY2U.1.AAAA", "!!.1.!!"):
        http.cookies.set(COOKIE_NAME, forged, domain="handoff.test")
        assert (await ok(http.get("/session")))["agent"] is None, forged
        assert "sign in again" in await refused(http.get("/live/mine"), 401)


def test_sessions_expire_and_end_when_the_agents_token_changes() -> None:
    secret = b"0123456789abcdef0123"
    before = AgentDirectory([AgentEntry("alice", "Alice Martin", "a" * 30), AgentEntry("bob", "Bob Stone", "b" * 30)])
    sessions = AgentSessions(secret, before, lifetime=timedelta(hours=1))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cookie = sessions.issue(Agent(id="alice", name="Alice Martin"), now)
    assert sessions.agent(cookie, now + timedelta(minutes=59)) == Agent(id="alice", name="Alice Martin")
    assert sessions.agent(cookie, now + timedelta(hours=1)) is None

    agent_id, expires, mac = cookie.split(".")
    bob_id = "Ym9i"  # base64url("bob"): the same MAC does not sign Bob in
    assert sessions.agent(f"{bob_id}.{expires}.{mac}", now) is None
    assert sessions.agent(f"{agent_id}.{int(expires) + 3600}.{mac}", now) is None  # a longer life is refused

    rotated = AgentDirectory([AgentEntry("alice", "Alice Martin", "c" * 30), AgentEntry("bob", "Bob Stone", "b" * 30)])
    assert AgentSessions(secret, rotated).agent(cookie, now) is None
    assert AgentSessions(b"another-secret-0123456", before).agent(cookie, now) is None


async def test_team_lists_every_agent_with_their_load(api: httpx.AsyncClient) -> None:
    team = await ok(api.get("/team", headers=ALICE))
    assert team["me"] == {"id": "alice", "name": "Alice Martin"}
    members = {m["agent"]["id"]: m for m in team["members"]}
    assert set(members) == {"alice", "bob"}
    mine = await ok(api.get("/live/mine", headers=ALICE))
    assert members["alice"]["holding"] == len(mine["conversations"])
    # Issue 10: status (offline until set) and capacity (tests/conftest.py's HANDOFF_AGENT_CAPACITY).
    assert members["bob"]["status"] in {"online", "away", "offline"}
    assert members["bob"]["capacity"] == 100000
    await refused(api.get("/team"), 401)


async def test_pages_are_served_with_a_strict_policy(api: httpx.AsyncClient) -> None:
    console = await api.get("/console/")
    assert console.status_code == 200 and console.headers["content-type"].startswith("text/html")
    policy = console.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy and console.headers["x-frame-options"] == "DENY"
    assert console.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/web/console/console.js">' in console.text

    chat = await api.get("/chat/")
    assert chat.status_code == 200
    assert "frame-ancestors 'self'" in chat.headers["content-security-policy"]
    assert "x-frame-options" not in chat.headers

    redirect = await api.get("/console")
    assert redirect.status_code == 307 and redirect.headers["location"] == "/console/"
    script = await api.get("/web/console/console.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "content-security-policy" in script.headers
    assert (await api.get("/web/../pyproject.toml")).status_code == 404


def test_the_widget_frame_setting_cannot_add_directives() -> None:
    settings = Settings(customer_token_secret=SecretStr("x" * 20), widget_frame_ancestors="* ; script-src *")
    with pytest.raises(ValueError, match="HANDOFF_WIDGET_FRAME_ANCESTORS"):
        create_app(settings)
