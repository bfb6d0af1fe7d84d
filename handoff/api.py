"""Handoff's HTTP API: what the customer's chat widget and the agent UI call.

Customer calls carry the conversation's customer token (see `handoff.customer_tokens`);
agent calls carry an agent token from the agents file (see `handoff.agents`). Commands go
to the conversation's workflow through `HandoffClient`, which already maps refusals to a few
exceptions; this module only turns those into HTTP statuses:

    ConversationNotFound 404 · ConversationClosed 409 · ConversationHeld 409 ·
    NotAssignedAgent 403 · WrongStatus 409 · InvalidCommand 422 · Temporal unreachable 503

Reads: one conversation comes live from its workflow while it runs and from the database
once it is closed and fully recorded (or gone from Temporal); the live columns, the history
and the statistics come from the database only, so they keep working during a Temporal
outage and outlive Temporal's retention. Every Temporal call is bounded by
`Settings.api_temporal_timeout`, so an outage is a prompt 503, never a hanging request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from handoff.agents import AgentDirectory
from handoff.api_schemas import (
    Accepted,
    CloseRequest,
    ConversationDetail,
    CreatedConversation,
    CustomerMessages,
    ErrorBody,
    HistoryPageOut,
    MyConversations,
    NewMessage,
    NewReply,
    StartConversation,
    WaitingColumn,
    WaitingConversation,
)
from handoff.client import (
    ConversationClosed,
    ConversationHeld,
    ConversationNotFound,
    HandoffClient,
    HandoffError,
    InvalidCommand,
    NotAssignedAgent,
    WrongStatus,
)
from handoff.codec_server import codec_router
from handoff.config import Settings
from handoff.converter import data_converter
from handoff.customer_tokens import CustomerTokens, load_secret
from handoff.lifecycle import CLOSED_MESSAGE
from handoff.models import Agent, ConversationSummary, EntryKind, Outcome, Status, TranscriptEntry
from handoff.stats import Stats, compute_stats
from handoff.store import InvalidCursor, Store

T = TypeVar("T")

MAX_BODY_BYTES = 1024 * 1024
"""Requests declaring a larger body are refused with 413 before it is read."""

MAX_CONVERSATION_ID = 100  # the store's column width

STATUS_BY_ERROR: list[tuple[type[HandoffError], int]] = [
    (ConversationNotFound, status.HTTP_404_NOT_FOUND),
    (ConversationClosed, status.HTTP_409_CONFLICT),
    (ConversationHeld, status.HTTP_409_CONFLICT),
    (NotAssignedAgent, status.HTTP_403_FORBIDDEN),
    (WrongStatus, status.HTTP_409_CONFLICT),
    (InvalidCommand, status.HTTP_422_UNPROCESSABLE_CONTENT),
    # Anything else the engine refused, e.g. a workflow an operator terminated.
    (HandoffError, status.HTTP_409_CONFLICT),
]


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
    client: HandoffClient | None = None
    store: Store | None = None

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
        """Await a Temporal call, bounded in time; an outage becomes `TemporalUnavailable` (503)."""
        timeout = self.settings.api_temporal_timeout
        try:
            return await asyncio.wait_for(call, timeout)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            # An update cancelled by the timeout surfaces as the latter.
            queue = self.client.task_queue if self.client else self.settings.task_queue
            message = f"Temporal did not answer within {timeout:g} s (is it up, with a worker polling {queue!r}?)"
            if command:
                message += "; the command may still take effect, check GET /conversations/{id}"
            raise TemporalUnavailable(message) from None
        except RPCError as e:
            raise TemporalUnavailable(f"Temporal refused the call ({e.status.name}): {e.message}") from None
        except RuntimeError as e:
            # A lazy client that cannot connect raises "Failed client connect: ...".
            if "connect" not in str(e):
                raise
            raise TemporalUnavailable(f"cannot reach Temporal at {self.settings.temporal_address}: {e}") from None


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


def current_agent(
    s: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(agent_bearer)]
) -> Agent:
    if credentials is None:
        raise Unauthorized("missing agent token: send 'Authorization: Bearer <agent token>'")
    agent = s.agents.by_token(credentials.credentials)
    if agent is None:
        raise Unauthorized("unknown agent token")
    return agent


CustomerConversation = Annotated[str, Depends(customer_of)]
CurrentAgent = Annotated[Agent, Depends(current_agent)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Retrying with the same key (and customer) never acts twice.",
    ),
]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in [
        (401, "Missing or wrong token."),
        (404, "No such conversation."),
        (409, "Closed, held by another agent, or in the wrong status."),
        (503, "Temporal is unreachable or did not answer in time."),
    ]
}
AGENT_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": ErrorBody, "description": "Only the agent who holds the conversation may do this."},
}


def _utc(value: datetime | None) -> datetime | None:
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


def _customer_view(entries: list[TranscriptEntry]) -> list[TranscriptEntry]:
    return [e for e in entries if e.kind is not EntryKind.SYSTEM]


def _check_id(conversation_id: str) -> None:
    # Longer ids were never issued; refuse them here rather than ask Temporal.
    if len(conversation_id) > MAX_CONVERSATION_ID:
        raise ConversationNotFound(f"no conversation {conversation_id[:MAX_CONVERSATION_ID]!r}...")


async def _read(s: Services, conversation_id: str) -> tuple[ConversationSummary, list[TranscriptEntry], bool]:
    """A conversation's summary and transcript, and whether they were read live from Temporal.

    A closed conversation whose facts are all in the database is read from there without
    asking Temporal; a running one from its workflow; one Temporal no longer has from the
    database, whatever it holds.
    """
    _check_id(conversation_id)
    stored = await run_in_threadpool(s.db.summary, conversation_id)
    if stored is not None and stored.status is Status.CLOSED:
        facts = await run_in_threadpool(s.db.facts, conversation_id)
        if facts and facts[-1].number == stored.last_fact:
            return stored, [f.entry for f in facts if f.entry is not None], False
    try:
        # One after the other, not concurrently (see `_wait_for_bot`).
        summary = await s.temporal(s.handoff.summary(conversation_id))
        transcript = await s.temporal(s.handoff.transcript(conversation_id))
        return summary, transcript, True
    except (ConversationNotFound, ConversationClosed):
        if stored is None:
            raise
        return stored, await run_in_threadpool(s.db.transcript, conversation_id), False


async def _refuse_if_closed(s: Services, conversation_id: str) -> None:
    """Customer signals are fire-and-forget, so a closed conversation is refused up front.

    The database row only moves forward, so "closed" there is final; a close the database
    has not recorded yet is caught by the workflow, which drops the signal.
    """
    stored = await run_in_threadpool(s.db.summary, conversation_id)
    if stored is not None and stored.status is Status.CLOSED:
        raise ConversationClosed(CLOSED_MESSAGE)


async def _wait_for_bot(s: Services, conversation_id: str) -> tuple[Status, list[TranscriptEntry]]:
    """The status and transcript once the bot has answered the first message, or as they
    stand when `api_temporal_timeout` runs out (with no worker running, a new conversation
    is in `bot` status and its transcript is not known yet; the answer follows in
    GET .../messages once a worker runs).

    One query at a time: concurrent queries on a workflow whose first task is still running
    were seen to take about a second longer."""
    deadline = time.monotonic() + s.settings.api_temporal_timeout
    transcript: list[TranscriptEntry] = []
    pause = 0.02
    while len(transcript) < 2 and time.monotonic() + pause < deadline:
        # E.g. the first workflow task has not run yet: ask again.
        with contextlib.suppress(TimeoutError, RPCError):
            transcript = await asyncio.wait_for(
                s.handoff.transcript(conversation_id), max(deadline - time.monotonic(), 0.01)
            )
        if len(transcript) < 2:
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.2)
    try:
        summary = await asyncio.wait_for(s.handoff.summary(conversation_id), max(deadline - time.monotonic(), 0.5))
    except (TimeoutError, RPCError):
        return Status.BOT, transcript
    return summary.status, transcript


# --- Routes.


async def start_conversation(
    body: StartConversation, s: ServicesDep, idempotency_key: IdempotencyKey = None
) -> CreatedConversation:
    """Start a conversation with the customer's first message; the bot answers it at once."""
    if idempotency_key is None:
        conversation_id, message_id = uuid.uuid4().hex, None
    else:
        conversation_id = s.tokens.conversation_id(body.customer_id, idempotency_key)
        message_id = s.tokens.message_id(conversation_id, idempotency_key)
    try:
        await s.temporal(
            s.handoff.start_or_message(conversation_id, body.customer_id, body.text, message_id=message_id)
        )
    except ConversationClosed:
        if idempotency_key is None:
            raise
        # A retry of a create whose conversation has since closed: answer with it as it is.
        summary, transcript, _ = await _read(s, conversation_id)
        return CreatedConversation(
            id=conversation_id,
            status=summary.status,
            customer_token=s.tokens.token(conversation_id),
            messages=_customer_view(transcript),
        )
    status, transcript = await _wait_for_bot(s, conversation_id)
    return CreatedConversation(
        id=conversation_id,
        status=status,
        customer_token=s.tokens.token(conversation_id),
        messages=_customer_view(transcript),
    )


