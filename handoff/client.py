"""The typed client a backend imports to drive conversations.

Every call maps Temporal's answers to a small set of exceptions a backend can turn into
HTTP statuses or messages: `ConversationNotFound`, `ConversationClosed`,
`ConversationHeld` (another agent holds it), `NotAssignedAgent`, `WrongStatus`,
`InvalidCommand`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from temporalio.api.errordetails.v1 import WorkflowNotReadyFailure
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from handoff import presence, search_attributes
from handoff.availability import AgentStatus, Capacities
from handoff.config import Settings
from handoff.connection import connect_temporal
from handoff.lifecycle import CLOSED_MESSAGE, MAX_CUSTOMER_ID_CHARS, Rejected, RejectionCode, check_text
from handoff.models import (
    AddNote,
    Agent,
    AgentReply,
    Close,
    CommandResult,
    ConversationInput,
    ConversationSummary,
    CustomerMessage,
    HandBack,
    Outcome,
    RecordBatch,
    Release,
    RequestHuman,
    Status,
    TakeOver,
    TimerSettings,
    TranscriptEntry,
    Transfer,
)
from handoff.ratings import rate as rate_conversation
from handoff.store import Rating, Store
from workflows.conversation import ConversationWorkflow

if TYPE_CHECKING:
    from handoff.assist import Assistant, Feedback, FeedbackAction, Suggestions
    from handoff.llm import Rewriter

T = TypeVar("T")


class HandoffError(Exception):
    """A command was refused; `str(error)` says why in words a person can act on."""

    def __init__(self, message: str, holder: Agent | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.holder = holder


class ConversationNotFound(HandoffError):
    pass


class ConversationClosed(HandoffError):
    pass


class ConversationHeld(HandoffError):
    """Another agent holds the conversation; `holder` names them."""


class NotAssignedAgent(HandoffError):
    """The caller is not the agent who holds the conversation."""


class WrongStatus(HandoffError):
    pass


class InvalidCommand(HandoffError):
    pass


class InvalidTransferTarget(HandoffError):
    """A transfer to the agent who already holds the conversation, or to no known agent."""


class AgentUnavailable(HandoffError):
    """Issue 10: the agent cannot take one more conversation now (`code`: at_capacity, not_online);
    the message says why ("Ben Stone is at capacity (5 of 5)")."""

    def __init__(self, message: str, code: str = "at_capacity") -> None:
        super().__init__(message)
        self.code = code


ERRORS_BY_CODE: dict[str, type[HandoffError]] = {
    RejectionCode.CLOSED: ConversationClosed,
    RejectionCode.HELD_BY_OTHER: ConversationHeld,
    RejectionCode.NOT_ASSIGNED: NotAssignedAgent,
    RejectionCode.WRONG_STATUS: WrongStatus,
    RejectionCode.INVALID: InvalidCommand,
    RejectionCode.INVALID_TARGET: InvalidTransferTarget,
}


def workflow_id(conversation_id: str) -> str:
    """Workflow ids are visible to ops unencrypted: only the opaque conversation id goes in."""
    return f"conversation-{conversation_id}"


class HandoffClient:
    """`store`: the project database, for transcript entries a long conversation no longer holds;
    `timers`: what new conversations start with (None: no timers; `connect` uses the settings')."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        store: Store | None = None,
        timers: TimerSettings | None = None,
        *,
        handover_summaries: bool = False,
        assistant: Assistant | None = None,
        rewriter: Rewriter | None = None,
        capacities: Capacities | None = None,
        slot_stale_after: timedelta = presence.STALE_SLOT,
    ) -> None:
        """`assistant`: how suggestions are made (the default knowledge base, with embeddings, if
        None); `rewriter`: the team's language model for them (none if None); `capacities`: how
        many conversations each agent may hold (issue 10; needs `store`, where the counts are
        read; None: no limit, as before)."""
        self.temporal = client
        self.task_queue = task_queue
        self.store = store
        self.timers = timers
        self.handover_summaries = handover_summaries
        self._assistant = assistant
        self.rewriter = rewriter
        self.capacities = capacities
        # Every caller of a take-over gives up on it before this (the API after
        # HANDOFF_API_TEMPORAL_TIMEOUT, the assigner after 60% of it): see `heal_slots`.
        self.slot_stale_after = slot_stale_after

    @property
    def assistant(self) -> Assistant:
        if self._assistant is None:
            from handoff.assist import Assistant
            from handoff.bot import KnowledgeBaseBot

            self._assistant = Assistant(KnowledgeBaseBot.from_file())
        return self._assistant

    @classmethod
    async def connect(cls, settings: Settings | None = None, store: Store | None = None) -> HandoffClient:
        from handoff.agents import AgentDirectory
        from handoff.assist import Assistant
        from handoff.bot import KnowledgeBaseBot
        from handoff.llm import rewriter_from_settings

        settings = settings or Settings()
        return cls(
            await connect_temporal(settings),
            settings.task_queue,
            store,
            settings.timers(),
            capacities=AgentDirectory.from_settings(settings.agents_file).capacities(settings.agent_capacity),
            handover_summaries=settings.handover_summary,
            assistant=Assistant(
                KnowledgeBaseBot.from_file(settings.knowledge_base), embeddings=settings.assist_embeddings
            ),
            rewriter=rewriter_from_settings(settings),
        )

    def handle(self, conversation_id: str) -> WorkflowHandle[Any, ConversationSummary]:
        return self.temporal.get_workflow_handle_for(ConversationWorkflow.run, workflow_id(conversation_id))

    # --- Customer side.

    async def start_or_message(
        self,
        conversation_id: str,
        customer_id: str,
        text: str,
        *,
        message_id: str | None = None,
        continue_as_new_after_events: int | None = None,
        previous_conversation_id: str | None = None,
        read_side: bool = True,
        search_attributes_at_close: bool = True,
        facts_by_cause: bool = True,
        lazy_timers: bool = True,
        local_bot_answers: bool = True,
    ) -> None:
        """Deliver a customer message, starting the conversation if it is new.

        Signal-with-start: a duplicate first message never creates two conversations, and
        with a `message_id` it is not even kept twice. A closed conversation's id is never
        reused.

        `read_side`: the conversation writes every fact to the database promptly, so reads can
        be served from there (issue 8); False gives the recording rhythm of earlier versions.
        `search_attributes_at_close`: the conversation is listed as `open` until it closes and
        upserts its search attributes once, at the close (see `handoff.search_attributes`);
        False gives one upsert per transition, as earlier versions did. `facts_by_cause`: every
        fact is keyed by its cause (message id, update id, the question a bot answer answers),
        not by its number; False gives number keys, as earlier versions did. `lazy_timers`: the
        armed Temporal timer is kept while deadlines move later (`Conversation.replaces_armed_timer`);
        False replaces it at every change, as earlier versions did. `local_bot_answers` (read-side
        conversations): the bot answers a `SendMessage` update inside the workflow task, writing
        nothing, and the update answers with the bot's reply among its facts; False answers it
        in a `BotAnswer` activity that writes the answer itself, as earlier versions did (and as
        a message sent as a signal is always answered).
        """
        _check(lambda: check_text(text, "the message"))
        _check(lambda: check_text(customer_id, "the customer id", MAX_CUSTOMER_ID_CHARS))
        try:
            await self.temporal.start_workflow(
                ConversationWorkflow.run,
                ConversationInput(
                    conversation_id=conversation_id,
                    customer_id=customer_id,
                    continue_as_new_after_events=continue_as_new_after_events,
                    timers=self.timers,
                    handover_summaries=self.handover_summaries,
                    previous_conversation_id=previous_conversation_id,
                    read_side=read_side,
                    search_attributes_at_close=search_attributes_at_close,
                    facts_by_cause=facts_by_cause,
                    lazy_timers=lazy_timers,
                    local_bot_answers=local_bot_answers,
                ),
                id=workflow_id(conversation_id),
                task_queue=self.task_queue,
                start_signal="CustomerMessage",
                start_signal_args=[CustomerMessage(text=text, message_id=message_id)],
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=search_attributes.for_new_conversation(at_close_only=search_attributes_at_close),
            )
        except WorkflowAlreadyStartedError:
            raise ConversationClosed(CLOSED_MESSAGE) from None

    async def reopen(
        self,
        previous_conversation_id: str,
        text: str,
        *,
        conversation_id: str | None = None,
        message_id: str | None = None,
    ) -> str:
        """A customer message to the closed `previous_conversation_id` starts a new conversation
        with the bot, linked to it (its outcome and statistics stay as they were); the new id.
        Give `conversation_id` (and `message_id`) to make a retry land in the same one."""
        if self.store is None:
            raise HandoffError("reopening reads the closed conversation from the database: give the client a store")
        store = self.store
        previous = await asyncio.to_thread(store.summary, previous_conversation_id)
        if previous is None:
            raise ConversationNotFound(f"no conversation {previous_conversation_id!r}")
        if previous.status is not Status.CLOSED:
            raise WrongStatus(f"conversation {previous_conversation_id!r} is not closed: write to it instead")
        new_id = conversation_id or uuid.uuid4().hex
        await asyncio.to_thread(store.link, new_id, previous_conversation_id)
        await self.start_or_message(
            new_id,
            previous.customer_id,
            text,
            message_id=message_id,
            previous_conversation_id=previous_conversation_id,
        )
        return new_id

    async def send_message(self, conversation_id: str, text: str, *, message_id: str | None = None) -> None:
        """A customer message to an existing conversation."""
        _check(lambda: check_text(text, "the message"))
        await self._signal(conversation_id, "CustomerMessage", CustomerMessage(text=text, message_id=message_id))

    async def request_human(self, conversation_id: str, *, request_id: str | None = None) -> None:
        await self._signal(conversation_id, "RequestHuman", RequestHuman(request_id=request_id))

    # The same two as updates, answering with the facts they produced (what the API sends). An
    # update needs a worker to answer, where a signal is accepted while none runs; the same
    # `message_id` / `request_id` on both makes whichever lands second a no-op, so a caller may
    # send the signal when the update is not answered in time. `caller_records=True`: as below.

    async def send_message_result(
        self, conversation_id: str, text: str, *, message_id: str | None = None, caller_records: bool = False
    ) -> CommandResult:
        _check(lambda: check_text(text, "the message"))
        command = CustomerMessage(text=text, message_id=message_id, caller_records=caller_records)
        return await self._update(conversation_id, ConversationWorkflow.send_message, command, update_id=message_id)

    async def request_human_result(
        self, conversation_id: str, *, request_id: str | None = None, caller_records: bool = False
    ) -> CommandResult:
        command = RequestHuman(request_id=request_id, caller_records=caller_records)
        return await self._update(conversation_id, ConversationWorkflow.ask_for_human, command, update_id=request_id)

    # --- Agent side: updates, answered once the workflow has applied (or refused) them.

    async def take_over(self, conversation_id: str, agent: Agent) -> ConversationSummary:
        return (await self.take_over_result(conversation_id, agent)).summary()

    async def reply(self, conversation_id: str, agent: Agent, text: str) -> ConversationSummary:
        return (await self.reply_result(conversation_id, agent, text)).summary()

    async def hand_back(self, conversation_id: str, agent: Agent) -> ConversationSummary:
        return (await self.hand_back_result(conversation_id, agent)).summary()

    async def close(self, conversation_id: str, agent: Agent, outcome: Outcome | str) -> ConversationSummary:
        return (await self.close_result(conversation_id, agent, outcome)).summary()

    # The same commands, answering with the facts they produced too. `caller_records=True`
    # promises the caller writes them to the database at once (the API does: the database is
    # its read side), so the workflow records them later, as the backstop, not at once.

    async def take_over_result(
        self, conversation_id: str, agent: Agent, *, caller_records: bool = False, automatic: bool = False
    ) -> CommandResult:
        """With `capacities`, a slot of the agent's is reserved first (`AgentUnavailable` when
        they are at capacity) and the result is recorded here. `automatic`: automatic
        assignment's take-over (only from Waiting; the note says so)."""

        async def send(update_id: str | None) -> CommandResult:
            command = TakeOver(agent=agent, caller_records=caller_records or self.records_results, automatic=automatic)
            return await self._update(conversation_id, ConversationWorkflow.take_over, command, update_id=update_id)

        return await self._in_a_slot(conversation_id, agent, send, automatic=automatic, require_online=automatic)

    async def reply_result(
        self, conversation_id: str, agent: Agent, text: str, *, caller_records: bool = False
    ) -> CommandResult:
        command = AgentReply(agent=agent, text=text, caller_records=caller_records)
        return await self._update(conversation_id, ConversationWorkflow.reply, command)

    async def hand_back_result(
        self, conversation_id: str, agent: Agent, *, caller_records: bool = False
    ) -> CommandResult:
        command = HandBack(agent=agent, caller_records=caller_records)
        return await self._update(conversation_id, ConversationWorkflow.hand_back, command)

    async def close_result(
        self, conversation_id: str, agent: Agent, outcome: Outcome | str, *, caller_records: bool = False
    ) -> CommandResult:
        try:
            outcome = Outcome(outcome)
        except ValueError:
            allowed = ", ".join(o.value for o in Outcome)
            raise InvalidCommand(f"unknown outcome {outcome!r}; use one of: {allowed}") from None
        command = Close(agent=agent, outcome=outcome, caller_records=caller_records)
        return await self._update(conversation_id, ConversationWorkflow.close, command)

    async def transfer(
        self, conversation_id: str, agent: Agent, to: Agent, note: str | None = None
    ) -> ConversationSummary:
        """The holder `agent` gives the conversation to `to`; `note` is internal (agents only).
        With `capacities`, `to` must be online with a free slot (`AgentUnavailable` otherwise)."""
        if note is not None:
            _check(lambda: check_text(note, "the note"))

        async def send(update_id: str | None) -> CommandResult:
            command = Transfer(agent=agent, to=to, note=note, caller_records=self.records_results)
            return await self._update(conversation_id, ConversationWorkflow.transfer, command, update_id=update_id)

        if to.id == agent.id:
            return (await send(None)).summary()  # refused by the rules ("already holds"), whoever is online
        return (await self._in_a_slot(conversation_id, to, send, require_online=True)).summary()

    async def release(self, conversation_id: str, agent: Agent, *, offline: bool = False) -> ConversationSummary:
        """The holder puts the conversation back in the Waiting column, where it first asked
        (`offline`: at the front, because they went offline; see HANDOFF_OFFLINE_RETURNS)."""
        # The workflow records it too (caller_records=False): a release whose caller gave up
        # before writing it must still reach the database, or the agent would count it for ever.
        result = await self._update(
            conversation_id, ConversationWorkflow.release, Release(agent=agent, offline=offline)
        )
        if self.records_results:
            await self._record(result)  # the agent's slot frees as soon as it is written
        return result.summary()

    async def add_note(self, conversation_id: str, agent: Agent, text: str) -> ConversationSummary:
        """An internal note, shown to agents and never to the customer."""
        _check(lambda: check_text(text, "the note"))
        return await self._update(conversation_id, ConversationWorkflow.add_note, AddNote(agent=agent, text=text))

    async def rate(
        self, conversation_id: str, score: int, comment: str | None = None, window: timedelta = timedelta(hours=24)
    ) -> Rating:
        """The customer's satisfaction rating (1 to 5) of a conversation an agent closed, once,
        within `window` of the close (`HANDOFF_RATING_WINDOW`); kept in the database (the
        conversation's workflow has completed). `RatingRefused` says why one is not kept."""
        if self.store is None:
            raise HandoffError("ratings are kept in the database: give the client a store")
        if comment is not None:
            _check(lambda: check_text(comment, "the comment"))
        try:
            return await asyncio.to_thread(
                rate_conversation, self.store, conversation_id, score, comment, window, datetime.now(UTC)
            )
        except ValueError as invalid:
            raise InvalidCommand(str(invalid)) from None

    # --- AI assist (handoff/assist.py): read from and written to the database, no Temporal action.

    def _assist_store(self) -> Store:
        if self.store is None:
            raise HandoffError("AI assist reads the database: give the client a store")
        return self.store

    async def suggestions(self, conversation_id: str, agent: Agent) -> Suggestions:
        """Up to three replies for the customer's latest messages, best first, for the agent
        holding the conversation (as `GET /conversations/{id}/suggestions`)."""
        from handoff.assist import suggestions_for

        return await suggestions_for(self._assist_store(), self.assistant, conversation_id, agent.id, self.rewriter)

    async def suggestion_feedback(
        self, conversation_id: str, agent: Agent, suggestion_id: str, action: FeedbackAction
    ) -> Feedback:
        """What `agent` made of a suggestion they were shown: used, edited or dismissed."""
        from handoff.assist import record_feedback

        return await asyncio.to_thread(
            record_feedback, self._assist_store(), conversation_id, agent.id, suggestion_id, action, datetime.now(UTC)
        )

    async def exclude_from_suggestions(self, conversation_id: str, agent: Agent) -> int:
        """Keep this conversation's replies out of suggestions from now on; how many were taken out."""
        from handoff.assist import exclude_from_index

        store = self._assist_store()
        if await asyncio.to_thread(store.summary, conversation_id) is None:
            raise ConversationNotFound(f"no conversation {conversation_id!r}")
        return await asyncio.to_thread(exclude_from_index, store, conversation_id, agent.id)

    # --- Reading.

    async def summary(self, conversation_id: str) -> ConversationSummary:
        return await self._call(conversation_id, self.handle(conversation_id).query(ConversationWorkflow.summary))

    async def transcript(self, conversation_id: str, after_seq: int = 0) -> list[TranscriptEntry]:
        """Entries with a seq above `after_seq`, oldest first.

        A conversation that continued as new holds only its recent entries; the older ones come
        from the store (an error without one, rather than a silently shortened transcript).
        """
        held = await self._call(
            conversation_id, self.handle(conversation_id).query(ConversationWorkflow.transcript, after_seq)
        )
        if not held or held[0].seq == after_seq + 1:
            return held
        if self.store is None:
            raise HandoffError(f"entries {after_seq + 1} to {held[0].seq - 1} are in the database; give a store")
        older = [e for e in self.store.transcript(conversation_id) if after_seq < e.seq < held[0].seq]
        return older + held

    async def result(self, conversation_id: str) -> ConversationSummary:
        """Wait for the conversation to complete; its final summary."""
        return await self._call(conversation_id, self.handle(conversation_id).result())

    # --- Issue 10: agents at work (docs/agents.md). Database only, but for offline returns.

    def _agents_store(self) -> Store:
        if self.store is None:
            raise HandoffError("agents' status and counts are kept in the database: give the client a store")
        return self.store

    async def set_status(
        self, agent: Agent, status: AgentStatus | str, *, offline_returns: bool = False
    ) -> presence.Presence:
        """Set `agent`'s status (online, away, offline); going offline with `offline_returns` puts
        what they hold back in the Waiting column, at the front, each with a note."""
        from handoff.assignment import change_status

        try:
            status = AgentStatus(status)
        except ValueError:
            allowed = ", ".join(s.value for s in AgentStatus)
            raise InvalidCommand(f"unknown status {status!r}; use one of: {allowed}") from None
        return await change_status(self, self._agents_store(), agent, status, offline_returns=offline_returns)

    async def agents(self, agents: list[Agent]) -> list[presence.AtWork]:
        """These agents with status, conversations held and capacity (as `GET /agents`)."""
        return await asyncio.to_thread(presence.team, self._agents_store(), agents, self.capacities or Capacities())

    async def agent_stats(
        self, agents: list[Agent], since: datetime | None = None, until: datetime | None = None
    ) -> list[presence.AgentWork]:
        """Per agent: time online, occupancy, assignments automatic and manual (as `GET /stats/agents`)."""
        return await asyncio.to_thread(
            presence.work_stats, self._agents_store(), agents, self.capacities or Capacities(), since, until
        )

    # --- Issue 10: capacity. Where the counts live and why they cannot drift: handoff/presence.py.

    @property
    def records_results(self) -> bool:
        """Whether this client writes the facts of the commands that change who holds what
        (take-over, transfer, release) itself, at once: it does when it enforces capacity, whose
        counts are read from the conversations' rows."""
        return self.capacities is not None and self.store is not None

    async def _in_a_slot(
        self,
        conversation_id: str,
        agent: Agent,
        send: Callable[[str | None], Awaitable[CommandResult]],
        *,
        automatic: bool = False,
        require_online: bool = False,
    ) -> CommandResult:
        """Send a command that gives `agent` the conversation within a slot reserved for it.

        The slot is reserved under the agent's lock before the update is sent (so concurrent
        take-overs are counted one after another), and deleted once the outcome is known: at once
        when the workflow refuses, after the facts are written when it accepts. Any other end (a
        timeout, an outage, this process dying) leaves the slot, counted, until `heal_slots`
        learns the update's outcome."""
        store, capacities = self.store, self.capacities
        if store is None or capacities is None:
            return await send(None)
        await self.heal_slots(agent.id)
        update_id = uuid.uuid4().hex
        try:
            reserved = await asyncio.to_thread(
                presence.reserve,
                store,
                agent,
                conversation_id,
                update_id,
                capacities.of(agent.id),
                automatic=automatic,
                require_online=require_online,
            )
        except presence.SlotRefused as refused:
            raise AgentUnavailable(refused.message, refused.code) from None
        if not reserved:
            result = await send(update_id)  # the agent holds it already: nothing to count
            await self._record(result)
            return result
        try:
            result = await send(update_id)
        except HandoffError:
            await asyncio.to_thread(presence.settle, store, update_id)  # refused: nothing changed
            raise
        await self._settle(presence.Slot(update_id, agent.id, conversation_id, datetime.now(UTC), automatic), result)
        return result

    async def _settle(self, slot: presence.Slot, result: CommandResult) -> None:
        """Write a command's facts, then free the slot (the row now counts the conversation). If
        the write fails, the slot stays until a later `heal_slots` writes them."""
        assert self.store is not None
        if await self._record(result):
            await asyncio.to_thread(presence.settle, self.store, slot.update_id, taken=slot)

    async def _record(self, result: CommandResult) -> bool:
        if self.store is None:
            return False
        if not result.facts:
            return True
        try:
            await asyncio.to_thread(self.store.record, RecordBatch(summary=result.summary(), facts=result.facts))
        except SQLAlchemyError as error:
            logging.getLogger("handoff.client").warning(
                "Database error (%s): the workflow's recorder writes these facts", type(error).__name__
            )
            return False
        return True

    async def heal_slots(self, agent_id: str | None = None) -> int:
        """Settle the slots older than `slot_stale_after` whose take-over's outcome was lost, by
        asking Temporal for the update's outcome by its id (a poll, not a billable action): not
        found or refused, the slot goes; carried out, its facts are written and the slot goes;
        still undecided (admitted, no worker yet), it stays. "Not found" is final because every
        caller stops sending (and retrying) an update before its slot is that old. How many
        were settled."""
        store = self.store
        if store is None:
            return 0
        now = datetime.now(UTC)
        stale = await asyncio.to_thread(presence.stale_slots, store, now, agent_id, self.slot_stale_after)
        # All at once: each poll may wait its 2 s for an update no worker has decided yet.
        return sum(await asyncio.gather(*(self._heal(store, slot) for slot in stale)))

    async def _heal(self, store: Store, stale: presence.Slot) -> bool:
        """One stale slot (see `heal_slots`); whether it was settled."""
        handle = self.handle(stale.conversation_id).get_update_handle(stale.update_id, result_type=CommandResult)
        try:
            result = await handle.result(rpc_timeout=timedelta(seconds=2))
        except WorkflowUpdateFailedError:
            await asyncio.to_thread(presence.settle, store, stale.update_id)
            return True
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            return False  # admitted, not yet decided: still counted
        except RPCError as e:
            if e.status is not RPCStatusCode.NOT_FOUND:
                return False  # Temporal unavailable: ask again later
            # Never reached the workflow, and never will: the caller that sent it gave up.
            await asyncio.to_thread(presence.settle, store, stale.update_id)
            return True
        if not await self._record(CommandResult.model_validate(result)):
            return False
        await asyncio.to_thread(presence.settle, store, stale.update_id, taken=stale)
        return True

    # --- Plumbing.

    async def _signal(self, conversation_id: str, name: str, arg: Any) -> None:
        await self._call(conversation_id, self.handle(conversation_id).signal(name, arg))

    async def _update(
        self, conversation_id: str, update: Any, arg: Any, *, update_id: str | None = None
    ) -> CommandResult:
        """`update_id`: Temporal answers a retry under the same id with the first call's result,
        and the workflow applies an update id once (it keys the command by it), so an update the
        server aborted is sent again under its id (`retry_workflow_not_ready`)."""
        update_id = update_id or str(uuid.uuid4())
        handle = self.handle(conversation_id)
        try:
            result = await retry_workflow_not_ready(
                lambda: self._call(conversation_id, handle.execute_update(update, arg, id=update_id))
            )
            return CommandResult.model_validate(result)
        except WorkflowUpdateFailedError as failed:
            raise _from_update_failure(failed) from None

    async def _call(self, conversation_id: str, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except RPCError as e:
            if e.status is RPCStatusCode.NOT_FOUND:
                raise await self._not_running(conversation_id) from None
            raise

    async def _not_running(self, conversation_id: str) -> HandoffError:
        """Tell a closed conversation from one that never existed."""
        try:
            description = await self.handle(conversation_id).describe()
        except RPCError as e:
            if e.status is RPCStatusCode.NOT_FOUND:
                return ConversationNotFound(f"no conversation {conversation_id!r}")
            raise
        if description.status is WorkflowExecutionStatus.COMPLETED:
            return ConversationClosed(CLOSED_MESSAGE)
        return HandoffError(f"the conversation's workflow has ended ({description.status and description.status.name})")


UPDATE_ATTEMPTS = 5
"""How often an update the server aborted with "workflow not ready" is sent (backing off from
0.2 s: about 3 s in all, well inside an API call's Temporal timeout)."""


def workflow_not_ready(error: RPCError) -> bool:
    """The server aborted an update because the workflow task carrying it failed or the run
    continued as new under it ("Unable to perform workflow execution update due to unexpected
    workflow task failure"): nothing was applied, and the same update id may be sent again."""
    return error.status is RPCStatusCode.FAILED_PRECONDITION and any(
        detail.Is(WorkflowNotReadyFailure.DESCRIPTOR) for detail in error.grpc_status.details
    )


async def retry_workflow_not_ready(call: Callable[[], Awaitable[T]], attempts: int = UPDATE_ATTEMPTS) -> T:
    """`call()`, again while the server answers "workflow not ready" (at most `attempts` times).
    A worker starved of CPU (a workflow task past its deadline) or an update caught by a
    continue-as-new gets this answer; the agent or customer should not see it as an error."""
    for attempt in range(attempts - 1):
        try:
            return await call()
        except RPCError as error:
            if not workflow_not_ready(error):
                raise
            await asyncio.sleep(0.2 * 2**attempt)
    return await call()


def _from_update_failure(failed: WorkflowUpdateFailedError) -> HandoffError:
    cause = failed.cause
    if isinstance(cause, ApplicationError) and cause.type in ERRORS_BY_CODE:
        details = cause.details[0] if cause.details else {}
        holder = Agent.model_validate(details["holder"]) if isinstance(details, dict) and "holder" in details else None
        return ERRORS_BY_CODE[cause.type](cause.message, holder=holder)
    return HandoffError(f"the command failed: {cause}")


def _check(rule: Any) -> None:
    """Run a lifecycle rule client-side, so a bad message is refused before it is sent."""
    try:
        rule()
    except Rejected as rejected:
        raise ERRORS_BY_CODE[rejected.code](rejected.message) from None
