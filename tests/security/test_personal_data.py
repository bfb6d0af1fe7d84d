"""A customer's words and identity never reach Temporal, its ids or anyone's logs in clear.

One conversation with unmistakable personal data (a name, an e-mail as customer id, a card
number, an address) runs through the real HTTP API, served in-process, to a real worker:
customer messages, a request for a person, take-over, an agent reply quoting the customer, a
refused direct signal carrying personal data, close. Then we look where an operator, an
attacker with the Temporal database, or a log collector would look.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory

from handoff import search_attributes
from handoff.api import create_app
from handoff.client import workflow_id
from handoff.converter import data_converter
from handoff.models import Agent, AgentReply, Outcome, Status
from tests.api.helpers import ALICE, bearer, ok
from tests.encryption_keys import TEST_KEY_ID
from tests.helpers import eventually, new_id
from tests.security.conftest import Engine, api_settings
from tests.security.history import history_payloads, key_ids, unencrypted
from tests.security.server import serving
from workflows import ConversationWorkflow

CUSTOMER_ID = "zephyrine.quillfeather@example.org"
FIRST = "Hello, I am Zephyrine Quillfeather and my card 4929 1234 5678 9012 was charged twice"
LATER = "I live at 12 rue des Glycines, Marseille"
REPLY = "Sorry Zephyrine, I am refunding the card ending 5678 9012"
REFUSED = "Quillfeather: a note from an agent who does not hold the conversation"
# Compared case-insensitively against raw bytes and log records.
PERSONAL = ["zephyrine", "quillfeather", "4929 1234", "glycines"]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Played:
    conversation_id: str
    logs: list[logging.LogRecord]


def personal_in(blob: bytes | str) -> list[str]:
    text = blob.lower() if isinstance(blob, str) else blob.decode("latin-1").lower()
    return [p for p in PERSONAL if p in text]


def record_text(record: logging.LogRecord) -> str:
    """Everything a log handler could write out: message, arguments, extras, traceback."""
    exc = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
    return f"{record.getMessage()} {record.__dict__!r} {exc}"


@pytest.fixture(scope="module")
async def played(private: Engine, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Played]:
    """The conversation, played once with every log record of the process captured (DEBUG and up)."""
    handler = Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        app = create_app(
            api_settings(private.handoff.task_queue, tmp_path_factory.mktemp("api")),
            client=private.handoff,
            store=private.store,
        )
        async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as api:
            cid = await play(api, private)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    yield Played(cid, handler.records)


async def play(api: httpx.AsyncClient, private: Engine) -> str:
    created = await ok(
        api.post(
            "/conversations",
            json={"customer_id": CUSTOMER_ID, "text": FIRST},
            headers={"Idempotency-Key": new_id()},
        ),
        201,
    )
    cid: str = created["id"]
    customer = bearer(created["customer_token"])
    await ok(api.post(f"/conversations/{cid}/messages", json={"text": LATER}, headers=customer), 202)
    await ok(api.post(f"/conversations/{cid}/request-human", headers=customer), 202)
    await eventually(lambda: private.handoff.summary(cid), lambda s: s.status is Status.WAITING)
    await ok(api.post(f"/conversations/{cid}/takeover", headers=ALICE))
    await ok(api.post(f"/conversations/{cid}/replies", json={"text": REPLY}, headers=ALICE))
    # Someone with Temporal access signals directly as an agent who does not hold it: refused.
    handle = private.handoff.handle(cid)
    await handle.signal("AgentReply", AgentReply(agent=Agent(id="bob", name="Bob Stone"), text=REFUSED))
    await eventually(lambda: handle.query(ConversationWorkflow.rejected_signals), lambda n: n == 1)
    await ok(api.post(f"/conversations/{cid}/close", json={"outcome": "resolved"}, headers=ALICE))
    await private.handoff.result(cid)
    return cid


async def raw_history(raw_temporal: Client, cid: str) -> WorkflowHistory:
    return await raw_temporal.get_workflow_handle(workflow_id(cid)).fetch_history()


async def test_the_history_temporal_keeps_holds_no_message_text_and_no_customer_id(
    played: Played, raw_temporal: Client
) -> None:
    history = await raw_history(raw_temporal, played.conversation_id)
    stored = History(events=history.events).SerializeToString()  # the bytes as Temporal stores them
    assert personal_in(stored) == []
    assert unencrypted(history) == []
    assert key_ids(history) == {TEST_KEY_ID}


async def test_with_the_codec_the_same_history_reads_as_the_conversation(played: Played, raw_temporal: Client) -> None:
    """The control for the test above: the data is there, only encrypted."""
    history = await raw_history(raw_temporal, played.conversation_id)
    codec = data_converter().payload_codec
    assert codec is not None
    decoded = await codec.decode([p for _, p in history_payloads(history)])
    plain = b" ".join(p.data for p in decoded)
    assert set(personal_in(plain)) == set(PERSONAL)
    for text in (FIRST, LATER, REPLY, CUSTOMER_ID):
        assert text.encode() in plain


async def test_workflow_ids_and_search_attributes_hold_no_personal_data(
    played: Played, raw_temporal: Client, private: Engine
) -> None:
    [listed] = [w async for w in raw_temporal.list_workflows(f"WorkflowId = '{workflow_id(played.conversation_id)}'")]
    described = await raw_temporal.get_workflow_handle(listed.id).describe()
    # The id the API derived from the customer id and idempotency key reveals neither.
    assert personal_in(listed.id) == []
    assert personal_in(played.conversation_id) == []
    ours = {key.name for key in search_attributes.ALL}
    for attributes in (listed.typed_search_attributes, described.typed_search_attributes):
        assert personal_in(repr([(pair.key.name, pair.value) for pair in attributes])) == []
        # A status and an outcome (the agent's id is cleared on close): nothing else of ours.
        assert {pair.key.name: pair.value for pair in attributes if pair.key.name in ours} == {
            search_attributes.STATUS.name: Status.CLOSED.value,
            search_attributes.OUTCOME.name: Outcome.RESOLVED.value,
        }
    # No memo, and nothing else readable in what visibility returns.
    assert not listed.raw_info.memo.fields
    assert personal_in(listed.raw_info.SerializeToString()) == []
    # The database of Handoff itself does hold the conversation: that is where it belongs.
    assert FIRST in [e.text for e in private.store.transcript(played.conversation_id)]


async def test_no_log_line_of_the_worker_or_the_api_holds_personal_data(played: Played) -> None:
    logs = played.logs
    # The capture saw the worker's workflow code and the API server (the control for the check).
    assert any("Refused agent_reply signal" in r.getMessage() for r in logs)
    assert any(r.name == "uvicorn.access" and played.conversation_id in r.getMessage() for r in logs)
    leaking = [record_text(r) for r in logs if personal_in(record_text(r))]
    assert leaking == []
