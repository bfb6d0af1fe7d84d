"""Webhooks: the push events (handoff/push.py) POSTed to other systems, signed, until delivered.

Subscriptions come from the file named by HANDOFF_WEBHOOKS_FILE:

    [[webhooks]]
    name = "crm"                      # names the subscription's progress in the database
    url = "https://crm.example.com/handoff"
    secret = "at least 24 characters of random"
    events = ["message", "status"]    # optional: any of message, note, status; default all

The API process delivers them (one process at a time: whichever holds the `webhooks` lease in
the database; the others stand by and take over within a lease period if it dies). Each
subscription gets its events one at a time in id order, the next only once the receiver
answered 2xx to the previous one; a failure is retried with exponential backoff (0.5 s doubling
up to 60 s) for as long as it takes. So order is kept (per conversation, and overall) and
nothing is lost. The progress (the last acknowledged id) is in the database, so a restart or a
takeover resumes where delivery stopped; an event may then arrive twice, and its `id` lets the
receiver drop the repeat. A new subscription starts with the events after its first start.

Each POST carries `Handoff-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
under the subscription's secret (as Stripe signs its webhooks); `verify_signature` checks one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import tomllib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

from handoff.config import Settings
from handoff.push import EventHub, EventKind
from handoff.store import Store, StoredEvent

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("handoff.webhooks")

LEASE = "webhooks"
SIGNATURE_HEADER = "Handoff-Signature"
EVENT_ID_HEADER = "Handoff-Event-Id"
SIGNATURE_TOLERANCE_SECONDS = 300


class Webhook(BaseModel):
    """One subscription of the webhooks file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    url: HttpUrl
    secret: SecretStr = Field(min_length=24)
    events: list[EventKind] = Field(default_factory=lambda: list(EventKind), min_length=1)


class WebhooksFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhooks: list[Webhook] = Field(default_factory=list)


def load_webhooks(path: Path) -> list[Webhook]:
    """The subscriptions in `path`; a malformed file stops the start with a clear error."""
    with path.open("rb") as f:
        hooks = WebhooksFile.model_validate(tomllib.load(f)).webhooks
    names = [h.name for h in hooks]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: two webhooks share a name; each name keeps its own progress")
    return hooks


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `Handoff-Signature` header value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: float = SIGNATURE_TOLERANCE_SECONDS
) -> bool:
    """Whether `header` signs `body` under `secret` and is at most `tolerance` seconds old
    (an old signature may be a replay)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def body_of(event: StoredEvent) -> bytes:
    """What a delivery POSTs: the event id (for dropping repeats), its type and its data."""
    return json.dumps(
        {
            "id": f"evt_{event.id}",
            "type": event.kind,
            "conversation_id": event.conversation_id,
            "created_at": event.created_at.isoformat(),
            "data": event.payload,
        },
        separators=(",", ":"),
    ).encode()


class WebhookDeliverer:
    """Delivers every subscription's events while this process holds the `webhooks` lease."""

    def __init__(
        self,
        store: Store,
        hub: EventHub,
        webhooks: list[Webhook],
        *,
        lease_seconds: float = 15.0,
        first_backoff: float = 0.5,
        max_backoff: float = 60.0,
        idle_poll_seconds: float = 2.0,
        timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.hub = hub
        self.webhooks = webhooks
        self.lease_seconds = lease_seconds
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.idle_poll_seconds = idle_poll_seconds
        self.holder = uuid.uuid4().hex
        self.holds_lease = False
        self._client = httpx.AsyncClient(timeout=timeout, headers={"User-Agent": "Handoff-Webhooks/0.1"})
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.hub.start()
        self._tasks.append(asyncio.create_task(self._keep_lease(), name="handoff-webhooks-lease"))
        for hook in self.webhooks:
            self._tasks.append(asyncio.create_task(self._deliver_all(hook), name=f"handoff-webhook-{hook.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.holds_lease:
            with contextlib.suppress(Exception):
                await run_in_threadpool(self.store.release_lease, LEASE, self.holder)
        await self._client.aclose()

    async def _keep_lease(self) -> None:
        while True:
            try:
                self.holds_lease = await run_in_threadpool(
                    self.store.take_lease, LEASE, self.holder, self.lease_seconds
                )
            except Exception:
                self.holds_lease = False
                log.warning("webhooks: cannot reach the database for the lease", exc_info=True)
            await asyncio.sleep(self.lease_seconds / 3)

    async def _deliver_all(self, hook: Webhook) -> None:
        wake = asyncio.Event()
        self.hub.wakers.add(wake)
        kinds = [k.value for k in hook.events]
        try:
            start_at = await run_in_threadpool(self.store.last_event_id)
            while True:
                if not self.holds_lease:
                    await asyncio.sleep(0.2)
                    continue
                try:
                    # Read every round: another process may have delivered while it held the lease.
                    done = await run_in_threadpool(self.store.webhook_progress, hook.name, start_at=start_at)
                    batch = await run_in_threadpool(self.store.events_after, done, kinds=kinds, limit=100)
                except Exception:
                    log.warning("webhooks: cannot read events", exc_info=True)
                    await asyncio.sleep(1.0)
                    continue
                if not batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self.idle_poll_seconds)
                    wake.clear()
                    continue
                for event in batch:
                    if not await self._deliver(hook, event):
                        break  # lost the lease: another process carries on from the stored progress
                    await self._acknowledge(hook, event)
        finally:
            self.hub.wakers.discard(wake)

    async def _acknowledge(self, hook: Webhook, event: StoredEvent) -> None:
        delay = self.first_backoff
        while True:
            try:
                await run_in_threadpool(self.store.acknowledge_webhook, hook.name, event.id)
                return
            except Exception:
                log.warning("webhooks: cannot store progress of %r", hook.name, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    async def _deliver(self, hook: Webhook, event: StoredEvent) -> bool:
        """POST `event` until the receiver answers 2xx (True), or this process loses the lease (False)."""
        body = body_of(event)
        delay = self.first_backoff
        while self.holds_lease:
            headers = {
                "Content-Type": "application/json",
                EVENT_ID_HEADER: f"evt_{event.id}",
                SIGNATURE_HEADER: sign(hook.secret.get_secret_value(), body, int(time.time())),
            }
            try:
                answer = await self._client.post(str(hook.url), content=body, headers=headers)
                if answer.is_success:
                    return True
                log.info("webhook %r: %d to evt_%d, retry in %g s", hook.name, answer.status_code, event.id, delay)
            except httpx.HTTPError as e:
                log.info("webhook %r unreachable for evt_%d (%s), retry in %g s", hook.name, event.id, type(e), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)
        return False


async def start_webhooks(settings: Settings, store: Store, app: FastAPI) -> WebhookDeliverer | None:
    """The API process's deliverer when a webhooks file is configured (None otherwise)."""
    if settings.webhooks_file is None:
        return None
    hooks = load_webhooks(settings.webhooks_file)
    if not hooks:
        return None
    hub: EventHub | None = getattr(app.state, "push_hub", None)
    if hub is None:
        hub = EventHub(store, poll_seconds=settings.push_poll_seconds)
        app.state.push_hub = hub
    deliverer = WebhookDeliverer(store, hub, hooks)
    await deliverer.start()
    return deliverer
