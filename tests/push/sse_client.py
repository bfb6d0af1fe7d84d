"""A Server-Sent Events reader over a real HTTP response, as a browser's EventSource parses it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    id: int | None
    name: str
    data: dict[str, Any]


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of an open stream (comments skipped), until it ends."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield Event(
                    id=int(fields["id"]) if "id" in fields else None,
                    name=fields.get("event", "message"),
                    data=json.loads(fields["data"]),
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


class Stream:
    """An open stream: `take(n)` the next n events, bounded in time so a missing event fails the test."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._events = events(response)

    async def take(self, count: int, timeout: float = 60.0) -> list[Event]:
        taken: list[Event] = []

        async def read() -> None:
            async for event in self._events:
                taken.append(event)
                if len(taken) == count:
                    return

        try:
            await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"expected {count} events within {timeout} s, got {taken}") from None
        return taken

    async def take_until(self, done: Any, timeout: float = 60.0) -> list[Event]:
        """Events until one for which `done(event)` is true (included)."""
        taken: list[Event] = []

        async def read() -> None:
            async for event in self._events:
                taken.append(event)
                if done(event):
                    return

        try:
            await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"the awaited event did not come within {timeout} s; got {taken}") from None
        return taken
