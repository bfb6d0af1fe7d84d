"""Calls a widget or an agent UI would make, and the one-second check for the live columns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.helpers import eventually

ALICE = {"Authorization": "Bearer alice-demo-token-not-secret"}
BOB = {"Authorization": "Bearer bob-demo-token-not-secret"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start(api: httpx.AsyncClient, text: str = "hello", customer_id: str = "customer-1") -> dict[str, Any]:
    response = await api.post("/conversations", json={"customer_id": customer_id, "text": text})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def ok(call: Awaitable[httpx.Response], code: int = 200) -> dict[str, Any]:
    response = await call
    assert response.status_code == code, response.text
    body: dict[str, Any] = response.json()
    return body


async def refused(call: Awaitable[httpx.Response], code: int) -> str:
    """The error's detail, after checking the status code and that the body says what was wrong."""
    response = await call
    assert response.status_code == code, response.text
    detail = response.json()["detail"]
    assert detail, response.text
    return str(detail)


def ids(column: dict[str, Any]) -> list[str]:
    return [c["conversation_id"] for c in column["conversations"]]


async def seen_eventually(
    probe: Callable[[], Awaitable[dict[str, Any]]], until: Callable[[dict[str, Any]], bool]
) -> None:
    """Poll every 50 ms until the change is visible, within a bound generous enough for a busy
    machine. How fast it shows (the one-second requirement) is measured by bench/, not here."""
    await eventually(probe, until, interval=0.05, what="change visible in the live column")


async def transcript(api: httpx.AsyncClient, conversation_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = (await ok(api.get(f"/conversations/{conversation_id}", headers=ALICE)))[
        "transcript"
    ]
    return entries


def texts(entries: list[dict[str, Any]], kind: str | None = None) -> list[str]:
    return [e["text"] for e in entries if kind is None or e["kind"] == kind]
