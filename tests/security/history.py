"""Walk a workflow history for every payload Temporal stored, as it stored it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory

from handoff.cli.history import LOCAL_ACTIVITY_MARKER
from handoff.codec import ENCODING, KEY_ID

# Search attributes are indexed in plain text by design (status, agent id, outcome only);
# they are checked for personal data separately.
PLAIN_BY_DESIGN = {"search_attributes"}


def payloads(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every payload inside `message`, with the field path that leads to it."""
    for field, value in message.ListFields():
        if field.name in PLAIN_BY_DESIGN:
            continue
        where = f"{path}.{field.name}" if path else field.name
        items: Any
        if isinstance(value, Message):
            items = [value]
        elif hasattr(value, "values") and callable(value.values):
            items = list(value.values())
        elif isinstance(value, str | bytes | int | float | bool):
            items = []
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Payload):
                yield where, item
            elif isinstance(item, Message):
                yield from payloads(item, where)


# A `workflow.patched()` marker is written by the SDK's core, past the codec: it holds only the
# patch id (code, e.g. {"id":"timers"}), never data.
PATCH_MARKER = "core_patch"


def history_payloads(history: WorkflowHistory) -> list[tuple[str, Payload]]:
    found: list[tuple[str, Payload]] = []
    for e in history.events:
        marker = e.marker_recorded_event_attributes
        if marker.marker_name == PATCH_MARKER:
            continue
        if marker.marker_name == LOCAL_ACTIVITY_MARKER:
            # A local activity's marker: the core's record of it (`data`: type, attempt, times,
            # no payload of ours) is plain JSON past the codec; its result went through the codec.
            result = marker.details["result"].payloads if "result" in marker.details else []
            found += [(f"event {e.event_id} details.result", p) for p in result]
            continue
        found += [(f"event {e.event_id} {where}", p) for where, p in payloads(e)]
    return found


def unencrypted(history: WorkflowHistory) -> list[str]:
    """Where the history holds a payload that is not encrypted by Handoff's codec."""
    return [where for where, p in history_payloads(history) if p.metadata.get("encoding") != ENCODING]


def key_ids(history: WorkflowHistory) -> set[str]:
    return {p.metadata[KEY_ID].decode() for _, p in history_payloads(history) if KEY_ID in p.metadata}
