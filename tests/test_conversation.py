"""Every behaviour of the conversation engine, end to end: the typed client, a real Temporal
dev server, a real worker, the knowledge-base bot and a real SQLite database."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from handoff.cli.history import local_activity_marker
from handoff.client import (
    ConversationClosed,
    ConversationHeld,
    ConversationNotFound,
    HandoffClient,
    InvalidCommand,
    NotAssignedAgent,
    WrongStatus,
    workflow_id,
)
from handoff.lifecycle import HUMAN_REQUESTED_NOTE, MAX_MESSAGE_CHARS
from handoff.models import CustomerMessage, EntryKind, FactKind, HandBack, Outcome, Status, TakeOver
from handoff.store import Store
from tests.helpers import (
    ALICE,
    BOB,
    GREETING_ANSWER,
    HANDOFF_ANSWER,
    ORDER_ANSWER,
    PASSWORD_ANSWER,
    activities_scheduled,
    bot_answers_asked,
    customer_view,
    eventually,
    last_signal,
    new_id,
    notes,
    processed_signals,
    wait_for_entries,
)


async def start(handoff: HandoffClient, text: str = "hello") -> str:
    conversation_id = new_id()
    await handoff.start_or_message(conversation_id, "customer-42", text)
    await wait_for_entries(handoff, conversation_id, 2)
    return conversation_id


async def to_waiting(handoff: HandoffClient) -> str:
    conversation_id = await start(handoff)
    await handoff.send_message(conversation_id, "talk to a human")
    await eventually(lambda: handoff.summary(conversation_id), lambda s: s.status is Status.WAITING)
    return conversation_id


async def recorded(store: Store, conversation_id: str, kind: FactKind, count: int) -> None:
    """Wait until the database holds `count` facts of `kind` (the recorder is asynchronous)."""

    async def probe() -> int:
        return sum(1 for f in store.facts(conversation_id) if f.kind is kind)

    await eventually(probe, lambda n: n >= count)


async def test_the_bot_answers_each_customer_message_from_the_knowledge_base(
    handoff: HandoffClient, store: Store
) -> None:
    conversation_id = await start(handoff, "hello")
    await handoff.send_message(conversation_id, "How do I reset my password?")
    transcript = await wait_for_entries(handoff, conversation_id, 4)
    assert customer_view(transcript) == [
        ("customer", "hello"),
        ("bot", GREETING_ANSWER),
        ("customer", "How do I reset my password?"),
        ("bot", PASSWORD_ANSWER),
    ]
    assert (await handoff.summary(conversation_id)).status is Status.BOT
    # Messages ride along with the next write: the second question carried the first exchange;
    # the bot's last answer waits for the next one (here, the request for a person).
    await recorded(store, conversation_id, FactKind.MESSAGE, 3)
    await handoff.request_human(conversation_id)
    await recorded(store, conversation_id, FactKind.HUMAN_REQUESTED, 1)
    facts = store.facts(conversation_id)
    assert [f.kind for f in facts].count(FactKind.STARTED) == 1
    assert [f.kind for f in facts].count(FactKind.MESSAGE) == 4
    assert [e.text for e in store.transcript(conversation_id)][:4] == [e.text for e in transcript]


async def test_asking_for_a_person_moves_to_waiting_and_the_bot_stops(handoff: HandoffClient, store: Store) -> None:
    conversation_id = await to_waiting(handoff)
    summary = await handoff.summary(conversation_id)
    assert summary.waiting_since is not None
    await handoff.send_message(conversation_id, "hello? is anyone there")
    # The workflow has handled the third message: had it asked the bot, the answer is scheduled by now.
    events = await processed_signals(handoff, conversation_id, "CustomerMessage", 3)
    bot_answers = bot_answers_asked(events, after_event=last_signal(events, "CustomerMessage"))
    assert bot_answers == 0
    transcript = await handoff.transcript(conversation_id)
    assert customer_view(transcript)[-2:] == [
        ("bot", HANDOFF_ANSWER),
        ("customer", "hello? is anyone there"),
    ]
    assert notes(transcript) == [HUMAN_REQUESTED_NOTE]
    await recorded(store, conversation_id, FactKind.HUMAN_REQUESTED, 1)
    row = store.summary(conversation_id)
    assert row is not None and row.status is Status.WAITING


async def test_an_explicit_request_for_a_person_also_waits(handoff: HandoffClient) -> None:
    conversation_id = await start(handoff)
    await handoff.request_human(conversation_id)
    summary = await eventually(lambda: handoff.summary(conversation_id), lambda s: s.status is Status.WAITING)
    assert summary.waiting_since is not None


async def test_take_over_from_waiting_records_the_joined_note(handoff: HandoffClient, store: Store) -> None:
    conversation_id = await to_waiting(handoff)
    summary = await handoff.take_over(conversation_id, ALICE)
    assert (summary.status, summary.agent) == (Status.HUMAN, ALICE)
    assert notes(await handoff.transcript(conversation_id))[-1] == "Alice Martin joined the conversation"
    await recorded(store, conversation_id, FactKind.TAKEN_OVER, 1)
    assert "Alice Martin joined the conversation" in [e.text for e in store.transcript(conversation_id)]
    row = store.summary(conversation_id)
    assert row is not None and row.agent == ALICE and row.status is Status.HUMAN


async def test_take_over_straight_from_the_bot_pool(handoff: HandoffClient) -> None:
    conversation_id = await start(handoff)
    summary = await handoff.take_over(conversation_id, BOB)
    assert (summary.status, summary.agent) == (Status.HUMAN, BOB)


async def test_twenty_concurrent_take_overs_have_exactly_one_winner(handoff: HandoffClient, store: Store) -> None:
    from handoff.models import Agent

    conversation_id = await to_waiting(handoff)
    agents = [Agent(id=f"agent-{i}", name=f"Agent {i}") for i in range(20)]
    results = await asyncio.gather(*(handoff.take_over(conversation_id, a) for a in agents), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    holder = winners[0].agent
    assert holder is not None
    assert all(isinstance(e, ConversationHeld) and e.holder == holder for e in losers)
    assert all(f"held by {holder.name}" in str(e) for e in losers)
    transcript = await handoff.transcript(conversation_id)
    assert notes(transcript).count(f"{holder.name} joined the conversation") == 1
    assert len([n for n in notes(transcript) if n.endswith("joined the conversation")]) == 1
    # Facts are recorded in order: once the holder's hand-back is in the database, any second
    # take-over (which would come before it) would be too.
    await handoff.hand_back(conversation_id, holder)
    await recorded(store, conversation_id, FactKind.HANDED_BACK, 1)
    facts = store.facts(conversation_id)
    assert [f.kind for f in facts].count(FactKind.TAKEN_OVER) == 1
    assert [f.number for f in facts] == list(range(1, len(facts) + 1))


async def test_while_human_only_the_holder_acts_and_the_bot_is_silent(handoff: HandoffClient) -> None:
    conversation_id = await to_waiting(handoff)
    await handoff.take_over(conversation_id, ALICE)
    await handoff.send_message(conversation_id, "my parcel never arrived")
    await handoff.reply(conversation_id, ALICE, "I'm sorry, let me look into it.")
    with pytest.raises(NotAssignedAgent, match="only Alice Martin"):
        await handoff.reply(conversation_id, BOB, "hi from Bob")
    with pytest.raises(NotAssignedAgent):
        await handoff.hand_back(conversation_id, BOB)
    with pytest.raises(NotAssignedAgent):
        await handoff.close(conversation_id, BOB, Outcome.RESOLVED)
    with pytest.raises(InvalidCommand, match="empty"):
        await handoff.reply(conversation_id, ALICE, "   ")
    # Refused updates return only once the workflow refused them; the customer's message is a
    # signal, handled once a later workflow task completed: no bot answer was scheduled for it.
    events = await processed_signals(handoff, conversation_id, "CustomerMessage", 3)
    bot_answers = bot_answers_asked(events, after_event=last_signal(events, "CustomerMessage"))
    assert bot_answers == 0
    transcript = await handoff.transcript(conversation_id)
    assert customer_view(transcript)[-2:] == [
        ("customer", "my parcel never arrived"),
        ("agent", "I'm sorry, let me look into it."),
    ]
    assert transcript[-1].author == "Alice Martin"
    assert (await handoff.summary(conversation_id)).agent == ALICE


async def test_hand_back_is_silent_for_the_customer_and_the_bot_answers_next(
    handoff: HandoffClient, store: Store
) -> None:
    conversation_id = await to_waiting(handoff)
    await handoff.take_over(conversation_id, ALICE)
    await handoff.reply(conversation_id, ALICE, "Your refund is on its way.")
    customer_saw_before = customer_view(await handoff.transcript(conversation_id))
    summary = await handoff.hand_back(conversation_id, ALICE)
    assert (summary.status, summary.agent) == (Status.BOT, None)
    transcript = await handoff.transcript(conversation_id)
    assert customer_view(transcript) == customer_saw_before  # no extra message for the customer
    assert notes(transcript)[-1] == "Alice Martin left the conversation"
    await handoff.send_message(conversation_id, "when will the refund arrive?")
    transcript = await wait_for_entries(handoff, conversation_id, len(transcript) + 2)
    assert transcript[-1].kind is EntryKind.BOT
    assert "Refunds are issued" in transcript[-1].text
    summary = await handoff.summary(conversation_id)
    assert summary.status is Status.BOT  # back in the bot pool, not in Waiting
    await recorded(store, conversation_id, FactKind.HANDED_BACK, 1)
    row = store.summary(conversation_id)
    assert row is not None and row.status is Status.BOT and row.agent is None
    # It re-enters Waiting only when the customer asks again.
    await handoff.send_message(conversation_id, "agent please")
    await eventually(lambda: handoff.summary(conversation_id), lambda s: s.status is Status.WAITING)


@pytest.mark.parametrize(
    ("outcome", "note"),
    [
        (Outcome.RESOLVED, "Bob Stone closed the conversation as resolved"),
        (Outcome.NOT_RESOLVED, "Bob Stone closed the conversation as not resolved"),
    ],
)
async def test_close_completes_the_workflow_and_stores_the_record(
    handoff: HandoffClient, store: Store, outcome: Outcome, note: str
) -> None:
    conversation_id = await to_waiting(handoff)
    await handoff.take_over(conversation_id, BOB)
    await handoff.reply(conversation_id, BOB, "Done!")
    summary = await handoff.close(conversation_id, BOB, outcome)
    assert (summary.status, summary.outcome, summary.closed_by) == (Status.CLOSED, outcome, BOB)
    final = await handoff.result(conversation_id)
    assert final.status is Status.CLOSED and final.outcome is outcome
    transcript = await handoff.transcript(conversation_id)
    assert notes(transcript)[-1] == note
    # The record outlives Temporal: the whole transcript and the row are in the database.
    assert store.transcript(conversation_id) == transcript
    row = store.summary(conversation_id)
    assert row is not None and (row.status, row.outcome, row.closed_by) == (Status.CLOSED, outcome, BOB)
    kinds = [f.kind for f in store.facts(conversation_id)]
    assert kinds.count(FactKind.CLOSED) == 1 and kinds.count(FactKind.STARTED) == 1
    # A closed conversation accepts nothing more and says so.
    with pytest.raises(ConversationClosed):
        await handoff.send_message(conversation_id, "one more thing")
    with pytest.raises(ConversationClosed):
        await handoff.start_or_message(conversation_id, "customer-42", "one more thing")
    with pytest.raises(ConversationClosed):
        await handoff.take_over(conversation_id, ALICE)


async def test_an_unknown_outcome_is_refused_and_nothing_changes(
    handoff: HandoffClient, temporal_env: WorkflowEnvironment
) -> None:
    conversation_id = await start(handoff)
    await handoff.take_over(conversation_id, ALICE)
    with pytest.raises(InvalidCommand, match="unknown outcome 'solved'"):
        await handoff.close(conversation_id, ALICE, "solved")
    # Bypassing the client: the workflow refuses the malformed update itself and keeps running.
    handle = temporal_env.client.get_workflow_handle(workflow_id(conversation_id))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("Close", {"kind": "close", "agent": ALICE.model_dump(), "outcome": "solved"})
    # The SDK refuses an update whose argument does not decode, before the handler runs.
    assert isinstance(refused.value.cause, ApplicationError)
    assert "Failed decoding arguments" in refused.value.cause.message
    summary = await handoff.summary(conversation_id)
    assert (summary.status, summary.outcome) == (Status.HUMAN, None)
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING


async def test_hand_back_and_close_need_the_conversation_to_be_held(handoff: HandoffClient) -> None:
    conversation_id = await start(handoff)
    with pytest.raises(WrongStatus, match="no agent holds the conversation"):
        await handoff.hand_back(conversation_id, ALICE)
    with pytest.raises(WrongStatus):
        await handoff.close(conversation_id, ALICE, Outcome.RESOLVED)


async def test_unknown_conversation_and_bad_messages(handoff: HandoffClient) -> None:
    with pytest.raises(ConversationNotFound):
        await handoff.take_over(new_id(), ALICE)
    with pytest.raises(ConversationNotFound):
        await handoff.send_message(new_id(), "hello")
    with pytest.raises(InvalidCommand, match="empty"):
        await handoff.start_or_message(new_id(), "customer-1", "  ")
    with pytest.raises(InvalidCommand, match=str(MAX_MESSAGE_CHARS)):
        await handoff.start_or_message(new_id(), "customer-1", "x" * (MAX_MESSAGE_CHARS + 1))


async def test_rejected_updates_leave_no_trace_in_history(
    handoff: HandoffClient, temporal_env: WorkflowEnvironment
) -> None:
    conversation_id = await start(handoff)
    await handoff.take_over(conversation_id, ALICE)
    for _ in range(3):
        with pytest.raises(ConversationHeld):
            await handoff.take_over(conversation_id, BOB)
    history = await temporal_env.client.get_workflow_handle(workflow_id(conversation_id)).fetch_history()
    accepted = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
    assert len(accepted) == 1  # only Alice's take-over


async def test_agent_commands_as_signals_follow_the_same_rules(
    handoff: HandoffClient, temporal_env: WorkflowEnvironment
) -> None:
    conversation_id = await to_waiting(handoff)
    handle = temporal_env.client.get_workflow_handle(workflow_id(conversation_id))
    await handle.signal("AgentTakeOver", TakeOver(agent=ALICE))
    await handle.signal("AgentTakeOver", TakeOver(agent=BOB))  # refused: Alice holds it
    await handle.signal("AgentHandBack", HandBack(agent=BOB))  # refused: not Bob's
    summary = await eventually(lambda: handoff.summary(conversation_id), lambda s: s.status is Status.HUMAN)
    assert summary.agent == ALICE
    assert await eventually(lambda: handle.query("RejectedSignals"), lambda n: n == 2) == 2
    await handle.signal("AgentHandBack", HandBack(agent=ALICE))
    await eventually(lambda: handoff.summary(conversation_id), lambda s: s.status is Status.BOT)
    assert notes(await handoff.transcript(conversation_id))[-2:] == [
        "Alice Martin joined the conversation",
        "Alice Martin left the conversation",
    ]


async def test_an_undecodable_signal_is_dropped_and_the_conversation_goes_on(
    handoff: HandoffClient, temporal_env: WorkflowEnvironment
) -> None:
    conversation_id = await start(handoff)
    garbage = Payload(metadata={"encoding": b"json/plain"}, data=b"{not json")
    await temporal_env.client.workflow_service.signal_workflow_execution(
        SignalWorkflowExecutionRequest(
            namespace=temporal_env.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id(conversation_id)),
            signal_name="CustomerMessage",
            input=Payloads(payloads=[garbage]),
        )
    )
    await handoff.send_message(conversation_id, "thanks")
    transcript = await wait_for_entries(handoff, conversation_id, 4)
    assert customer_view(transcript)[-2:] == [
        ("customer", "thanks"),
        ("bot", "You're welcome! Is there anything else I can help with?"),
    ]
    handle = temporal_env.client.get_workflow_handle(workflow_id(conversation_id))
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING


async def test_a_duplicate_first_message_creates_one_conversation(
    handoff: HandoffClient, temporal_env: WorkflowEnvironment
) -> None:
    conversation_id = new_id()
    await asyncio.gather(
        *(handoff.start_or_message(conversation_id, "customer-7", "hello", message_id="first") for _ in range(5))
    )
    # Five deliveries reached the one workflow; once it handled them all, it kept one message
    # and asked the bot once.
    events = await processed_signals(handoff, conversation_id, "CustomerMessage", 5)
    bot_answers = bot_answers_asked(events)
    assert bot_answers == 1
    transcript = await wait_for_entries(handoff, conversation_id, 2)
    assert customer_view(transcript) == [("customer", "hello"), ("bot", GREETING_ANSWER)]

    async def runs() -> list[str]:
        query = f"WorkflowId = '{workflow_id(conversation_id)}'"
        return [w.run_id async for w in temporal_env.client.list_workflows(query)]

    # Visibility lags: wait until it lists the conversation, then it lists exactly one run.
    assert len(await eventually(runs, lambda found: len(found) >= 1, what="the run listed")) == 1


async def test_ops_can_filter_conversations_started_before_the_cost_work_by_status_agent_and_outcome(
    handoff: HandoffClient, temporal_env: WorkflowEnvironment
) -> None:
    """Conversations started without `search_attributes_at_close` (before issue 8's cost work)
    keep one upsert per transition, so ops can filter them by live status and agent."""
    conversation_id = new_id()
    await handoff.start_or_message(conversation_id, "customer-42", "hello", search_attributes_at_close=False)
    await wait_for_entries(handoff, conversation_id, 2)
    await handoff.send_message(conversation_id, "talk to a human")
    await eventually(lambda: handoff.summary(conversation_id), lambda s: s.status is Status.WAITING)
    wid = workflow_id(conversation_id)

    async def ids(query: str) -> set[str]:
        return {w.id async for w in temporal_env.client.list_workflows(query)}

    await eventually(lambda: ids("ConversationStatus = 'waiting'"), lambda found: wid in found)
    await handoff.take_over(conversation_id, ALICE)
    await eventually(
        lambda: ids(f"ConversationStatus = 'human' AND ConversationAgent = '{ALICE.id}'"), lambda found: wid in found
    )
    await handoff.close(conversation_id, ALICE, Outcome.NOT_RESOLVED)
    await eventually(lambda: ids("ConversationOutcome = 'not_resolved'"), lambda found: wid in found)
    description = await temporal_env.client.get_workflow_handle(wid).describe()
    # Search attributes carry no personal data: exactly a status and an outcome, nothing else of ours.
    ours = {p.key.name: p.value for p in description.typed_search_attributes if p.key.name.startswith("Conversation")}
    assert ours == {"ConversationStatus": "closed", "ConversationOutcome": "not_resolved"}
    assert "customer" not in wid


async def test_ops_see_new_conversations_open_until_they_close_then_closed_with_their_outcome(
    handoff: HandoffClient, temporal_env: WorkflowEnvironment
) -> None:
    """New conversations upsert their search attributes once, at the close (each upsert is a
    billable action; who is waiting or held by whom is answered by the database)."""
    conversation_id = await to_waiting(handoff)
    wid = workflow_id(conversation_id)

    async def ids(query: str) -> set[str]:
        return {w.id async for w in temporal_env.client.list_workflows(query)}

    await eventually(lambda: ids("ConversationStatus = 'open'"), lambda found: wid in found)
    await handoff.take_over(conversation_id, ALICE)
    await handoff.close(conversation_id, ALICE, Outcome.NOT_RESOLVED)
    await eventually(
        lambda: ids("ConversationStatus = 'closed' AND ConversationOutcome = 'not_resolved'"),
        lambda found: wid in found,
    )
    assert wid not in await ids("ConversationStatus = 'open'")
    history = await temporal_env.client.get_workflow_handle(wid).fetch_history()
    upserts = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES]
    assert len(upserts) == 1  # waiting, taken over, closed: one upsert, at the close
    description = await temporal_env.client.get_workflow_handle(wid).describe()
    ours = {p.key.name: p.value for p in description.typed_search_attributes if p.key.name.startswith("Conversation")}
    assert ours == {"ConversationStatus": "closed", "ConversationOutcome": "not_resolved"}


async def test_a_customer_message_sent_as_an_update_answers_with_its_facts_and_is_kept_once(
    handoff: HandoffClient, store: Store
) -> None:
    """What the API sends: the update's answer carries the message's fact, for the API to write;
    a retry under the same message id is applied once; a refused message leaves no trace."""
    conversation_id = await to_waiting(handoff)
    result = await handoff.send_message_result(conversation_id, "still there?", message_id="m-1", caller_records=True)
    [fact] = result.facts
    assert (fact.kind, fact.entry and fact.entry.text) == (FactKind.MESSAGE, "still there?")
    again = await handoff.send_message_result(conversation_id, "still there?", message_id="m-1", caller_records=True)
    assert again.facts == result.facts  # Temporal answers the retried update with the first result
    with pytest.raises(InvalidCommand, match="the message is empty"):  # refused before it is sent
        await handoff.send_message_result(conversation_id, "   ", message_id="m-2", caller_records=True)
    with pytest.raises(WorkflowUpdateFailedError) as refused:  # and by the workflow's validator
        await handoff.handle(conversation_id).execute_update(
            "SendMessage", CustomerMessage(text="\x00", caller_records=True)
        )
    assert isinstance(refused.value.cause, ApplicationError) and refused.value.cause.type == "invalid_input"
    asked = await handoff.request_human_result(conversation_id, request_id="r-1", caller_records=True)
    assert (asked.status, asked.facts) == (Status.WAITING, [])  # already waiting: nothing changes
    transcript = await handoff.transcript(conversation_id)
    assert [e.text for e in transcript if e.kind is EntryKind.CUSTOMER].count("still there?") == 1
    await handoff.take_over(conversation_id, ALICE)
    await handoff.close(conversation_id, ALICE, Outcome.RESOLVED)
    with pytest.raises(ConversationClosed):
        await handoff.send_message_result(conversation_id, "one more", message_id="m-3", caller_records=True)
    await handoff.result(conversation_id)
    recorded_texts = [e.text for e in store.transcript(conversation_id) if e.kind is EntryKind.CUSTOMER]
    assert recorded_texts.count("still there?") == 1  # the recorder wrote it as the backstop


async def test_a_message_to_the_bot_sent_as_an_update_answers_with_the_bot_reply(
    handoff: HandoffClient, store: Store, temporal_env: WorkflowEnvironment
) -> None:
    """New conversations: the bot answers a `SendMessage` inside the workflow task (a local
    activity, no `BotAnswer` activity scheduled), and the update's answer carries the bot's reply
    after the message, for the caller to write; the workflow writes them again at the close."""
    conversation_id = await start(handoff)
    handle = temporal_env.client.get_workflow_handle(workflow_id(conversation_id))
    before = list((await handle.fetch_history()).events)
    result = await handoff.send_message_result(
        conversation_id, "Where is my order?", message_id="m-1", caller_records=True
    )
    assert [(f.kind, f.entry and f.entry.kind, f.entry and f.entry.text) for f in result.facts] == [
        (FactKind.MESSAGE, EntryKind.CUSTOMER, "Where is my order?"),
        (FactKind.MESSAGE, EntryKind.BOT, ORDER_ANSWER),
    ]
    assert result.status is Status.BOT
    after = list((await handle.fetch_history()).events)
    last = before[-1].event_id
    assert activities_scheduled(after, "BotAnswer", after_event=last) == 0
    assert bot_answers_asked(after, after_event=last) == 1  # its marker
    assert customer_view(await handoff.transcript(conversation_id))[-2:] == [
        ("customer", "Where is my order?"),
        ("bot", ORDER_ANSWER),
    ]
    # No caller wrote them here: the recorder, as the backstop, has by the time the workflow completes.
    await handoff.take_over(conversation_id, ALICE)
    await handoff.close(conversation_id, ALICE, Outcome.RESOLVED)
    await handoff.result(conversation_id)
    assert store.transcript(conversation_id) == await handoff.transcript(conversation_id)


async def test_history_reads_well_in_the_ui(handoff: HandoffClient, temporal_env: WorkflowEnvironment) -> None:
    conversation_id = await to_waiting(handoff)
    await handoff.take_over(conversation_id, ALICE)
    await handoff.close(conversation_id, ALICE, Outcome.RESOLVED)
    await handoff.result(conversation_id)
    history = await temporal_env.client.get_workflow_handle(workflow_id(conversation_id)).fetch_history()
    names = set()
    for e in history.events:
        if e.HasField("workflow_execution_signaled_event_attributes"):
            names.add(e.workflow_execution_signaled_event_attributes.signal_name)
        if e.HasField("activity_task_scheduled_event_attributes"):
            names.add(e.activity_task_scheduled_event_attributes.activity_type.name)
        if (marker := local_activity_marker(e)) is not None:
            names.add(marker["activity_type"])  # the bot answers inside the task: a marker each
        if e.HasField("workflow_execution_update_accepted_event_attributes"):
            names.add(e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name)
    assert {"CustomerMessage", "BotAnswer", "RecordFacts", "TakeOver", "Close"} <= names
