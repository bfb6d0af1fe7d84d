"""Reopening and ratings through the Python client (issue 9), as a backend without the HTTP
API would use them: same rules as the API's, from the same module (handoff/ratings.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from handoff.client import HandoffClient, InvalidCommand, WrongStatus
from handoff.models import Outcome, Status
from handoff.ratings import RatingRefused
from handoff.store import Store
from tests.helpers import ALICE, eventually, new_id, wait_for_entries


async def closed_by_alice(handoff: HandoffClient, store: Store) -> str:
    cid = new_id()
    await handoff.start_or_message(cid, "customer-client", "hello")
    await wait_for_entries(handoff, cid, 2)
    await handoff.take_over(cid, ALICE)
    await handoff.close(cid, ALICE, Outcome.RESOLVED)

    async def summary() -> Any:
        return store.summary(cid)

    await eventually(summary, lambda s: s is not None and s.status is Status.CLOSED, what="closed in the database")
    return cid


async def test_a_customer_rates_once_through_the_client(handoff: HandoffClient, store: Store) -> None:
    cid = await closed_by_alice(handoff, store)
    with pytest.raises(InvalidCommand, match="from 1 to 5"):
        await handoff.rate(cid, 9)
    rating = await handoff.rate(cid, 4, "quick and kind")
    assert (rating.score, rating.comment, rating.agent) == (4, "quick and kind", ALICE)
    with pytest.raises(RatingRefused, match="already rated") as second:
        await handoff.rate(cid, 5)
    assert not second.value.gone
    late = await closed_by_alice(handoff, store)
    with pytest.raises(RatingRefused, match="over") as gone:
        await handoff.rate(late, 5, window=timedelta(0))
    assert gone.value.gone


async def test_a_message_to_a_closed_conversation_reopens_it_through_the_client(
    handoff: HandoffClient, store: Store
) -> None:
    old = await closed_by_alice(handoff, store)
    new = await handoff.reopen(old, "it happened again")
    transcript = await wait_for_entries(handoff, new, 2)
    assert transcript[0].text == "it happened again"
    assert store.previous_conversation(new) == old
    assert (await handoff.summary(old)).status is Status.CLOSED  # the old one is left as it was
    with pytest.raises(WrongStatus, match="not closed"):
        await handoff.reopen(new, "hello?")
