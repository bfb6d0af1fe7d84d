"""Push: the events the recorded facts cause, and one listener per API process that fans them out.

The store appends events in the transaction that records their facts (`Store._publish` calls
`events_for`), so an event exists exactly when its fact does, whichever process wrote it (an
API process, a worker's activity). Every API process runs one `EventHub`: it reads new events
from the database once for all its subscribers, woken by PostgreSQL LISTEN/NOTIFY (on SQLite,
or while the listening connection is down, by a short poll), and hands each to the subscribers
that want it in memory. A thousand open streams cost one listening connection and one query
per change, not a connection each. A subscriber that falls too far behind is dropped; its
client reconnects with `Last-Event-ID` and reads the rest from the database, losing nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from enum import StrEnum
from typing import Any

import psycopg
from fastapi.concurrency import run_in_threadpool

from handoff.models import CUSTOMER_VISIBLE, Fact, FactKind, Status
from handoff.store import PUSH_CHANNEL, Store, StoredEvent

log = logging.getLogger("handoff.push")


class EventKind(StrEnum):
    """What an event says. `message` and `status` reach customers; `note` only agents."""

    MESSAGE = "message"  # a customer, bot or agent message (payload: the transcript entry)
    NOTE = "note"  # a system note, e.g. "Alice joined the conversation" (agents only)
    STATUS = "status"  # the conversation moved to another status (payload: status, agent, outcome)


class Audience(StrEnum):
    CUSTOMER = "customer"  # the conversation's customer, and agents
    AGENTS = "agents"  # agents only


STATUS_AFTER: dict[FactKind, Status] = {
    FactKind.STARTED: Status.BOT,
    FactKind.HUMAN_REQUESTED: Status.WAITING,
    FactKind.TAKEN_OVER: Status.HUMAN,
    FactKind.HANDED_BACK: Status.BOT,
    FactKind.CLOSED: Status.CLOSED,
}
"""The status each transition fact leaves its conversation in (see handoff/lifecycle.py)."""


def reads_status(new_facts: Sequence[Fact]) -> bool:
    """Whether `events_for` needs the conversation's current status for these facts: only a
    transition does (a write of messages and notes alone spares the database the read)."""
    return any(fact.entry is None and fact.kind in STATUS_AFTER for fact in new_facts)


def events_for(
    conversation_id: str, new_facts: Sequence[Fact], current_status: str | None = None
) -> list[dict[str, Any]]:
    """The events rows for facts just recorded, in their order: an entry is a message (one the
    customer sees) or a note (system and internal notes: agents only), a transition a status
    change. A transition recorded after a later one (`current_status`, the conversation's status
    once this write is applied, differs) is left out: facts reach the database from several
    writers, and a stream must never move a conversation back to a status it has left."""
    rows: list[dict[str, Any]] = []
    for fact in new_facts:
        kind: EventKind | None = None
        payload: dict[str, Any] = {}
        if fact.entry is not None:
            kind = EventKind.MESSAGE if fact.entry.kind in CUSTOMER_VISIBLE else EventKind.NOTE
            payload = {"entry": fact.entry.model_dump(mode="json")}
        elif fact.kind in STATUS_AFTER:
            if current_status is not None and STATUS_AFTER[fact.kind].value != current_status:
                continue
            kind = EventKind.STATUS
            payload = {
                "status": STATUS_AFTER[fact.kind].value,
                "at": fact.at.isoformat(),
                "agent": fact.agent.model_dump(mode="json") if fact.agent else None,
                "outcome": fact.outcome.value if fact.outcome else None,
            }
        if kind is None:
            continue
        payload = {"conversation_id": fact.conversation_id or conversation_id, **payload}
        rows.append(
            {
                "conversation_id": fact.conversation_id or conversation_id,
                "kind": kind.value,
                "audience": (Audience.AGENTS if kind is EventKind.NOTE else Audience.CUSTOMER).value,
                "payload": _json(payload),
                "created_at": fact.at,
            }
        )
    return rows


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def customer_payload(event: StoredEvent) -> dict[str, Any]:
    """What a customer's stream carries: the entry, or the new status without who or how."""
    if event.kind == EventKind.STATUS:
        return {k: event.payload[k] for k in ("conversation_id", "status", "at")}
    return event.payload


