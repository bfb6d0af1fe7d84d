"""Live streams (Server-Sent Events): the customer's conversation and the agents' columns.

Each stream is fed by the API process's one `EventHub` (handoff/push.py), never by a database
connection of its own. Every event has an `id`; a client that reconnects with `Last-Event-ID`
gets exactly the events after it (read from the database, then live), none twice. The contract
is in docs/push.md.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from handoff import sse
from handoff.api.deps import ERRORS, CurrentAgent, CustomerConversation, Services, ServicesDep, check_id
from handoff.push import Audience, EventHub, EventKind, Overflowed, customer_payload
from handoff.store import StoredEvent

router = APIRouter(responses=ERRORS)
log = logging.getLogger("handoff.push")

BACKLOG_PAGE = 500
MAX_EVENT_ID = 2**63 - 1  # the events table's id column (a larger one is a 422, not a database error)
MAX_FOLLOWED = 50
RECONNECT_MILLISECONDS = 1000

LastEventId = Annotated[
    int | None,
    Header(
        alias="Last-Event-ID",
        ge=0,
        le=MAX_EVENT_ID,
        description="The `id` of the last event received: the stream resumes right after it, none missed or repeated.",
    ),
]

STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {sse.SSE_MEDIA_TYPE: {"schema": {"type": "string"}}}, "description": "An event stream (SSE)."}
}


def hub_of(request: Request, s: Services) -> EventHub:
    """The API process's hub, made on first use (the app may run without its lifespan, in tests)."""
    hub: EventHub | None = getattr(request.app.state, "push_hub", None)
    if hub is None:
        hub = EventHub(s.db, poll_seconds=s.settings.push_poll_seconds)
        request.app.state.push_hub = hub
    return hub


async def _stream(
    hub: EventHub,
    wants: Callable[[StoredEvent], bool],
    backlog: Callable[[int], tuple[list[StoredEvent], int | None]] | None,
    start: int | None,
    snapshot: Callable[[], dict[str, Any]] | None,
    render: Callable[[StoredEvent], dict[str, Any]],
    heartbeat: float,
) -> AsyncIterator[bytes]:
    """Subscribe first, then send what came before (a snapshot or the database's backlog), then
    live events: what arrives while the backlog is read is queued, and ids already sent dropped."""
    async with hub.subscribe(wants) as subscription:
        yield sse.retry(RECONNECT_MILLISECONDS)
        last = start if start is not None else hub.position
        if snapshot is not None:
            # Reflects at least every event up to `last`: later ones follow from the queue.
            try:
                async with hub.read_slots:
                    state = await run_in_threadpool(snapshot)
            except sa.exc.SQLAlchemyError:
                log.warning("push: cannot read the live columns; the stream ends", exc_info=True)
                return
            yield sse.event(state, event_id=last, name="snapshot")
        if backlog is not None:
            while True:
                try:
                    async with hub.read_slots:
                        page, scanned_to = await run_in_threadpool(backlog, last)
                except sa.exc.SQLAlchemyError:
                    # The database is unavailable: end the stream; the client reconnects with
                    # Last-Event-ID (its `retry` is a second) and resumes where it stopped.
                    log.warning("push: cannot read a stream's backlog; the stream ends", exc_info=True)
                    return
                for event in page:
                    yield sse.event(render(event), event_id=event.id, name=event.kind)
                    last = event.id
                if scanned_to is None:
                    break
                last = max(last, scanned_to)
        while True:
            try:
                live = await subscription.next(heartbeat)
            except Overflowed:
                return  # the client reconnects with Last-Event-ID and reads the rest from the database
            if live is None:
                yield sse.comment("heartbeat")
            elif live.id > last:
                yield sse.event(render(live), event_id=live.id, name=live.kind)
                last = live.id


@router.get(
    "/conversations/{conversation_id}/events", tags=["customer"], response_class=StreamingResponse, responses=STREAM
)
async def customer_events(
    conversation_id: CustomerConversation, request: Request, s: ServicesDep, last_event_id: LastEventId = None
) -> StreamingResponse:
    """The conversation as it changes (Server-Sent Events): `message` events (customer, bot and
    agent messages; data: `conversation_id`, `entry`) and `status` events (data:
    `conversation_id`, `status`, `at`), never system notes. Without `Last-Event-ID` the stream
    starts with every earlier event of the conversation; with it, right after that event.
    A `: heartbeat` comment comes every 15 s while nothing happens. See docs/push.md."""
    check_id(conversation_id)
    hub = hub_of(request, s)
    store = s.db

    def wants(event: StoredEvent) -> bool:
        return event.conversation_id == conversation_id and event.audience == Audience.CUSTOMER

    def backlog(after: int) -> tuple[list[StoredEvent], int | None]:
        page = store.events_after(
            after, conversation_ids=[conversation_id], audience=Audience.CUSTOMER, limit=BACKLOG_PAGE
        )
        return page, page[-1].id if len(page) == BACKLOG_PAGE else None

    body = _stream(hub, wants, backlog, last_event_id or 0, None, customer_payload, s.settings.push_heartbeat_seconds)
    return StreamingResponse(body, media_type=sse.SSE_MEDIA_TYPE, headers=sse.HEADERS)


@router.get("/live/events", tags=["agent"], response_class=StreamingResponse, responses=STREAM)
async def agent_events(
    agent: CurrentAgent,
    request: Request,
    s: ServicesDep,
    last_event_id: LastEventId = None,
    conversation: Annotated[
        list[str] | None,
        Query(
            max_length=MAX_FOLLOWED,
            description="Conversations whose entries (messages and notes) the stream also carries, e.g. the open one.",
        ),
    ] = None,
) -> StreamingResponse:
    """The Live support tab as it changes (Server-Sent Events): `status` events of every
    conversation (data: `conversation_id`, `status`, `at`, `agent`, `outcome`), from which the
    Waiting column and the caller's My conversations follow, plus `message` and `note` events of
    the conversations named by `conversation`. Without `Last-Event-ID` the stream starts with a
    `snapshot` event (data: `waiting`, `mine`, as GET /live/waiting and /live/mine); with it,
    right after that event. See docs/push.md."""
    followed = set(conversation or [])
    for conversation_id in followed:
        check_id(conversation_id)
    hub = hub_of(request, s)
    store = s.db

    def wants(event: StoredEvent) -> bool:
        return event.kind == EventKind.STATUS or event.conversation_id in followed

    def backlog(after: int) -> tuple[list[StoredEvent], int | None]:
        # One page of every event, filtered here: "status of any, or entries of these" in one pass.
        page = store.events_after(after, limit=BACKLOG_PAGE)
        return [e for e in page if wants(e)], page[-1].id if len(page) == BACKLOG_PAGE else None

    def snapshot() -> dict[str, Any]:
        return {
            "waiting": [c.model_dump(mode="json") for c in store.waiting()],
            "mine": [c.model_dump(mode="json") for c in store.assigned_to(agent.id)],
        }

    def render(event: StoredEvent) -> dict[str, Any]:
        return event.payload

    body = _stream(
        hub,
        wants,
        backlog if last_event_id is not None else None,
        last_event_id,
        snapshot if last_event_id is None else None,
        render,
        s.settings.push_heartbeat_seconds,
    )
    return StreamingResponse(body, media_type=sse.SSE_MEDIA_TYPE, headers=sse.HEADERS)
