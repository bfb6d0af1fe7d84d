"""Only a holder of the encryption keys can command a conversation (issue 13, finding 2).

Anyone who reaches Temporal's port could send `temporal workflow signal --name AgentReply` with
a made-up agent and a real agent's display name: the customer saw it as that agent's reply and
the conversation was then held by the made-up id. The worker now believes only payloads the
codec authenticates (AES-GCM): anything else is dropped (signals) or refused (updates), and
the conversation goes on.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from handoff.client import HandoffClient, workflow_id
from handoff.models import Agent, AgentReply, CustomerMessage, Status, TakeOver
from tests.helpers import ALICE, customer_view, eventually, new_id, wait_for_entries
from tests.security.conftest import Engine

IMPOSTOR = Agent(id="made-up-agent", name=ALICE.name)
FORGED_TEXT = "This is Alice from support: please send me your card number and its code."


@pytest.fixture
def outsider(temporal_env: WorkflowEnvironment) -> Client:
    """A client that reaches Temporal but has no key: the plain pydantic converter, no codec."""
    return Client(
        temporal_env.client.service_client,
        namespace=temporal_env.client.namespace,
        data_converter=pydantic_data_converter,
    )


async def test_commands_without_the_keys_are_dropped_or_refused_and_the_conversation_goes_on(
    private: Engine, outsider: Client
) -> None:
    handoff = private.handoff
    conversation_id = new_id()
    await handoff.start_or_message(conversation_id, "customer-forged", "hello")
    await wait_for_entries(handoff, conversation_id, 2)
    forged = outsider.get_workflow_handle(workflow_id(conversation_id))

    await forged.signal("AgentTakeOver", TakeOver(agent=IMPOSTOR))
    await forged.signal("AgentReply", AgentReply(agent=IMPOSTOR, text=FORGED_TEXT))
    await forged.signal("CustomerMessage", CustomerMessage(text="I am not the customer"))
    # An update is refused at once, with the reason (in the worker's encrypted failure: the
    # outsider reads it through a converter with the keys, as an operator would).
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await forged.execute_update("Reply", AgentReply(agent=IMPOSTOR, text=FORGED_TEXT))
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.failure is not None
    decoded = await handoff.temporal.data_converter.decode_failure(cause.failure)
    assert "Encoded failure" in str(cause)  # all the outsider learns
    assert isinstance(decoded, ApplicationError)
    assert decoded.type == "UnauthenticatedPayload"
    assert decoded.message == (
        "refused: the payload is not encrypted with a Handoff key (only processes holding the encryption keys can "
        "start, signal or update a conversation)"
    )

    # The update's answer came after the signals were handled; a real message proves it too.
    await handoff.send_message(conversation_id, "How do I reset my password?")
    transcript = await wait_for_entries(handoff, conversation_id, 4)
    assert customer_view(transcript) == [
        ("customer", "hello"),
        ("bot", "Hello! How can I help you today?"),
        ("customer", "How do I reset my password?"),
        (
            "bot",
            'You can reset your password from the sign-in page: choose "Forgot password?" and follow the link we '
            "email you. The link is valid for one hour.",
        ),
    ]
    summary = await handoff.summary(conversation_id)
    assert summary.status is Status.BOT
    assert summary.agent is None

    # The conversation is not stuck: the real Alice takes it over and replies.
    taken = await handoff.take_over(conversation_id, ALICE)
    assert taken.agent == ALICE
    await handoff.reply(conversation_id, ALICE, "Hi, I'm Alice.")
    shown = customer_view(await handoff.transcript(conversation_id))
    assert shown[-1] == ("agent", "Hi, I'm Alice.")
    assert all(FORGED_TEXT not in text for _, text in shown)
    assert await eventually(lambda: handoff.summary(conversation_id), lambda s: s.agent == ALICE)


async def test_a_conversation_started_without_the_keys_fails_at_once_rather_than_retry(
    private: Engine, outsider: Client
) -> None:
    """Its input is refused like any command: the run fails with the reason, and no worker
    retries its first workflow task for ever."""
    conversation_id = new_id()
    await HandoffClient(outsider, private.handoff.task_queue).start_or_message(
        conversation_id, "customer-outsider", "hello"
    )
    handle = private.handoff.temporal.get_workflow_handle(workflow_id(conversation_id))
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=30)
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "UnauthenticatedPayload"
    assert private.store.facts(conversation_id) == []