async def send_message(
    conversation_id: CustomerConversation, body: NewMessage, s: ServicesDep, idempotency_key: IdempotencyKey = None
) -> Accepted:
    """A customer message; the bot (or the agent holding the conversation) answers it."""
    await _refuse_if_closed(s, conversation_id)
    message_id = s.tokens.message_id(conversation_id, idempotency_key) if idempotency_key else None
    await s.temporal(s.handoff.send_message(conversation_id, body.text, message_id=message_id))
    return Accepted(conversation_id=conversation_id, detail="message accepted")


async def request_human(conversation_id: CustomerConversation, s: ServicesDep) -> Accepted:
    """The customer asks for a person: the conversation joins the Waiting column (if the bot held it)."""
    await _refuse_if_closed(s, conversation_id)
    await s.temporal(s.handoff.request_human(conversation_id))
    return Accepted(conversation_id=conversation_id, detail="request for a person accepted")


async def customer_messages(
    conversation_id: CustomerConversation,
    s: ServicesDep,
    after: Annotated[int, Query(ge=0, description="Only entries with a higher seq (for polling).")] = 0,
) -> CustomerMessages:
    """What the customer sees: customer, bot and agent messages, never system notes."""
    summary, transcript, _ = await _read(s, conversation_id)
    return CustomerMessages(
        conversation_id=conversation_id,
        status=summary.status,
        messages=[e for e in _customer_view(transcript) if e.seq > after],
    )


