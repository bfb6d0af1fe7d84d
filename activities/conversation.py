"""Activities of a conversation: everything that touches the world outside the workflow.

They are synchronous (SQLAlchemy and the bot are blocking) and run in the worker's thread
pool. Both are safe to retry: the bot is a pure function of the message, and every write is
idempotent (see `handoff.store`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime

from temporalio import activity

from handoff.bot import KnowledgeBaseBot
from handoff.models import BotQuestion, BotReply, Fact, RecordBatch
from handoff.store import Store

RIDE_ALONG_RECORD_SECONDS = 2.0
"""How long a bot answer waits for the facts riding along with it before answering anyway."""


class ConversationActivities:
    def __init__(self, store: Store, bot: KnowledgeBaseBot) -> None:
        self.store = store
        self.bot = bot
        # Ride-along writes run here so a slow or absent database never delays an answer.
        self._ride_along = ThreadPoolExecutor(4, thread_name_prefix="ride-along-record")

    @activity.defn(name="BotAnswer")
    def bot_answer(self, question: BotQuestion) -> BotReply:
        """The bot's answer to one customer message, writing the facts that ride along and,
        in a read-side conversation, the answer itself.

        The write saves a separate RecordFacts call per answer. If the database fails or is
        slow, the answer goes out anyway with `recorded=False` (and `answer_recorded=False`),
        and the workflow's recorder writes those facts, retrying; a late write still landing is
        harmless (idempotent).

        Read-side conversations: the answer reaches the database (and the customer) now, under
        the seq and fact number the workflow reserved for it (a retry's copy is a no-op). The
        riding facts and the answer go in one transaction, on one trip to the ride-along
        thread: one write per answer, not two (docs/benchmarks.md, "Worker CPU"). The bot is
        a pure function of the message, so it answers first, and the facts still land in
        their order (the riding ones, then the answer).
        """
        reply = self.bot.answer(question.text)
        # Also when nothing is written: a local answer's time in the workflow (see `_answer_locally`).
        answered_at = datetime.now(UTC)
        entries: list[Fact] = []
        if question.answer is not None and question.answer.entry is not None:
            entry = question.answer.entry.model_copy(update={"text": reply.text, "at": answered_at})
            entries.append(question.answer.model_copy(update={"entry": entry, "at": answered_at}))
        written = False
        if question.record is not None or entries:
            pending = self._ride_along.submit(self.store.record_with_entries, question.record, entries)
            try:
                pending.result(timeout=RIDE_ALONG_RECORD_SECONDS)
                written = True
            except FutureTimeout:
                activity.logger.warning("Database slow: facts left to the recorder")
            except Exception as error:  # any database error: the recorder retries them
                activity.logger.warning("Database error (%s): facts left to the recorder", type(error).__name__)
        return reply.model_copy(
            update={
                "recorded": written and question.record is not None,
                "answer_recorded": written and bool(entries),
                "answered_at": answered_at,
            }
        )

    @activity.defn(name="RecordFacts")
    def record_facts(self, batch: RecordBatch) -> int:
        """Write notes, messages and statistics facts plus the conversation row; idempotent."""
        return self.store.record(batch)
