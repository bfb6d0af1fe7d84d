"""Webhooks against a real HTTP receiver the test serves: refused at first, then failing for a
while, the API process restarted in between. Nothing is lost, each conversation's events arrive
in order, every delivery is signed, and repeats carry the same id (each backend)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handoff.api import create_app
from handoff.cli.servers import KEEP_ALIVE_SECONDS
from handoff.config import Settings
from handoff.models import BotAnswered, Close, Command, CustomerMessage, Outcome, RequestHuman, TakeOver
from handoff.store import Store, webhook_progress
from handoff.webhooks import SIGNATURE_HEADER, load_webhooks, verify_signature
from tests.helpers import ALICE, eventually, new_id, play
from tests.push.conftest import TEST_SECRET
from tests.security.server import serving

SECRETS = {"crm": "crm-secret-at-least-24-characters", "audit": "audit-secret-at-least-24-characters"}
SCRIPT: list[Command] = [
    CustomerMessage(text="hello"),
    BotAnswered(reply_to=1, text="Hi!"),
    RequestHuman(),
    TakeOver(agent=ALICE),
    Close(agent=ALICE, outcome=Outcome.RESOLVED),
]


@dataclass
class Receiver:
    """Answers 503 to the first `failures` deliveries, then 204; keeps every delivery it accepted."""

    failures: int
    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"crm": [], "audit": []})
    refused: int = 0
    bad_signatures: int = 0

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        if not verify_signature(SECRETS[name], request.headers[SIGNATURE_HEADER], body):
            self.bad_signatures += 1
            return Response(status_code=400)
        if self.refused < self.failures:
            self.refused += 1
            return Response(status_code=503)
        self.accepted[name].append(json.loads(body))
        return Response(status_code=204)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest keeps its own signal handlers


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver, sock: socket.socket) -> AsyncIterator[None]:
    """Serve the receiver on a socket the test bound earlier (refusing until now): same port."""
    app = Starlette(routes=[Route("/hooks/{name}", receiver.handle, methods=["POST"])])
    server = _Server(uvicorn.Config(app, log_config=None, lifespan="off", timeout_keep_alive=KEEP_ALIVE_SECONDS))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task


def webhooks_file(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "webhooks.toml"
    path.write_text(
        f"""
[[webhooks]]
name = "crm"
url = "http://127.0.0.1:{port}/hooks/crm"
secret = "{SECRETS["crm"]}"
events = ["message", "status"]

[[webhooks]]
name = "audit"
url = "http://127.0.0.1:{port}/hooks/audit"
secret = "{SECRETS["audit"]}"
"""
    )
    return path


def subscriptions_started(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(webhook_progress)).scalar_one())


@contextlib.asynccontextmanager
async def api_with_webhooks(store: Store, hooks: Path) -> AsyncIterator[None]:
    settings = Settings(customer_token_secret=SecretStr(TEST_SECRET), webhooks_file=hooks)
    async with serving(create_app(settings, store=store)):
        yield


def record(store: Store, conversations: list[str], steps: range) -> None:
    """The conversations' batches for `steps`, interleaved across conversations, as writers would."""
    played = {cid: play(cid, datetime(2026, 3, 1, 12, tzinfo=UTC), SCRIPT)[1] for cid in conversations}
    for step in steps:
        for cid in conversations:
            store.record(played[cid][step])


async def test_every_event_is_delivered_signed_in_order_despite_a_receiver_down_for_a_while(
    empty_store: Store, tmp_path: Path
) -> None:
    conversations = [new_id() for _ in range(3)]
    receiver = Receiver(failures=3)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening: every delivery is refused until it serves
    hooks = webhooks_file(tmp_path, sock.getsockname()[1])
    try:
        async with api_with_webhooks(empty_store, hooks):
            await eventually(
                lambda: asyncio.to_thread(subscriptions_started, empty_store), lambda n: n == 2, what="deliverer up"
            )
            record(empty_store, conversations, range(3))
            await asyncio.sleep(1.5)  # a few refused attempts
        # The API process restarts while the receiver is still down; more happens meanwhile.
        async with api_with_webhooks(empty_store, hooks):
            record(empty_store, conversations, range(3, 5))
            async with receiving(receiver, sock):
                expected = {
                    name: [f"evt_{e.id}" for e in empty_store.events_after(0, kinds=kinds)]
                    for name, kinds in (("crm", ["message", "status"]), ("audit", None))
                }
                await eventually(
                    lambda: asyncio.sleep(0, {n: {d["id"] for d in receiver.accepted[n]} for n in expected}),
                    lambda got: all(got[n] == set(expected[n]) for n in expected),
                    timeout=60,
                    what="every event delivered",
                )
    finally:
        sock.close()

    assert receiver.refused == 3 and receiver.bad_signatures == 0
    for name, ids in expected.items():
        first_seen = list(dict.fromkeys(d["id"] for d in receiver.accepted[name]))
        assert first_seen == ids  # all of them, in order: so each conversation's in its order
    crm = receiver.accepted["crm"]
    assert {d["type"] for d in crm} == {"message", "status"}  # no notes for a subscription without them
    for cid in conversations:
        assert [d["data"].get("status") or d["data"]["entry"]["text"] for d in crm if d["conversation_id"] == cid] == [
            "bot",
            "hello",
            "Hi!",
            "waiting",
            "human",
            "closed",
        ]


def test_a_webhooks_file_with_a_short_secret_or_a_repeated_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "webhooks.toml"
    path.write_text('[[webhooks]]\nname = "a"\nurl = "http://127.0.0.1:1/x"\nsecret = "short"\n')
    with pytest.raises(ValueError, match="secret"):
        load_webhooks(path)
    hook = '[[webhooks]]\nname = "a"\nurl = "http://127.0.0.1:1/x"\nsecret = "' + "s" * 24 + '"\n'
    path.write_text(hook + hook)
    with pytest.raises(ValueError, match="share a name"):
        load_webhooks(path)
