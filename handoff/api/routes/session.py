"""The console's sign-in: an agent token exchanged once for a session cookie (see
handoff/agent_sessions.py), so the browser keeps no token and EventSource, which cannot send
an Authorization header, is still signed in."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from pydantic import Field

from handoff.agent_sessions import COOKIE_NAME
from handoff.api.deps import ERRORS, ServicesDep, Unauthorized
from handoff.api.schemas import Body
from handoff.models import Agent

router = APIRouter(tags=["console"], responses=ERRORS)


class SignIn(Body):
    token: str = Field(min_length=1, max_length=500, description="The agent's token from the agents file.")


class SessionOut(Body):
    agent: Agent | None = Field(description="The signed-in agent; null when signed out.")


@router.post("/session")
async def sign_in(body: SignIn, request: Request, response: Response, s: ServicesDep) -> SessionOut:
    """Sign in with an agent token: sets the `handoff_session` cookie (HttpOnly, SameSite=Strict,
    Secure over HTTPS) for the console's calls; 401 for an unknown token."""
    agent = s.agents.by_token(body.token)
    if agent is None:
        raise Unauthorized("unknown agent token")
    response.set_cookie(
        COOKIE_NAME,
        s.sessions.issue(agent),
        max_age=int(s.sessions.lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return SessionOut(agent=agent)


@router.get("/session")
async def who_am_i(request: Request, s: ServicesDep) -> SessionOut:
    """The agent the session cookie signs in, or null (signed out, expired, or never signed in):
    the console asks this first, and a signed-out visitor is not an error."""
    cookie = request.cookies.get(COOKIE_NAME)
    return SessionOut(agent=s.sessions.agent(cookie) if cookie else None)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(request: Request) -> Response:
    """Sign out: the browser deletes the session cookie."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        COOKIE_NAME, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response