async def take_over(conversation_id: str, agent: CurrentAgent, s: ServicesDep) -> ConversationSummary:
    """Take the conversation (from the bot or the Waiting column); 409 if another agent holds it."""
    _check_id(conversation_id)
    return await s.temporal(s.handoff.take_over(conversation_id, agent), command=True)


async def reply(conversation_id: str, body: NewReply, agent: CurrentAgent, s: ServicesDep) -> ConversationSummary:
    _check_id(conversation_id)
    return await s.temporal(s.handoff.reply(conversation_id, agent, body.text), command=True)


async def hand_back(conversation_id: str, agent: CurrentAgent, s: ServicesDep) -> ConversationSummary:
    """Give the conversation back to the bot."""
    _check_id(conversation_id)
    return await s.temporal(s.handoff.hand_back(conversation_id, agent), command=True)


async def close(conversation_id: str, body: CloseRequest, agent: CurrentAgent, s: ServicesDep) -> ConversationSummary:
    _check_id(conversation_id)
    return await s.temporal(s.handoff.close(conversation_id, agent, body.outcome), command=True)


async def get_conversation(conversation_id: str, _agent: CurrentAgent, s: ServicesDep) -> ConversationDetail:
    """State, assigned agent, outcome, timestamps and the full transcript with system notes."""
    summary, transcript, live = await _read(s, conversation_id)
    return ConversationDetail(**summary.model_dump(), transcript=transcript, live=live)


