"""The conversation lifecycle: every rule of bot ⇄ waiting ⇄ human ⇄ closed, in one place.

No Temporal imports and no I/O: the workflow calls `Conversation.apply` for each command
and only orchestrates (activities, search attributes, continue-as-new); the tests drive the
same class directly, exhaustively and with random command sequences.

`check` never mutates, so the workflow can use it as an Update validator (a rejected
command leaves no trace in history) and the signal path applies exactly the same rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from handoff import handover
from handoff.availability import automatic_joined_note, offline_note
from handoff.models import (
    AddNote,
    Agent,
    AgentCommand,
    AgentReply,
    BotAnswered,
    Close,
    Command,
    ConversationState,
    CustomerMessage,
    EntryKind,
    Fact,
    FactKind,
    HandBack,
    Outcome,
    Release,
    RequestHuman,
    Status,
    TakeOver,
    TimerFired,
    TimerKind,
    TimerSettings,
    TranscriptEntry,
    Transfer,
)

MAX_MESSAGE_CHARS = 10_000
"""Longest customer or agent message accepted, in characters."""

RECORDED_PROMPTLY = frozenset(
    {
        FactKind.HUMAN_REQUESTED,
        FactKind.TAKEN_OVER,
        FactKind.HANDED_BACK,
        FactKind.CLOSED,
        # Issue 9: they move or flag conversations in the live columns too.
        FactKind.TRANSFERRED,
        FactKind.RELEASED,
        FactKind.WAITING_SLA_BREACHED,
        FactKind.FIRST_REPLY_SLA_BREACHED,
    }
)
"""Transitions the live columns must show at once; other facts may wait for the next write."""

UNRECORDED_FACTS_KEPT = 50
"""Past this many unrecorded facts, they are written without waiting for a transition."""

TRANSCRIPT_KEPT_ACROSS_RUNS = 100
"""Entries a conversation still holds after continue-as-new (the rest are in the database)."""

SEEN_REQUEST_IDS_KEPT = 500
FALLBACKS_KEPT = 20
"""Fallback answers remembered for the handover summary (it quotes the latest three)."""
"""How many recent message and request ids are remembered to apply redeliveries once."""

CUSTOMER_AUTHOR = "customer"
BOT_AUTHOR = "bot"
SYSTEM_AUTHOR = "system"


def joined_note(agent: Agent) -> str:
    return f"{agent.name} joined the conversation"


def left_note(agent: Agent) -> str:
    return f"{agent.name} left the conversation"


def closed_note(agent: Agent, outcome: Outcome) -> str:
    label = "resolved" if outcome is Outcome.RESOLVED else "not resolved"
    return f"{agent.name} closed the conversation as {label}"


HUMAN_REQUESTED_NOTE = "The customer asked for a person"


def format_duration(duration: timedelta) -> str:
    """A duration as the settings spell it: 24h, 10m, 90s."""
    seconds = int(duration.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def inactive_note(duration: timedelta) -> str:
    return f"Closed after {format_duration(duration)} without a message"


def transferred_note(agent: Agent, to: Agent) -> str:
    return f"{agent.name} transferred the conversation to {to.name}"


def released_note(agent: Agent) -> str:
    return f"{agent.name} returned the conversation to the queue"


def no_first_reply_note(agent: Agent) -> str:
    return f"{agent.name} did not reply in time; the conversation is back in the queue"


TIMER_STATUSES: dict[TimerKind, frozenset[Status]] = {
    TimerKind.BOT_IDLE_CLOSE: frozenset({Status.BOT, Status.WAITING}),
    TimerKind.HUMAN_IDLE_CLOSE: frozenset({Status.HUMAN}),
    TimerKind.WAITING_SLA: frozenset({Status.WAITING}),
    TimerKind.FIRST_REPLY_SLA: frozenset({Status.HUMAN}),
}
"""Where each timer can be pending: leaving these statuses makes it moot (it is cancelled).
The bot-idle timer runs while no agent holds the conversation, the Waiting column included."""

BOT_UNAVAILABLE_ANSWER = (
    'Sorry, I can\'t answer that right now. You can rephrase, or say "talk to a human" and a member of our team '
    "will help."
)
"""What the customer sees when the bot could not answer a message after all its attempts: a
fixed text here rather than the knowledge base's fallback, because it must not depend on the
bot (which is what failed) nor on which worker's configuration replays the workflow."""

