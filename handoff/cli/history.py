"""A conversation's Temporal event history as rows ops can read, without personal data.

Payloads are decrypted with the client's data converter and summarised by shape (field names,
counts, lengths, ids of agents), never printed: no message text, no customer id. Failure
messages are decrypted too (Temporal keeps only "Encoded failure"), and shown without their
stack traces.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.exceptions import FailureError

FAILURE_CHARS = 100
"""Failure messages are cut to this length: enough to tell a database error from a timeout."""


@dataclass
class EventRow:
    event_id: int
    time: str
    event_type: str
    name: str
    details: str


# Fields of Handoff's payloads that are safe to print: no free text, no customer id.
SAFE_FIELDS = ("status", "outcome", "wants_human", "reply_to", "last_fact")


class HistoryReader:
    """Turns history events into rows: type, the signal/update/activity name, and a short
    summary of the payloads that never contains message text or customer ids."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.names: dict[int, str] = {}  # scheduled/accepted event id → activity/update name

    async def describe(self, event: HistoryEvent) -> EventRow:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        event_type = "".join(part.capitalize() for part in kind.split("_"))
        name, details = await self._details(event)
        at = event.event_time.ToDatetime(tzinfo=UTC).strftime("%m-%d %H:%M:%S.%f")[:-3]
        return EventRow(event.event_id, at, event_type, name, details)

    async def _details(self, event: HistoryEvent) -> tuple[str, str]:
        attribute = event.WhichOneof("attributes")
        if attribute is None:
            return "", ""
        a: Any = getattr(event, attribute)
        match attribute:
            case "workflow_execution_started_event_attributes":
                details = await self._summary(a.input)
                if a.continued_execution_run_id:
                    details = f"continued from run {a.continued_execution_run_id}; {details}"
                return a.workflow_type.name, details
            case "workflow_execution_signaled_event_attributes":
                return a.signal_name, await self._summary(a.input)
            case "workflow_execution_update_accepted_event_attributes":
                name = a.accepted_request.input.name
                self.names[event.event_id] = name
                return name, await self._summary(a.accepted_request.input.args)
            case "workflow_execution_update_completed_event_attributes":
                name = self.names.get(a.accepted_event_id, "")
                if a.outcome.HasField("failure"):
                    failure = a.outcome.failure
                    # A refusal (the lifecycle rejected the command) is shown by its rejection code.
                    return name, f"refused: {failure.application_failure_info.type or await self._message(failure)}"
                return name, await self._summary(a.outcome.success)
            case "activity_task_scheduled_event_attributes":
                self.names[event.event_id] = a.activity_type.name
                return a.activity_type.name, await self._summary(a.input)
            case "activity_task_started_event_attributes":
                return self.names.get(a.scheduled_event_id, ""), f"attempt {a.attempt}"
            case "activity_task_completed_event_attributes":
                return self.names.get(a.scheduled_event_id, ""), "returned " + await self._summary(a.result)
            case "activity_task_failed_event_attributes":
                return self.names.get(a.scheduled_event_id, ""), f"failed: {await self._message(a.failure)}"
            case "activity_task_timed_out_event_attributes":
                return self.names.get(a.scheduled_event_id, ""), "timed out"
            case "workflow_execution_completed_event_attributes":
                return "", await self._summary(a.result)
            case "workflow_execution_continued_as_new_event_attributes":
                return "", f"new run {a.new_execution_run_id}"
            case "workflow_execution_failed_event_attributes":
                return "", f"failed: {await self._message(a.failure)}"
            case "upsert_workflow_search_attributes_event_attributes":
                fields = a.search_attributes.indexed_fields
                values = [f"{k}={(await self._decode([fields[k]]) or [''])[0] or '∅'}" for k in sorted(fields)]
                return "", ", ".join(values)
            case "timer_started_event_attributes" | "timer_fired_event_attributes":
                return "", f"timer {a.timer_id}"
            case "marker_recorded_event_attributes":
                marker = local_activity_marker(event)
                if marker is None:
                    return a.marker_name, ""
                result = a.details["result"] if "result" in a.details else Payloads()
                outcome = "failed" if a.HasField("failure") else "returned " + await self._summary(result)
                return str(marker.get("activity_type", "")), f"local, attempt {marker.get('attempt', 1)}; {outcome}"
        return "", ""

    async def _message(self, failure: Failure) -> str:
        """The failure's own message, decrypted by the client's data converter (no stack trace, no cause)."""
        error = await self.client.data_converter.decode_failure(failure)
        message = error.message if isinstance(error, FailureError) else str(error)
        return message[:FAILURE_CHARS]

    async def _decode(self, payloads: Sequence[Payload]) -> list[Any] | None:
        """The JSON values of the payloads, decrypted; None if one is not JSON."""
        codec = self.client.data_converter.payload_codec
        decoded = list(payloads)
        if codec is not None:
            decoded = await codec.decode(decoded)
        values: list[Any] = []
        for p in decoded:
            if p.metadata.get("encoding") != b"json/plain":
                return None
            values.append(json.loads(p.data))
        return values

    async def _summary(self, payloads: Payloads) -> str:
        if not payloads.payloads:
            return ""
        values = await self._decode(payloads.payloads)
        if values is None:
            return f"{sum(len(p.data) for p in payloads.payloads)} bytes (encoded)"
        return "; ".join(summarize(v) for v in values)


LOCAL_ACTIVITY_MARKER = "core_local_activity"


def local_activity_marker(event: HistoryEvent) -> dict[str, Any] | None:
    """What the SDK recorded about a local activity (`activity_type`, `attempt`, `complete_time`,
    ...) if `event` is a local activity's marker, else None. The SDK writes this part as plain
    JSON, outside the data converter: it holds no payload, so nothing personal."""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return None
    attributes = event.marker_recorded_event_attributes
    if attributes.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in attributes.details:
        return None
    payloads = attributes.details["data"].payloads
    if not payloads:
        return None
    data = json.loads(payloads[0].data)
    return data if isinstance(data, dict) else None


def local_activity_type(event: HistoryEvent) -> str | None:
    """The activity type of a local activity's marker (e.g. `BotAnswer`), else None."""
    marker = local_activity_marker(event)
    return None if marker is None else str(marker.get("activity_type", ""))


def summarize(value: Any) -> str:
    """A short, non-personal summary of one decoded payload (a command, a summary, a batch, ...)."""
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return f"{len(value)} chars"
    if isinstance(value, list):
        return f"{len(value)} items"
    if not isinstance(value, dict):
        return type(value).__name__
    parts = [
        f"{k}={str(value[k]).lower() if isinstance(value[k], bool) else value[k]}"
        for k in SAFE_FIELDS
        if value.get(k) is not None
    ]
    for key in ("agent", "closed_by"):
        if isinstance(value.get(key), dict):
            parts.append(f"{key}={value[key].get('id')}")
    if isinstance(value.get("text"), str):
        parts.append(f"text: {len(value['text'])} chars")
    if isinstance(value.get("facts"), list):
        parts.append(f"{len(value['facts'])} fact{'' if len(value['facts']) == 1 else 's'}")
    if isinstance(value.get("summary"), dict):
        parts.append(f"status={value['summary'].get('status')}")
    if isinstance(value.get("state"), dict):
        parts.append(f"carried state: {len(value['state'].get('transcript', []))} entries")
    elif "conversation_id" in value and "customer_id" in value and "status" not in value:
        parts.append("new conversation")
    return ", ".join(parts)
