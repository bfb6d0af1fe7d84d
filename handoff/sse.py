"""Server-Sent Events framing (https://html.spec.whatwg.org/multipage/server-sent-events.html)."""

from __future__ import annotations

import json
from typing import Any

SSE_MEDIA_TYPE = "text/event-stream"

HEADERS = {
    "Cache-Control": "no-store",
    # Proxies such as nginx buffer responses by default, which would hold events back.
    "X-Accel-Buffering": "no",
}


def event(data: dict[str, Any], *, event_id: int | None = None, name: str | None = None) -> bytes:
    """One event: its id (what a reconnect sends back as Last-Event-ID), name and JSON data."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if name is not None:
        lines.append(f"event: {name}")
    # JSON never holds a raw newline, so the data is one line.
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return ("\n".join(lines) + "\n\n").encode()


def retry(milliseconds: int) -> bytes:
    """How long a client waits before it reconnects."""
    return f"retry: {milliseconds}\n\n".encode()


def comment(text: str = "") -> bytes:
    """A comment line: clients ignore it; it keeps proxies and load balancers from closing an idle stream."""
    return f": {text}\n\n".encode()