CLOSED_MESSAGE = "the conversation is closed and accepts nothing more"
"""Why a closed conversation refuses a command, wherever that is found out."""


class RejectionCode(StrEnum):
    CLOSED = "conversation_closed"
    HELD_BY_OTHER = "held_by_other_agent"
    NOT_ASSIGNED = "not_assigned_agent"
    WRONG_STATUS = "wrong_status"
    INVALID = "invalid_input"
    INVALID_TARGET = "invalid_transfer_target"


class Rejected(Exception):
    """A command the rules refuse; nothing was changed."""

    def __init__(self, code: RejectionCode, message: str, holder: Agent | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.holder = holder


def new_state(
    conversation_id: str,
    customer_id: str,
    now: datetime,
    timers: TimerSettings | None = None,
    previous_conversation_id: str | None = None,
) -> ConversationState:
    return ConversationState(
        conversation_id=conversation_id,
        customer_id=customer_id,
        status=Status.BOT,
        started_at=now,
        updated_at=now,
        timers=timers,
        previous_conversation_id=previous_conversation_id,
    )


def request_key(command: Command) -> str | None:
    """The idempotency key of a command from outside, if its sender gave one."""
    if isinstance(command, CustomerMessage):
        return None if command.message_id is None else f"message:{command.message_id}"
    if isinstance(command, RequestHuman):
        return None if command.request_id is None else f"human:{command.request_id}"
    if isinstance(command, AgentCommand):
        return None if command.request_id is None else f"request:{command.request_id}"
    return None


def fact_cause(command: Command, part: str) -> str | None:
    """What keys the facts a new (issue 9) command produces: its cause, not a number.

    `part` tells apart the several facts one command produces. None (number keys) for a
    command without an idempotency key, which only tests send."""
    if isinstance(command, TimerFired):
        return f"timer:{command.timer.value}:{command.deadline.isoformat()}:{part}"
    if isinstance(command, AgentCommand) and command.request_id is not None:
        return f"{command.kind}:{command.request_id}:{part}"
    return None


def _parts(cause: str | None, *parts: str) -> list[str | None]:
    """The causes of the several facts one cause produces (None stays None: number keys)."""
    return [None if cause is None else f"{cause}:{part}" for part in parts]


MAX_CUSTOMER_ID_CHARS = 200


def check_text(text: str, what: str, max_chars: int = MAX_MESSAGE_CHARS) -> None:
    """A message (or id) must have content, fit the limit, and be text every store can keep."""
    if not text.strip():
        raise Rejected(RejectionCode.INVALID, f"{what} is empty")
    if len(text) > max_chars:
        raise Rejected(
            RejectionCode.INVALID,
            f"{what} is {len(text)} characters long; the limit is {max_chars}",
        )
    if "\x00" in text:
        # PostgreSQL cannot store NUL in text: recording would fail forever.
        raise Rejected(RejectionCode.INVALID, f"{what} contains a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (a JSON "\\ud800" escape): no payload can carry it.
            raise Rejected(RejectionCode.INVALID, f"{what} is not valid Unicode text") from None


class Conversation:
    """One conversation's state and the rules that change it."""

    def __init__(self, state: ConversationState) -> None:
        self.state = state

    # --- Queries over the state.

    @property
    def status(self) -> Status:
        return self.state.status

    def entry(self, seq: int) -> TranscriptEntry:
        # Entries are numbered 1.. in order; the first `transcript_offset` are no longer held.
        if self.state.reserved_seq:
            # A seq is reserved for the bot answer in flight: the list has a gap until it lands.
            return next(e for e in reversed(self.state.transcript) if e.seq == seq)
        return self.state.transcript[seq - self.state.transcript_offset - 1]

    def entries_after(self, seq: int) -> list[TranscriptEntry]:
        """Held entries numbered above `seq` (older ones may only be in the database)."""
        if self.state.reserved_seq:
            return [e for e in self.state.transcript if e.seq > seq]
        return self.state.transcript[max(seq - self.state.transcript_offset, 0) :]

    def compact_transcript(self, keep: int) -> None:
        """Stop holding old entries, before continue-as-new: they are in the database.

        Keeps the last `keep` entries, and every entry not yet recorded or still owed a bot
        answer, so nothing is lost and the state carried to the next run stays small.
        """
        s = self.state
        pinned = {f.entry.seq for f in s.outbox if f.entry is not None} | set(s.bot_queue)
        first_pinned = min((seq - s.transcript_offset - 1 for seq in pinned), default=len(s.transcript))
        drop = max(0, min(len(s.transcript) - keep, first_pinned))
        s.transcript = s.transcript[drop:]
        s.transcript_offset += drop

    def is_duplicate(self, command: Command) -> bool:
        """A redelivered command already applied: accepted, and changes nothing."""
        key = request_key(command)
        return key is not None and key in self.state.seen_request_ids

    # --- The rules.

    def check(self, command: Command) -> None:
        """Raise `Rejected` if the command may not be applied now; never mutates."""
        s = self.state
        if self.is_duplicate(command):
            return
        if s.status is Status.CLOSED and not isinstance(command, BotAnswered | TimerFired):
            raise Rejected(RejectionCode.CLOSED, CLOSED_MESSAGE)
        match command:
            case CustomerMessage(text=text):
                check_text(text, "the message")
            case RequestHuman() | BotAnswered():
                pass
            case TakeOver(agent=agent):
                if s.status is Status.HUMAN and s.agent is not None and s.agent.id != agent.id:
                    raise Rejected(
                        RejectionCode.HELD_BY_OTHER,
                        f"the conversation is held by {s.agent.name}",
                        holder=s.agent,
                    )
                if command.automatic and s.status is not Status.WAITING:
                    # Automatic assignment serves the Waiting column only: a conversation taken
                    # (or handed back) since the assigner read the column is left alone.
                    raise Rejected(
                        RejectionCode.WRONG_STATUS,
                        f"the conversation is no longer waiting (status {s.status.value})",
                        holder=s.agent,
                    )
            case AgentReply(agent=agent, text=text):
                self._check_holder(agent, "reply")
                check_text(text, "the reply")
            case HandBack(agent=agent):
                self._check_holder(agent, "hand the conversation back")
            case Close(agent=agent, outcome=outcome):
                if outcome is Outcome.INACTIVE:
                    raise Rejected(RejectionCode.INVALID, "inactive is set by the timers, not an agent's outcome")
                self._check_holder(agent, "close the conversation")
            case Transfer(agent=agent, to=to, note=note):
                self._check_holder(agent, "transfer the conversation")
                if to.id == agent.id:
                    raise Rejected(RejectionCode.INVALID_TARGET, f"{agent.name} already holds the conversation")
                if note is not None:
                    check_text(note, "the note")
            case Release(agent=agent):
                self._check_holder(agent, "return the conversation to the queue")
            case AddNote(text=text):
                check_text(text, "the note")
            case TimerFired():
                pass

    def _check_holder(self, agent: Agent, action: str) -> None:
        s = self.state
        if s.status is not Status.HUMAN or s.agent is None:
            raise Rejected(
                RejectionCode.WRONG_STATUS,
                f"no agent holds the conversation (status {s.status.value}); take it over to {action}",
            )
        if s.agent.id != agent.id:
            raise Rejected(
                RejectionCode.NOT_ASSIGNED,
                f"only {s.agent.name}, who holds the conversation, can {action}",
                holder=s.agent,
            )

    def apply(self, command: Command, now: datetime) -> list[Fact]:
        """Check and apply a command; return the facts it produced (already in the outbox)."""
        self.check(command)
        if self.is_duplicate(command):
            self._caller_gave_up(command)
            return []
        before = len(self.state.outbox)
        s = self.state
        status_before = s.status
        key = request_key(command)
        if key is not None:
            s.seen_request_ids = [*s.seen_request_ids, key][-SEEN_REQUEST_IDS_KEPT:]
        match command:
            case CustomerMessage(text=text):
                cause = self._cause(command, "message")
                entry = self._entry(EntryKind.CUSTOMER, CUSTOMER_AUTHOR, text, now, cause=cause)
                if s.status is Status.BOT:
                    s.bot_queue.append(entry.seq)
                    if cause is not None:
                        s.question_causes[entry.seq] = cause
            case RequestHuman():
                if s.status is Status.BOT:
                    self._to_waiting(now, self._cause(command, "requested"), self._cause(command, "note"))
            case BotAnswered(answer_seq=int()) if s.read_side:
                self._reserved_bot_answer(command, now)
            case BotAnswered(reply_to=reply_to, text=text, wants_human=wants_human):
                # The bot only speaks while it holds the conversation and the question is
                # still open: an answer that arrives after a take-over is dropped.
                if s.status is not Status.BOT or reply_to not in s.bot_queue:
                    return []
                s.bot_queue.remove(reply_to)
                cause = self._answer_cause(reply_to)
                answer = self._entry(EntryKind.BOT, BOT_AUTHOR, text, now, cause=cause)
                if command.fallback:
                    self._note_fallback(answer.seq)
                if wants_human:
                    self._to_waiting(now, *_parts(cause, "requested", "note"))
            case TakeOver(agent=agent):
                if s.status is Status.HUMAN:
                    return []  # the holder taking over again: nothing changes
                s.status = Status.HUMAN
                s.agent = agent
                s.assigned_at = now
                s.waiting_since = None
                s.bot_queue = []
                self._fact(FactKind.TAKEN_OVER, now, agent=agent, cause=self._cause(command, "taken_over"))
                joined = automatic_joined_note(agent.name) if command.automatic else joined_note(agent)
                self._note(joined, now, agent, cause=self._cause(command, "note"))
                self._handover_summary(agent, now, cause=self._cause(command, "summary"))
            case AgentReply(agent=agent, text=text):
                self._entry(EntryKind.AGENT, agent.name, text, now, agent=agent, cause=self._cause(command, "message"))
            case HandBack(agent=agent):
                s.status = Status.BOT
                s.agent = None
                s.assigned_at = None
                s.requested_at = None
                self._fact(FactKind.HANDED_BACK, now, agent=agent, cause=self._cause(command, "handed_back"))
                self._note(left_note(agent), now, agent, cause=self._cause(command, "note"))
            case Close(agent=agent, outcome=outcome):
                s.status = Status.CLOSED
                s.outcome = outcome
                s.closed_by = agent
                s.closed_at = now
                s.agent = None
                self._fact(FactKind.CLOSED, now, agent=agent, outcome=outcome, cause=self._cause(command, "closed"))
                self._note(closed_note(agent, outcome), now, agent, cause=self._cause(command, "note"))
            case Transfer() | Release() | AddNote() | TimerFired():
                if not self._apply_issue9(command, now):
                    return []
        if s.question_causes:
            # Only questions still owed an answer keep their cause (one being answered has
            # passed it to its reserved answer already).
            s.question_causes = {seq: c for seq, c in s.question_causes.items() if seq in s.bot_queue}
        self._follow_timers(command, now, status_before)
        s.updated_at = now
        return s.outbox[before:]

    # --- Issue 9: people (transfer, release, internal notes) and timers.

    def _apply_issue9(self, command: Transfer | Release | AddNote | TimerFired, now: datetime) -> bool:
        """Apply a command added with issue 9; False when it changes nothing (a stale timer)."""
        s = self.state
        match command:
            case Transfer(agent=agent, to=to, note=note):
                s.agent = to
                s.assigned_at = now
                self._fact(FactKind.TRANSFERRED, now, agent=to, cause=fact_cause(command, "transferred"))
                self._note(transferred_note(agent, to), now, agent, cause=fact_cause(command, "note"))
                if note is not None:
                    self._internal(agent, note, now, cause=fact_cause(command, "internal"))
            case Release(agent=agent, offline=True):
                self._release(agent, offline_note(agent.name), now, command, front=True)
            case Release(agent=agent):
                self._release(agent, released_note(agent), now, command)
            case AddNote(agent=agent, text=text):
                self._internal(agent, text, now, cause=fact_cause(command, "internal"))
            case TimerFired(timer=timer, deadline=deadline):
                if s.pending_timers.get(timer) != deadline or s.timers is None:
                    return False  # moved or cancelled since: nothing to do
                del s.pending_timers[timer]
                self._timer_elapsed(command, now)
        return True

    def _timer_elapsed(self, fired: TimerFired, now: datetime) -> None:
        s = self.state
        settings = s.timers
        assert settings is not None
        match fired.timer:
            case TimerKind.BOT_IDLE_CLOSE | TimerKind.HUMAN_IDLE_CLOSE:
                duration = settings.duration(fired.timer)
                assert duration is not None
                holder = s.agent
                s.status = Status.CLOSED
                s.outcome = Outcome.INACTIVE
                s.closed_at = now
                s.agent = None
                s.bot_queue = []
                # The holder's assignment ends here (for the statistics), but it is not their outcome.
                self._fact(
                    FactKind.CLOSED, now, agent=holder, outcome=Outcome.INACTIVE, cause=fact_cause(fired, "closed")
                )
                self._note(inactive_note(duration), now, None, cause=fact_cause(fired, "note"))
            case TimerKind.WAITING_SLA:
                self._fact(FactKind.WAITING_SLA_BREACHED, now, cause=fact_cause(fired, "breached"))
                if settings.waiting_notice:
                    entry = TranscriptEntry(
                        seq=self._next_seq(),
                        at=now,
                        kind=EntryKind.BOT,
                        author=BOT_AUTHOR,
                        text=settings.waiting_notice,
                    )
                    s.transcript.append(entry)
                    self._fact(FactKind.MESSAGE, now, entry=entry, cause=fact_cause(fired, "notice"))
            case TimerKind.FIRST_REPLY_SLA:
                holder = s.agent
                assert holder is not None
                self._fact(FactKind.FIRST_REPLY_SLA_BREACHED, now, agent=holder, cause=fact_cause(fired, "breached"))
                if settings.first_reply_sla_return:
                    self._release(holder, no_first_reply_note(holder), now, fired, front=True)

    def _release(self, agent: Agent, note: str, now: datetime, cause: Command, *, front: bool = False) -> None:
        """Back to the Waiting column, at the position of the customer's original request (or,
        `front`, at least where the agent took it from)."""
        s = self.state
        position = s.requested_at or now
        if front and s.assigned_at is not None:
            position = min(position, s.assigned_at)
        s.status = Status.WAITING
        s.agent = None
        s.assigned_at = None
        s.waiting_since = position
        s.requested_at = position
        self._fact(FactKind.RELEASED, now, agent=agent, cause=fact_cause(cause, "released"))
        self._note(note, now, agent, cause=fact_cause(cause, "note"))

    # --- Issue 14: the handover summary.

    def _note_fallback(self, seq: int) -> None:
        """Remember that the bot answer `seq` was its fallback (the latest few are enough: the
        summary covers the bot session since an agent last held the conversation)."""
        s = self.state
        s.fallback_seqs = [*s.fallback_seqs, seq][-FALLBACKS_KEPT:]

    def _handover_summary(self, agent: Agent, now: datetime, cause: str | None = None) -> None:
        """An internal note for the agent taking over: the bot session they inherit, in the same
        step (its fact rides along with the take-over's: no extra Temporal action)."""
        s = self.state
        if not s.handover_summaries:
            return  # conversations started before issue 14 replay as they ran
        text = handover.summary(s.transcript, set(s.fallback_seqs), s.requested_at)
        if text is None:
            return
        entry = TranscriptEntry(
            seq=self._next_seq(), at=now, kind=EntryKind.INTERNAL, author=handover.AUTHOR, text=text
        )
        s.transcript.append(entry)
        self._fact(FactKind.NOTE, now, entry=entry, agent=agent, cause=cause)

    def _internal(self, agent: Agent, text: str, now: datetime, cause: str | None) -> None:
        entry = TranscriptEntry(seq=self._next_seq(), at=now, kind=EntryKind.INTERNAL, author=agent.name, text=text)
        self.state.transcript.append(entry)
        self._fact(FactKind.NOTE, now, entry=entry, agent=agent, cause=cause)

    def _follow_timers(self, command: Command, now: datetime, status_before: Status) -> None:
        """(Re)arm the timers a command starts and cancel those it makes moot.

        A customer message restarts the bot-idle clock and stops the human-idle one; an agent's
        reply starts the human-idle clock and ends the first-reply wait; entering Waiting starts
        the waiting SLA, taking a conversation (or being transferred it) the first-reply SLA.
        Whatever leaves the status a timer belongs to (`TIMER_STATUSES`) cancels it.
        """
        s = self.state
        if s.timers is None:
            return
        pending = s.pending_timers
        match command:
            case CustomerMessage():
                self._arm(TimerKind.BOT_IDLE_CLOSE, now)
                pending.pop(TimerKind.HUMAN_IDLE_CLOSE, None)
            case AgentReply():
                s.replied_since_assigned = True
                pending.pop(TimerKind.FIRST_REPLY_SLA, None)
                self._arm(TimerKind.HUMAN_IDLE_CLOSE, now)
            case TakeOver() | Transfer():
                s.replied_since_assigned = False
                self._arm(TimerKind.FIRST_REPLY_SLA, now)
            case HandBack():
                self._arm(TimerKind.BOT_IDLE_CLOSE, now)
            case Release():
                self._arm(TimerKind.BOT_IDLE_CLOSE, now)
        if s.status is Status.WAITING and status_before is not Status.WAITING:
            self._arm(TimerKind.WAITING_SLA, now)  # once per wait: a second request changes nothing
        for timer in list(pending):
            if s.status not in TIMER_STATUSES[timer]:
                del pending[timer]

    def _arm(self, timer: TimerKind, now: datetime) -> None:
        settings = self.state.timers
        duration = settings.duration(timer) if settings is not None else None
        if duration:
            self.state.pending_timers[timer] = now + duration

    def next_timer(self) -> TimerFired | None:
        """The earliest pending timer, as the command to apply when it elapses."""
        pending = self.state.pending_timers
        if not pending:
            return None
        timer = min(pending, key=lambda t: (pending[t], t.value))
        return TimerFired(timer=timer, deadline=pending[timer])

    def replaces_armed_timer(self, armed: TimerFired) -> bool:
        """Whether the Temporal timer armed for `armed` must be cancelled for another.

        A conversation with `lazy_timers` keeps it while some timer is pending and none is due
        before it. A deadline moved later (each customer message restarts the bot-idle clock)
        keeps the armed timer: when it fires, the workflow applies what is due then, or arms one
        timer for the rest. Only an earlier deadline, or no timer pending at all, replaces it. So
        a customer who keeps writing costs one Temporal timer per idle period, not one per
        message (each start is a billable action and two history events, each cancel one more).
        Conversations started before replace it at every change of the earliest deadline.
        """
        pending = self.next_timer()
        if not self.state.lazy_timers:
            return pending != armed
        return pending is None or pending.deadline < armed.deadline

    def answer_owed_to(self, facts: list[Fact]) -> int | None:
        """Conversations whose bot answers inside the workflow task (`local_bot_answers`): the
        seq of the customer message among `facts` (what one `SendMessage` produced) that the bot
        answers next, which the update waits for and returns with the message. None otherwise: a
        duplicate, a conversation the bot does not hold, an earlier version, or earlier messages
        still owed an answer (then this one's answer comes later, from the `BotAnswer` activity,
        and the update answers at once)."""
        if not self.state.local_bot_answers or not self.state.bot_queue:
            return None
        for fact in facts:
            if (
                fact.entry is not None
                and fact.entry.kind is EntryKind.CUSTOMER
                and self.state.bot_queue[0] == fact.entry.seq
            ):
                return fact.entry.seq
        return None

    def _caller_gave_up(self, command: Command) -> None:
        """A customer message sent again as a signal, after its `SendMessage` update was applied:
        the API sends that signal when the update's answer did not come in time, so nobody will
        write the facts the update left to its caller (the message, the bot's answer). The
        recorder writes them now rather than at the next write. Conversations answering inside
        the workflow task only (before them, the next bot answer carried those facts)."""
        s = self.state
        if not s.local_bot_answers or not s.caller_writes or not isinstance(command, CustomerMessage):
            return
        cause = self._cause(command, "message")
        if command.caller_records or cause is None:
            return  # the update itself, delivered again: its caller has the first answer
        answer = f"answer:{cause}"
        left = {f.number for f in s.outbox if f.cause is not None and (f.cause == cause or f.cause.startswith(answer))}
        s.caller_writes = [n for n in s.caller_writes if n not in left]

    def owes_answer(self, seq: int) -> bool:
        """Whether the bot still owes the customer message `seq` an answer (a request for a
        person or a take-over releases it)."""
        return seq in self.state.bot_queue

    def reserve_bot_answer(self, reply_to: int) -> Fact:
        """Read-side conversations: the seq and fact number the bot's answer to `reply_to` will
        have, fixed before it is asked, so the bot activity can write the answer to the
        database itself, exactly as the workflow will hold it. Entries arriving meanwhile come
        after it; the answer's text and time are filled in by `BotAnswered`."""
        s = self.state
        seq = self._next_seq()
        s.reserved_seq = seq
        s.last_fact += 1
        s.reserved_fact = s.last_fact
        entry = TranscriptEntry(seq=seq, at=s.updated_at, kind=EntryKind.BOT, author=BOT_AUTHOR, text="")
        return Fact(
            conversation_id=s.conversation_id,
            number=s.last_fact,
            kind=FactKind.MESSAGE,
            at=s.updated_at,
            entry=entry,
            cause=self._answer_cause(reply_to),
        )

    def _reserved_bot_answer(self, answer: BotAnswered, now: datetime) -> None:
        """An answer under its reserved seq. It is kept even when it is no longer wanted (the
        customer asked for a person, or an agent took over, while the bot was answering): the
        bot activity may have shown it already, and the transcript must be the one shown. Only
        an answer still wanted moves the conversation (to Waiting, if the bot asks for a person)."""
        s = self.state
        assert answer.answer_seq is not None and answer.answer_fact is not None
        at = answer.answered_at or now
        entry = TranscriptEntry(seq=answer.answer_seq, at=at, kind=EntryKind.BOT, author=BOT_AUTHOR, text=answer.text)
        position = next((i for i, e in enumerate(s.transcript) if e.seq > entry.seq), len(s.transcript))
        s.transcript.insert(position, entry)
        s.reserved_seq = s.reserved_fact = 0
        if answer.fallback:
            self._note_fallback(entry.seq)
        s.outbox.append(
            Fact(
                conversation_id=s.conversation_id,
                number=answer.answer_fact,
                kind=FactKind.MESSAGE,
                at=at,
                entry=entry,
                cause=answer.answer_cause,
            )
        )
        if s.status is Status.BOT and answer.reply_to in s.bot_queue:
            s.bot_queue.remove(answer.reply_to)
            if answer.wants_human:
                self._to_waiting(now, *_parts(answer.answer_cause, "requested", "note"))

    def _cause(self, command: Command, part: str) -> str | None:
        """What keys a fact `command` produces, in a conversation keyed by cause (issue 8): the
        sender's message id, the request or update id, `part` telling apart the facts of one
        command. None (number keys) otherwise, or for a command sent without an id (a signal
        from a backend that gives none)."""
        if not self.state.facts_by_cause:
            return None
        match command:
            case CustomerMessage(message_id=str() as message_id):
                return f"message:{message_id}"
            case RequestHuman(request_id=str() as request_id):
                return f"human:{request_id}:{part}"
        return fact_cause(command, part)

    def _answer_cause(self, reply_to: int) -> str | None:
        """A bot answer's cause: the question it answers (one answer per question)."""
        question = self.state.question_causes.get(reply_to)
        return None if question is None else f"answer:{question}"

    def _to_waiting(self, now: datetime, cause: str | None = None, note_cause: str | None = None) -> None:
        s = self.state
        s.status = Status.WAITING
        s.waiting_since = now
        if s.requested_at is None:
            s.requested_at = now
        s.bot_queue = []
        self._fact(FactKind.HUMAN_REQUESTED, now, cause=cause)
        self._note(HUMAN_REQUESTED_NOTE, now, None, cause=note_cause)

    # --- Building transcript entries and facts.

    def _entry(
        self,
        kind: EntryKind,
        author: str,
        text: str,
        now: datetime,
        agent: Agent | None = None,
        cause: str | None = None,
    ) -> TranscriptEntry:
        entry = TranscriptEntry(seq=self._next_seq(), at=now, kind=kind, author=author, text=text)
        self.state.transcript.append(entry)
        self._fact(FactKind.MESSAGE, now, entry=entry, agent=agent, cause=cause)
        return entry

    def _next_seq(self) -> int:
        # One past the reserved seq of a bot answer in flight, if there is one.
        return self.state.transcript_offset + len(self.state.transcript) + (2 if self.state.reserved_seq else 1)

    def _note(self, text: str, now: datetime, agent: Agent | None, cause: str | None = None) -> None:
        entry = TranscriptEntry(seq=self._next_seq(), at=now, kind=EntryKind.SYSTEM, author=SYSTEM_AUTHOR, text=text)
        self.state.transcript.append(entry)
        self._fact(FactKind.NOTE, now, entry=entry, agent=agent, cause=cause)

    def _fact(
        self,
        kind: FactKind,
        now: datetime,
        *,
        entry: TranscriptEntry | None = None,
        agent: Agent | None = None,
        outcome: Outcome | None = None,
        cause: str | None = None,
    ) -> None:
        s = self.state
        if s.last_fact == 0 and kind is not FactKind.STARTED:
            # Whatever happens first to a conversation starts it, for the statistics.
            self._fact(FactKind.STARTED, now, cause="started" if s.facts_by_cause else None)
        s.last_fact += 1
        s.outbox.append(
            Fact(
                conversation_id=s.conversation_id,
                number=s.last_fact,
                kind=kind,
                at=now,
                entry=entry,
                agent=agent,
                outcome=outcome,
                cause=cause,
            )
        )

    # --- Bookkeeping the workflow needs.

    def take_outbox(self, max_facts: int, max_chars: int) -> list[Fact]:
        """The oldest unrecorded facts, at most `max_facts` and about `max_chars` of text
        (always at least one); `mark_recorded` removes them once written."""
        batch: list[Fact] = []
        chars = 0
        for fact in self.state.outbox[:max_facts]:
            chars += len(fact.entry.text) if fact.entry else 0
            if batch and chars > max_chars:
                break
            batch.append(fact)
        return batch

    def mark_recorded(self, facts: list[Fact]) -> None:
        recorded = {f.number for f in facts}
        self.state.outbox = [f for f in self.state.outbox if f.number not in recorded]
        if self.state.caller_writes:
            self.state.caller_writes = [n for n in self.state.caller_writes if n not in recorded]

    def caller_writes(self, facts: list[Fact]) -> None:
        """The caller of an update writes these facts itself (read-side conversations only):
        they need no prompt recording; the recorder still writes them later, as the backstop."""
        if self.state.read_side and facts:
            self.state.caller_writes = [*self.state.caller_writes, *(f.number for f in facts)]

    def recording_due(self) -> bool:
        """Whether the outbox must be written now rather than ride along with the next bot answer.

        A transition is due at once (the Waiting and My conversations columns read the database);
        messages alone wait for the next bot answer or transition, bounded by
        `UNRECORDED_FACTS_KEPT`; a closed conversation writes everything before it completes.
        """
        outbox = self.state.outbox
        if not outbox:
            return False
        if self.state.read_side:
            return self._read_side_recording_due()
        return (
            self.state.status is Status.CLOSED
            or len(outbox) >= UNRECORDED_FACTS_KEPT
            or any(f.kind in RECORDED_PROMPTLY for f in outbox)
        )

    def _read_side_recording_due(self) -> bool:
        """The rule when the database is the read side (issue 8): every fact reaches it within
        about a second. A fact the caller of an update wrote itself waits for the next write;
        facts a bot answer is about to carry wait for it (it writes them as it starts); any
        other fact (a customer message to a person, a request for a person, a bot answer) is
        written at once."""
        s = self.state
        if s.status is Status.CLOSED or len(s.outbox) >= UNRECORDED_FACTS_KEPT:
            return True
        if s.status is Status.BOT and s.bot_queue:
            return False
        written_by_caller = set(s.caller_writes)
        return any(f.number not in written_by_caller for f in s.outbox)

    @property
    def finished(self) -> bool:
        """Closed and everything recorded: the workflow may complete."""
        return self.state.status is Status.CLOSED and not self.state.outbox