class Subscription:
    """One stream's view of the hub: the events its filter wants, in id order."""

    def __init__(self, wants: Callable[[StoredEvent], bool], capacity: int) -> None:
        self.wants = wants
        self.queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue(capacity)
        self.overflowed = False

    def offer(self, event: StoredEvent) -> None:
        if self.overflowed or not self.wants(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Too slow a reader: end its stream; it resumes from the database with Last-Event-ID.
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def next(self, timeout: float) -> StoredEvent | None:
        """The next event, or None after `timeout` seconds without one; raises `Overflowed`."""
        try:
            event = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        if event is None:
            raise Overflowed
        return event


class Overflowed(Exception):
    """The subscriber fell more than its queue behind and was dropped."""


class EventHub:
    """One per API process: reads new events once, fans them out to every subscriber in memory."""

    def __init__(self, store: Store, *, poll_seconds: float = 0.1, listen_poll_seconds: float = 2.0) -> None:
        self.store = store
        # How often the events table is read without a wake-up: `poll_seconds` on SQLite (or
        # while LISTEN is down), `listen_poll_seconds` as a safety net while LISTEN works.
        self.poll_seconds = poll_seconds
        self.listen_poll_seconds = listen_poll_seconds
        self.subscribers: set[Subscription] = set()
        self.position = 0
        self._wake = asyncio.Event()
        # Streams read their backlog (or snapshot) through these few slots: a thousand streams
        # opening at once queue here instead of overflowing the connection pool.
        self.read_slots = asyncio.Semaphore(4)
        # Set whenever new events were read: wakes the webhook deliverer (handoff/webhooks.py).
        self.wakers: set[asyncio.Event] = set()
        self._listening = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        if self._tasks:
            return
        self.position = await run_in_threadpool(self.store.last_event_id)
        self._tasks.append(asyncio.create_task(self._read_loop(), name="handoff-push-reader"))
        if self.store.engine.dialect.name == "postgresql":
            self._tasks.append(asyncio.create_task(self._listen_loop(), name="handoff-push-listener"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    @contextlib.asynccontextmanager
    async def subscribe(
        self, wants: Callable[[StoredEvent], bool], *, capacity: int = 1000
    ) -> AsyncIterator[Subscription]:
        """Receive every event `wants` accepts from now on, until the block ends."""
        await self.start()
        subscription = Subscription(wants, capacity)
        self.subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self.subscribers.discard(subscription)

    async def _read_loop(self) -> None:
        while True:
            interval = self.listen_poll_seconds if self._listening else self.poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self._read_new()
            except Exception:
                # The database is down: the streams stay open and catch up once it is back.
                log.warning("push: cannot read new events", exc_info=True)
                await asyncio.sleep(1.0)

    async def _read_new(self) -> None:
        while True:
            batch = await run_in_threadpool(self.store.events_after, self.position, limit=1000)
            for event in batch:
                for subscription in list(self.subscribers):
                    subscription.offer(event)
            if batch:
                self.position = batch[-1].id
                for waker in self.wakers:
                    waker.set()
            if len(batch) < 1000:
                return

    async def _listen_loop(self) -> None:
        """PostgreSQL LISTEN on one connection of its own; reconnects after a failure."""
        url = self.store.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {PUSH_CHANNEL}")
                    self._listening = True
                    self._wake.set()  # catch up on what was committed before LISTEN took effect
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("push: LISTEN connection lost; polling until it is back", exc_info=True)
            finally:
                self._listening = False
            await asyncio.sleep(1.0)