async def live_waiting(_agent: CurrentAgent, s: ServicesDep) -> WaitingColumn:
    """The Waiting column, longest-waiting first."""
    now = datetime.now(UTC)
    rows = await run_in_threadpool(s.db.waiting)
    return WaitingColumn(
        as_of=now,
        conversations=[
            WaitingConversation(
                **c.model_dump(),
                waiting_seconds=max((now - (c.waiting_since or now)).total_seconds(), 0.0),
            )
            for c in rows
        ],
    )


async def live_mine(agent: CurrentAgent, s: ServicesDep) -> MyConversations:
    """The caller's My conversations: the ones they hold now."""
    return MyConversations(agent=agent, conversations=await run_in_threadpool(s.db.assigned_to, agent.id))


async def history(
    _agent: CurrentAgent,
    s: ServicesDep,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    outcome: Outcome | None = None,
    agent: Annotated[str | None, Query(description="Conversations this agent took over at some point.")] = None,
    since: Annotated[datetime | None, Query(description="Started at or after (ISO 8601; UTC if no zone).")] = None,
    until: Annotated[datetime | None, Query(description="Started before (ISO 8601; UTC if no zone).")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HistoryPageOut:
    """The Conversations tab: every recorded conversation, newest first, a page at a time."""
    page = await run_in_threadpool(
        lambda: s.db.history(
            status=status_,
            outcome=outcome,
            agent_id=agent,
            since=_utc(since),
            until=_utc(until),
            cursor=cursor,
            limit=limit,
        )
    )
    return HistoryPageOut(conversations=page.conversations, next_cursor=page.next_cursor)


async def stats(
    _agent: CurrentAgent,
    s: ServicesDep,
    since: Annotated[datetime | None, Query(description="ISO 8601; UTC if no zone.")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; UTC if no zone.")] = None,
    agent: Annotated[str | None, Query(description="One agent's figures.")] = None,
) -> Stats:
    """The statistics over [since, until) (definitions in README.md, "Statistics")."""
    return await run_in_threadpool(lambda: compute_stats(s.db, since=_utc(since), until=_utc(until), agent_id=agent))


# --- Errors.


def _error(code: int, detail: str, holder: Agent | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(detail=detail, holder=holder).model_dump(exclude_none=True, mode="json")
    return JSONResponse(body, status_code=code, headers=headers)


async def _handoff_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HandoffError)
    code = next(code for kind, code in STATUS_BY_ERROR if isinstance(exc, kind))
    return _error(code, exc.message, exc.holder)


async def _unauthorized(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unauthorized)
    return _error(status.HTTP_401_UNAUTHORIZED, exc.message, headers={"WWW-Authenticate": "Bearer"})


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TemporalUnavailable)
    return _error(status.HTTP_503_SERVICE_UNAVAILABLE, exc.message, headers={"Retry-After": "5"})


def _json_safe(value: Any) -> Any:
    """NaN and infinities (which Python's JSON parser accepts) as text, so an echo is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


async def _invalid_request(_request: Request, exc: Exception) -> Response:
    """FastAPI's 422 for a request that breaks the schema, written so that echoing the input
    never fails (it was a 500): ASCII-only, since a lone surrogate (a JSON "\\ud800" escape)
    cannot be UTF-8, and NaN or Infinity (accepted by the parser) as strings."""
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": _json_safe(jsonable_encoder(exc.errors()))}, ensure_ascii=True)
    return Response(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


async def _invalid_cursor(_request: Request, exc: Exception) -> JSONResponse:
    return _error(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


class BodyLimit:
    """Refuse a request to /conversations... whose declared body exceeds `MAX_BODY_BYTES` (413)
    without reading it. Other routes (e.g. the codec endpoint) set their own limits."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/conversations"):
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
                    detail = f"the request body is {int(value)} bytes; the limit is {MAX_BODY_BYTES}"
                    await _error(status.HTTP_413_CONTENT_TOO_LARGE, detail)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


# --- The app.


def create_app(
    settings: Settings | None = None, *, client: HandoffClient | None = None, store: Store | None = None
) -> FastAPI:
    """The API app. Without `client`/`store` it connects to Temporal (lazily, so it starts even
    while Temporal is down and answers 503 until it is back) and opens the database at start-up."""
    settings = settings or Settings()
    s = Services(
        settings=settings,
        agents=AgentDirectory.from_settings(settings.agents_file),
        tokens=CustomerTokens(load_secret(settings)),
        client=client,
        store=store,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        own_store = s.store is None
        if s.client is None:
            temporal = await Client.connect(
                settings.temporal_address,
                namespace=settings.namespace,
                data_converter=data_converter(settings),
                lazy=True,
            )
            s.client = HandoffClient(temporal, settings.task_queue)
        if s.store is None:
            s.store = Store(settings.database_url)
        if s.client.store is None:
            # Long conversations hold only recent entries; older ones are read from here.
            s.client.store = s.store
        try:
            yield
        finally:
            if own_store:
                s.store.close()

    app = FastAPI(
        title="Handoff",
        summary="Customer-support conversations: bot, waiting, human, closed.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.services = s
    app.add_middleware(BodyLimit)
    app.add_exception_handler(HandoffError, _handoff_error)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(TemporalUnavailable, _unavailable)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(RequestValidationError, _invalid_request)

    customer: list[str | Enum] = ["customer"]
    agent: list[str | Enum] = ["agent"]
    route = app.add_api_route
    route("/conversations", start_conversation, methods=["POST"], status_code=201, tags=customer, responses=ERRORS)
    route(
        "/conversations/{conversation_id}/messages",
        send_message,
        methods=["POST"],
        status_code=202,
        tags=customer,
        responses=ERRORS,
    )
    route(
        "/conversations/{conversation_id}/request-human",
        request_human,
        methods=["POST"],
        status_code=202,
        tags=customer,
        responses=ERRORS,
    )
    route(
        "/conversations/{conversation_id}/messages", customer_messages, methods=["GET"], tags=customer, responses=ERRORS
    )
    route("/conversations/{conversation_id}/takeover", take_over, methods=["POST"], tags=agent, responses=AGENT_ERRORS)
    route("/conversations/{conversation_id}/replies", reply, methods=["POST"], tags=agent, responses=AGENT_ERRORS)
    route("/conversations/{conversation_id}/hand-back", hand_back, methods=["POST"], tags=agent, responses=AGENT_ERRORS)
    route("/conversations/{conversation_id}/close", close, methods=["POST"], tags=agent, responses=AGENT_ERRORS)
    route("/conversations/{conversation_id}", get_conversation, methods=["GET"], tags=agent, responses=ERRORS)
    route("/conversations", history, methods=["GET"], tags=agent, responses=ERRORS)
    route("/live/waiting", live_waiting, methods=["GET"], tags=agent, responses=ERRORS)
    route("/live/mine", live_mine, methods=["GET"], tags=agent, responses=ERRORS)
    route("/stats", stats, methods=["GET"], tags=agent, responses=ERRORS)
    app.include_router(codec_router(settings))  # operators' decryption, see handoff/codec_server.py
    return app
