"""The Temporal server's own database file never holds a customer's words.

A dev server of our own on a SQLite file (what `handoff up` runs), a real worker, two
conversations: one through Handoff's client, one whose messages come from a client without
the codec (someone signalling Temporal directly). After the server stops, the raw bytes of
its database files hold the second one's text, which shows the check can see plain text,
and none of the first's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient
from handoff.converter import data_converter
from handoff.devserver import DevServer
from handoff.models import Outcome
from handoff.store import Store
from tests.helpers import ALICE, new_id, wait_for_entries
from worker import build_worker

ENCRYPTED_TEXT = "Xanthippe Oduya, 221B Baker Street, passport 19CK04721"
CUSTOMER_ID = "customer-xanthippe-oduya"
PLAIN_TEXT = "Control message sent around the codec: Ptolemais Vardalos"


def database_bytes(db_file: Path) -> bytes:
    """The SQLite file and whatever its write-ahead log still holds."""
    files = [db_file, *db_file.parent.glob(f"{db_file.name}-*")]
    return b"".join(f.read_bytes() for f in files if f.is_file())


@pytest.mark.slow
async def test_the_temporal_database_file_holds_no_message_text(tmp_path: Path) -> None:
    server = DevServer(db_file=tmp_path / "temporal.db", log_file=tmp_path / "temporal.log")
    await asyncio.to_thread(server.start)
    store = Store(f"sqlite:///{tmp_path / 'handoff.db'}")
    try:
        client = await Client.connect(server.address, data_converter=data_converter())
        handoff = HandoffClient(client, "database-check")
        plain_json = await Client.connect(server.address, data_converter=pydantic_data_converter)
        around_the_codec = HandoffClient(plain_json, "database-check")
        async with build_worker(client, "database-check", store, KnowledgeBaseBot.from_file()):
            encrypted, plain = new_id(), new_id()
            await handoff.start_or_message(encrypted, CUSTOMER_ID, ENCRYPTED_TEXT)
            await wait_for_entries(handoff, encrypted, 2)
            await handoff.take_over(encrypted, ALICE)
            await handoff.reply(encrypted, ALICE, f"Thanks {ENCRYPTED_TEXT.split(',')[0]}")
            await handoff.close(encrypted, ALICE, Outcome.RESOLVED)
            # Stored as sent (the worker refuses it: handoff/converter.py), which is all the control needs.
            await around_the_codec.start_or_message(plain, "customer-control", PLAIN_TEXT)
    finally:
        store.close()
        await asyncio.to_thread(server.stop)
    stored = database_bytes(tmp_path / "temporal.db")
    assert PLAIN_TEXT.encode() in stored  # the control: plain payloads are visible in the file
    for secret in ("Xanthippe", "Oduya", "Baker Street", "19CK04721", CUSTOMER_ID):
        assert secret.encode() not in stored, secret
