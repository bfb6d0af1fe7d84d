"""The conversation workflow: one durable execution per support conversation.

The rules live in `handoff.lifecycle`; this workflow only orchestrates around them:
- it turns signals and updates into lifecycle commands (updates are validated first, so a
  refused agent command is answered at once and leaves no trace in history);
- a bot loop runs the `BotAnswer` activity for each customer message the bot owes an answer
  (in new conversations as a local activity inside the workflow task, whose answer a waiting
  `SendMessage` update returns to its caller);
- a recorder loop writes the outbox of facts with the idempotent `RecordFacts` activity, so a
  database outage delays statistics but never the bot;
- search attributes follow every transition for ops;
- it continues as new when Temporal suggests it, carrying the whole state (outbox and
  unanswered messages included), so a conversation can run for months.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.conversation import ConversationActivities
    from handoff import search_attributes
    from handoff.lifecycle import (
        BOT_UNAVAILABLE_ANSWER,
        TRANSCRIPT_KEPT_ACROSS_RUNS,
        Conversation,
        Rejected,
        new_state,
    )
    from handoff.models import (
        AddNote,
        AgentCommand,
        AgentReply,
        BotAnswered,
        BotQuestion,
        BotReply,
        Close,
        Command,
        CommandResult,
        ConversationInput,
        ConversationSummary,
        CustomerMessage,
        Fact,
        HandBack,
        RecordBatch,
        Release,
        RequestHuman,
        TakeOver,
        TimerFired,
        TranscriptEntry,
        Transfer,
    )

UpdateCommand = TakeOver | AgentReply | HandBack | Close | Transfer | Release | AddNote | CustomerMessage | RequestHuman
KeyedCommandT = TypeVar("KeyedCommandT", bound="AgentCommand | CustomerMessage | RequestHuman")

# Recording retries until it succeeds: a conversation waits out a database outage rather than fail.
BOT_ANSWER_TIMEOUT = timedelta(seconds=10)
RECORD_TIMEOUT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=15))

BOT_ANSWER_ATTEMPTS = 5
"""A bot answer is tried this often, then the customer gets `BOT_UNAVAILABLE_ANSWER`: no message
can hold a conversation (or a worker slot) for ever. Attempts are counted only when a worker ran
one and it failed or timed out, so a Temporal or worker outage, where nothing runs, costs none
(which is why there is no schedule-to-close timeout: it would count time spent waiting for a
worker). Five attempts take at most about 5 × 10 s plus 3 s of backoff."""
BOT_ANSWER_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=15),
    maximum_attempts=BOT_ANSWER_ATTEMPTS,
)

LOCAL_BOT_ANSWER_DEADLINE = timedelta(seconds=2)
LOCAL_BOT_ANSWER_ATTEMPTS = 4
"""A bot answer inside the workflow task (for a waiting `SendMessage`) is tried at most this
often (after 0.2, 0.4 and 0.8 s of backoff) and for at most the deadline above, which also ends
an attempt that hangs; then the customer gets `BOT_UNAVAILABLE_ANSWER`. Both keep it below the
API's wait for an update (half its Temporal timeout, 2.5 s by default), so the API gets the
answer's facts to write rather than give up and leave them to the recorder's backstop. (The
deadline alone does not stop retries between attempts, hence the count.)"""
LOCAL_BOT_ANSWER_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_attempts=LOCAL_BOT_ANSWER_ATTEMPTS,
)

# One RecordFacts call stays well under Temporal's 2 MB payload limit.
RECORD_BATCH_FACTS = 500
RECORD_BATCH_CHARS = 500_000

TIMERS_PATCH = "timers"
"""Issue 9: the run loop waits for the earliest pending timer (`workflow.patched`, so histories
recorded before keep replaying)."""


def rejection_error(rejected: Rejected) -> ApplicationError:
    """How a refused command reaches the caller of an update: type = the rejection code."""
    details: dict[str, Any] = {"code": rejected.code.value, "message": rejected.message}
    if rejected.holder is not None:
        details["holder"] = rejected.holder.model_dump()
    return ApplicationError(rejected.message, details, type=rejected.code.value, non_retryable=True)


@workflow.defn(name="Conversation")
class ConversationWorkflow:
    @workflow.init
    def __init__(self, input: ConversationInput) -> None:
        state = input.state or new_state(
            input.conversation_id,
            input.customer_id,
            workflow.now(),
            timers=input.timers,
            previous_conversation_id=input.previous_conversation_id,
        )
        if input.state is None and input.read_side:
            state.read_side = True  # carried across continue-as-new with the rest of the state
        if input.state is None and input.handover_summaries:
            state.handover_summaries = True
        if input.state is None and input.search_attributes_at_close:
            state.search_attributes_at_close = True
        if input.state is None and input.facts_by_cause:
            state.facts_by_cause = True
        if input.state is None and input.lazy_timers:
            state.lazy_timers = True
        if input.state is None and input.local_bot_answers and state.read_side:
            state.local_bot_answers = True
        self._conversation = Conversation(state)
        self._continue_as_new_after_events = input.continue_as_new_after_events
        self._draining = False  # set before continue-as-new: start no new activity
        self._bot_busy = False
        self._bot_carrying = False  # a bot answer is writing facts from the outbox
        self._recorder_busy = False
        # Local bot answers that a `SendMessage` caller waits for: the answer's facts, by question seq.
        self._answers_for_caller: dict[int, list[Fact]] = {}

    @workflow.run
    async def run(self, input: ConversationInput) -> ConversationSummary:
        self._upsert_search_attributes()
        loops = [asyncio.create_task(self._bot_loop()), asyncio.create_task(self._record_loop())]
        await self._run_timers_until(
            # A read-side conversation lets a bot answer in flight land first: it may be shown already.
            lambda: (
                (self._conversation.finished and not (self._bot_busy and self._conversation.state.read_side))
                or self._continue_as_new_due()
            )
        )
        if not self._conversation.finished:
            # Stop starting activities, let the ones in flight land, then carry the state over.
            self._draining = True
            await workflow.wait_condition(
                lambda: not self._bot_busy and not self._recorder_busy and workflow.all_handlers_finished()
            )
            self._conversation.compact_transcript(keep=TRANSCRIPT_KEPT_ACROSS_RUNS)
            workflow.continue_as_new(
                ConversationInput(
                    conversation_id=input.conversation_id,
                    customer_id=input.customer_id,
                    state=self._conversation.state,
                    continue_as_new_after_events=self._continue_as_new_after_events,
                    read_side=self._conversation.state.read_side,
                )
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        for loop in loops:
            loop.cancel()
        return self._conversation.state.summary()

    async def _run_timers_until(self, done: Callable[[], bool]) -> None:
        """Wait until `done`, firing each timer of the rules layer when its deadline passes.

        One Temporal timer at a time, for the earliest deadline. The rules say when it is
        replaced (`Conversation.replaces_armed_timer`: in new conversations, only by an earlier
        deadline or none pending); a deadline moved later keeps it, and when it fires the loop
        applies what is due then or arms one timer for the rest. Deadlines are absolute and
        carried across continue-as-new, so a timer started in an earlier run fires at its
        original time (at once if that has passed)."""
        while not done():
            timer = self._conversation.next_timer()
            if timer is None:
                # Conversations without timers (all those started before issue 9) wait as before.
                await workflow.wait_condition(lambda: done() or self._conversation.next_timer() is not None)
                continue
            if not workflow.patched(TIMERS_PATCH):
                # Only a history recorded before the patch gets here, and those never had timers.
                await workflow.wait_condition(done)
                continue
            remaining = (timer.deadline - workflow.now()).total_seconds()
            if remaining > 0:
                try:
                    await workflow.wait_condition(partial(self._stop_waiting, done, timer), timeout=remaining)
                    continue
                except TimeoutError:
                    if self._conversation.state.lazy_timers:
                        continue  # the deadlines may have moved since: apply what is due, or wait on
            self._apply(timer)

    def _stop_waiting(self, done: Callable[[], bool], armed: TimerFired) -> bool:
        return done() or self._conversation.replaces_armed_timer(armed)

    # --- Customer side: signals (fire and forget: accepted while no worker runs) ...

    @workflow.signal(name="CustomerMessage")
    def customer_message(self, command: CustomerMessage) -> None:
        self._apply_signal(command)

    @workflow.signal(name="RequestHuman")
    def request_human(self, command: RequestHuman) -> None:
        self._apply_signal(command)

    # ... or updates, as the API sends them: the answer carries the facts, which the API writes
    # itself (`caller_records`), so they cost no `RecordFacts` run; a refused message is
    # answered at once by the validator and leaves no trace in history (issue 8, cost).

    @workflow.update(name="SendMessage")
    async def send_message(self, command: CustomerMessage) -> CommandResult:
        result = self._apply_update(command)
        asked = self._conversation.answer_owed_to(result.facts) if command.caller_records else None
        if asked is None or self._bot_busy:
            return result
        return await self._with_bot_answer(asked, result)

    async def _with_bot_answer(self, asked: int, result: CommandResult) -> CommandResult:
        """Wait for the bot's local answer to message `asked` (normally within this workflow
        task) and answer with its facts after the message's (the answer, a request for a person
        the bot made), for the caller to write: the update's answer reaches the caller only once
        the task that numbered them is durable. Continue-as-new can cut the wait short: then the
        next run answers with the `BotAnswer` activity, which writes the answer itself."""
        self._answers_for_caller[asked] = []
        try:
            await workflow.wait_condition(
                lambda: not self._conversation.owes_answer(asked) or (self._draining and not self._bot_busy)
            )
            answer = self._answers_for_caller[asked]
        finally:
            del self._answers_for_caller[asked]
        return CommandResult(**self._conversation.state.summary().model_dump(), facts=[*result.facts, *answer])

    @send_message.validator
    def _validate_send_message(self, command: CustomerMessage) -> None:
        self._validate(command)

    @workflow.update(name="AskForHuman")
    def ask_for_human(self, command: RequestHuman) -> CommandResult:
        return self._apply_update(command)

    @ask_for_human.validator
    def _validate_ask_for_human(self, command: RequestHuman) -> None:
        self._validate(command)

    # --- Agent side: updates (the caller gets an answer) ...

    @workflow.update(name="TakeOver")
    def take_over(self, command: TakeOver) -> CommandResult:
        return self._apply_update(command)

    @take_over.validator
    def _validate_take_over(self, command: TakeOver) -> None:
        self._validate(command)

    @workflow.update(name="Reply")
    def reply(self, command: AgentReply) -> CommandResult:
        return self._apply_update(command)

    @reply.validator
    def _validate_reply(self, command: AgentReply) -> None:
        self._validate(command)

    @workflow.update(name="HandBack")
    def hand_back(self, command: HandBack) -> CommandResult:
        return self._apply_update(command)

    @hand_back.validator
    def _validate_hand_back(self, command: HandBack) -> None:
        self._validate(command)

    @workflow.update(name="Close")
    def close(self, command: Close) -> CommandResult:
        return self._apply_update(command)

    @close.validator
    def _validate_close(self, command: Close) -> None:
        self._validate(command)

    @workflow.update(name="Transfer")
    def transfer(self, command: Transfer) -> CommandResult:
        return self._apply_update(command)

    @transfer.validator
    def _validate_transfer(self, command: Transfer) -> None:
        self._validate(command)

    @workflow.update(name="Release")
    def release(self, command: Release) -> CommandResult:
        return self._apply_update(command)

    @release.validator
    def _validate_release(self, command: Release) -> None:
        self._validate(command)

    @workflow.update(name="AddNote")
    def add_note(self, command: AddNote) -> CommandResult:
        return self._apply_update(command)

    @add_note.validator
    def _validate_add_note(self, command: AddNote) -> None:
        self._validate(command)

    # --- ... and the same commands as signals, for backends that fire and forget.

    @workflow.signal(name="AgentTakeOver")
    def take_over_signal(self, command: TakeOver) -> None:
        self._apply_signal(command)

    @workflow.signal(name="AgentReply")
    def reply_signal(self, command: AgentReply) -> None:
        self._apply_signal(command)

    @workflow.signal(name="AgentHandBack")
    def hand_back_signal(self, command: HandBack) -> None:
        self._apply_signal(command)

    @workflow.signal(name="AgentClose")
    def close_signal(self, command: Close) -> None:
        self._apply_signal(command)

    # --- Queries.

    @workflow.query(name="Summary")
    def summary(self) -> ConversationSummary:
        return self._conversation.state.summary()

    @workflow.query(name="Transcript")
    def transcript(self, after_seq: int = 0) -> list[TranscriptEntry]:
        """Held transcript entries with a seq above `after_seq`; after continue-as-new the oldest
        ones are only in the database (`HandoffClient.transcript` joins both)."""
        return self._conversation.entries_after(after_seq)

    @workflow.query(name="RejectedSignals")
    def rejected_signals(self) -> int:
        return self._conversation.state.rejected_signals

    # --- Applying commands.

    def _with_update_id(self, command: KeyedCommandT) -> KeyedCommandT:
        """Key an update by its Temporal update id, so a retry after continue-as-new (which
        Temporal may deliver to the new run) is applied once."""
        update = workflow.current_update_info()
        if update is None:
            return command
        field = "message_id" if isinstance(command, CustomerMessage) else "request_id"
        if getattr(command, field) is None:
            return cast(KeyedCommandT, command.model_copy(update={field: update.id}))
        return command

    def _validate(self, command: Command) -> None:
        if isinstance(command, AgentCommand | CustomerMessage | RequestHuman):
            command = self._with_update_id(command)
        try:
            self._conversation.check(command)
        except Rejected as rejected:
            raise rejection_error(rejected) from None

    def _apply(self, command: Command) -> ConversationSummary:
        return self._apply_command(command)[0]

    def _apply_update(self, command: UpdateCommand) -> CommandResult:
        """An update's answer carries the facts it produced: a caller that writes them at once
        (the API) says so, and then the workflow records them later rather than at once."""
        summary, facts = self._apply_command(command)
        if command.caller_records:
            self._conversation.caller_writes(facts)
        return CommandResult(**summary.model_dump(), facts=facts)

    def _apply_command(self, command: Command, now: datetime | None = None) -> tuple[ConversationSummary, list[Fact]]:
        if isinstance(command, AgentCommand | CustomerMessage | RequestHuman):
            command = self._with_update_id(command)
        before = self._search_attributes()
        try:
            facts = self._conversation.apply(command, now or workflow.now())
        except Rejected as rejected:
            # Reached only if the state changed between validator and handler.
            raise rejection_error(rejected) from None
        if self._search_attributes() != before:
            self._upsert_search_attributes()
        return self._conversation.state.summary(), facts

    def _apply_signal(self, command: Command) -> None:
        try:
            self._apply(command)
        except ApplicationError as refused:
            # A signal has no caller to answer: count it and log the code (never the text).
            self._conversation.state.rejected_signals += 1
            workflow.logger.warning("Refused %s signal: %s", command.kind, refused.type)

    def _search_attributes(self) -> dict[str, str]:
        state = self._conversation.state
        return search_attributes.values(state, at_close_only=state.search_attributes_at_close)

    def _upsert_search_attributes(self) -> None:
        wanted = self._search_attributes()
        current = workflow.info().typed_search_attributes
        updates: list[SearchAttributeUpdate[Any]] = []
        for key in search_attributes.ALL:
            value = wanted[key.name]
            if (current.get(key) or "") != value:
                updates.append(key.value_set(value) if value else key.value_unset())
        if updates:
            workflow.upsert_search_attributes(updates)

    # --- The loops that run activities.

    async def _bot_loop(self) -> None:
        state = self._conversation.state
        while True:
            await workflow.wait_condition(lambda: bool(state.bot_queue) and not self._draining)
            seq = state.bot_queue[0]
            if state.local_bot_answers and seq in self._answers_for_caller:
                # Only for a `SendMessage` caller waiting, and only in the activation that accepted
                # its update (`send_message`: the bot was idle and this message next): the
                # acceptance is in this task's output. A task that produced nothing while a local
                # activity ran (completed early to answer a query) is folded into the next one on
                # replay, and what it held replayed at that later time; a message sent as a
                # signal, or behind others, gets the `BotAnswer` activity below.
                await self._answer_locally(seq)
                continue
            # Unrecorded facts ride along with the answer (unless the recorder is writing them).
            carried = (
                [] if self._recorder_busy else self._conversation.take_outbox(RECORD_BATCH_FACTS, RECORD_BATCH_CHARS)
            )
            # Read-side conversations reserve the answer's place first, so the activity writes it.
            answer = self._conversation.reserve_bot_answer(seq) if state.read_side else None
            record = RecordBatch(summary=state.summary(), facts=carried) if carried else None
            self._bot_busy = True
            self._bot_carrying = bool(carried)
            try:
                reply = await workflow.execute_activity_method(
                    ConversationActivities.bot_answer,
                    BotQuestion(text=self._conversation.entry(seq).text, record=record, answer=answer),
                    start_to_close_timeout=BOT_ANSWER_TIMEOUT,
                    retry_policy=BOT_ANSWER_RETRY,
                )
            except ActivityError as failed:
                # Every attempt failed. Histories recorded before the attempt limit never reach
                # this branch (their answers retried without end), so they replay unchanged.
                # The carried facts stay in the outbox: the recorder or the next answer writes them.
                workflow.logger.warning("Bot answer failed after all attempts: %s", type(failed.cause).__name__)
                reply = BotReply(text=BOT_UNAVAILABLE_ANSWER, fallback=True)
            finally:
                self._bot_busy = self._bot_carrying = False
            if reply.recorded:
                self._conversation.mark_recorded(carried)
            if answer is None:
                self._apply(
                    BotAnswered(reply_to=seq, text=reply.text, wants_human=reply.wants_human, fallback=reply.fallback)
                )
                continue
            answered = BotAnswered(
                reply_to=seq,
                text=reply.text,
                wants_human=reply.wants_human,
                answer_seq=answer.entry.seq if answer.entry else None,
                answer_fact=answer.number,
                answer_cause=answer.cause,
                answered_at=reply.answered_at,
                fallback=reply.fallback,
            )
            facts = self._apply_command(answered)[1]
            if reply.answer_recorded:
                # The activity wrote the answer: the recorder writes it again later, as the backstop.
                self._conversation.caller_writes([f for f in facts if f.number == answer.number])

    async def _answer_locally(self, seq: int) -> None:
        """The bot's answer to message `seq` inside the workflow task: a local activity, so no
        activity task and no second workflow task per answer (docs/benchmarks.md, "Worker CPU",
        stop 21). It only asks the bot and writes nothing, because nothing outside the workflow
        may see a fact number before the task that assigned it is durable, and a local activity
        runs before that. The answer's facts go to the `SendMessage` caller waiting for them (or,
        if continue-as-new cut that wait short, to the recorder)."""
        self._bot_busy = True
        try:
            reply = await workflow.execute_local_activity_method(
                ConversationActivities.bot_answer,
                BotQuestion(text=self._conversation.entry(seq).text),
                schedule_to_close_timeout=LOCAL_BOT_ANSWER_DEADLINE,
                retry_policy=LOCAL_BOT_ANSWER_RETRY,
            )
        except (ActivityError, ApplicationError, TemporalTimeoutError) as failed:
            # A local activity's last failure comes as itself (the bot's error, or its timeout),
            # not wrapped in an ActivityError as a regular activity's.
            cause = failed.type if isinstance(failed, ApplicationError) else type(failed).__name__
            workflow.logger.warning("Bot answer failed after all attempts: %s", cause)
            reply = BotReply(text=BOT_UNAVAILABLE_ANSWER, fallback=True)
        finally:
            self._bot_busy = False
        # Not `workflow.now()`: which activation resolves a local activity, and so its time, can
        # differ between the live run and a replay; the activity's clock is recorded in its marker.
        # Never before the conversation's last change (another machine's clock may lag).
        state = self._conversation.state
        at = max(reply.answered_at or state.updated_at, state.updated_at)
        answered = BotAnswered(reply_to=seq, text=reply.text, wants_human=reply.wants_human, fallback=reply.fallback)
        facts = self._apply_command(answered, at)[1]
        waiting = self._answers_for_caller.get(seq)
        if waiting is not None:
            waiting.extend(facts)
            self._conversation.caller_writes(facts)

    async def _record_loop(self) -> None:
        state = self._conversation.state
        while True:
            # Not while a bot answer carries facts: it may be writing these very ones.
            await workflow.wait_condition(
                lambda: self._conversation.recording_due() and not self._draining and not self._bot_carrying
            )
            batch = self._conversation.take_outbox(RECORD_BATCH_FACTS, RECORD_BATCH_CHARS)
            self._recorder_busy = True
            try:
                await workflow.execute_activity_method(
                    ConversationActivities.record_facts,
                    RecordBatch(summary=state.summary(), facts=batch),
                    start_to_close_timeout=RECORD_TIMEOUT,
                    retry_policy=ACTIVITY_RETRY,
                )
            finally:
                self._recorder_busy = False
            self._conversation.mark_recorded(batch)

    def _continue_as_new_due(self) -> bool:
        info = workflow.info()
        limit = self._continue_as_new_after_events
        return info.is_continue_as_new_suggested() or (limit is not None and info.get_current_history_length() >= limit)
