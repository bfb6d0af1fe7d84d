"""What every route shares: the services, the two kinds of caller, bounded Temporal calls.

Customer calls carry the conversation's customer token (see `handoff.customer_tokens`);
agent calls carry an agent token from the agents file (see `handoff.agents`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from handoff.agent_sessions import COOKIE_NAME, CSRF_HEADER, AgentSessions
from handoff.agents import AgentDirectory
from handoff.api.schemas import ErrorBody
from handoff.client import ConversationNotFound, HandoffClient
from handoff.config import Settings
from handoff.customer_tokens import CustomerTokens
from handoff.models import Agent
from handoff.store import Store

if TYPE_CHECKING:
    from handoff.assignment import Assigner

T = TypeVar("T")
log = logging.getLogger("handoff.api")

MAX_CONVERSATION_ID = 100  # the store's column width
MIN_IDEMPOTENCY_KEY_CHARS = 16


class Unauthorized(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TemporalUnavailable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Services:
    """What the routes use; the client and store are filled in at start-up if not given."""

    settings: Settings
    agents: AgentDirectory
    tokens: CustomerTokens
    sessions: AgentSessions
    client: HandoffClient | None = None
    store: Store | None = None
    # Issue 10: the automatic assigner, when HANDOFF_ASSIGNMENT=auto (see handoff/assignment.py).
    assigner: Assigner | None = None

    @property
    def handoff(self) -> HandoffClient:
        if self.client is None:
            raise RuntimeError("the API is not started: no Temporal client")
        return self.client

    @property
    def db(self) -> Store:
        if self.store is None:
            raise RuntimeError("the API is not started: no store")
        return self.store

    async def temporal(self, call: Awaitable[T], *, command: bool = False) -> T:
        """Await a Temporal call, bounded in time; an outage becomes `TemporalUnavailable` (503).

        The client is told only that Temporal is unavailable and whether a command may still
        take effect: the details (addresses, gRPC status and text) are for the operators' log."""
        timeout = self.settings.api_temporal_timeout
        try:
            return await asyncio.wait_for(call, timeout)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            # An update cancelled by the timeout surfaces as the latter.
            queue = self.client.task_queue if self.client else self.settings.task_queue
            log.warning("Temporal did not answer within %g s (is it up, with a worker polling %r?)", timeout, queue)
            raise TemporalUnavailable(unavailable(command, may_take_effect=True)) from None
        except RPCError as e:
            log.warning("Temporal refused the call (%s): %s", e.status.name, e.message)
            raise TemporalUnavailable(unavailable(command, may_take_effect=True)) from None
        except RuntimeError as e:
            # A lazy client that cannot connect raises "Failed client connect: ...".
            if "connect" not in str(e):
                raise
            log.warning("cannot reach Temporal at %s: %s", self.settings.temporal_address, e)
            raise TemporalUnavailable(unavailable(command, may_take_effect=False)) from None


def unavailable(command: bool, *, may_take_effect: bool) -> str:
    """What a client is told when Temporal fails a call."""
    if not command:
        return "Temporal is unavailable; try again shortly"
    if may_take_effect:
        return "Temporal is unavailable; the command may still take effect, check GET /conversations/{id}"
    return "Temporal is unavailable; the command was not carried out, try again shortly"


def services(request: Request) -> Services:
    s: Services = request.app.state.services
    return s


ServicesDep = Annotated[Services, Depends(services)]

customer_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="CustomerToken",
    description="The `customer_token` returned by POST /conversations; opens that conversation only.",
)
agent_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AgentToken",
    description="An agent's token from the agents file (HANDOFF_AGENTS_FILE).",
)


def customer_of(
    conversation_id: str,
    s: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(customer_bearer)],
) -> str:
    """The conversation id, once the bearer token is shown to be its customer's."""
    if credentials is None:
        raise Unauthorized("missing customer token: send 'Authorization: Bearer <customer_token>'")
    if not s.tokens.opens(credentials.credentials, conversation_id):
        raise Unauthorized("this token does not open this conversation")
    return conversation_id


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def current_agent(
    request: Request,
    s: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(agent_bearer)],
) -> Agent:
    """The agent calling: by bearer token (backends, the CLI), else by the console's session
    cookie (see handoff/agent_sessions.py). A command sent with the cookie must also carry the
    console's header, which a page on another site cannot add."""
    if credentials is not None:
        agent = s.agents.by_token(credentials.credentials)
        if agent is None:
            raise Unauthorized("unknown agent token")
        return agent
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is None:
        raise Unauthorized("missing agent token: send 'Authorization: Bearer <agent token>'")
    agent = s.sessions.agent(cookie)
    if agent is None:
        raise Unauthorized("the session is over (signed out, expired or the agent's token changed): sign in again")
    if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != "1":
        raise Forbidden(f"a command sent with the session cookie needs the header '{CSRF_HEADER}: 1'")
    return agent


CustomerConversation = Annotated[str, Depends(customer_of)]
CurrentAgent = Annotated[Agent, Depends(current_agent)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=MIN_IDEMPOTENCY_KEY_CHARS,
        max_length=200,
        description=(
            "Retrying with the same key and body never acts twice; the same key with another body is a 409. "
            f"At least {MIN_IDEMPOTENCY_KEY_CHARS} characters, random (e.g. a UUID): with the customer id it "
            "names the conversation."
        ),
    ),
]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in [
        (401, "Missing or wrong token."),
        (404, "No such conversation."),
        (409, "Closed, held by another agent, in the wrong status, or an Idempotency-Key reused for another body."),
        (503, "Temporal is unreachable or did not answer in time."),
    ]
}
AGENT_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": ErrorBody, "description": "Only the agent who holds the conversation may do this."},
}


def utc(value: datetime | None) -> datetime | None:
    """Query datetimes in UTC (taken as UTC without a zone); one that leaves the calendar once
    in UTC (e.g. 9999-12-31T23:59-01:00) is a 422, not an overflow in the database layer."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{value.isoformat()} is out of range in UTC"
        ) from None


def check_id(conversation_id: str) -> None:
    # Longer ids were never issued; refuse them here rather than ask Temporal.
    if len(conversation_id) > MAX_CONVERSATION_ID:
        raise ConversationNotFound(f"no conversation {conversation_id[:MAX_CONVERSATION_ID]!r}...")
