"""Activities of a conversation: everything that touches the world outside the workflow.

They are synchronous (SQLAlchemy and the bot are blocking) and run in the worker's thread
pool. Both are safe to retry: the bot is a pure function of the message, and `record_facts`
writes idempotently (see `handoff.store`).
"""

from __future__ import annotations

from temporalio import activity

from handoff.bot import KnowledgeBaseBot
from handoff.models import BotQuestion, BotReply, RecordBatch
from handoff.store import Store


class ConversationActivities:
    def __init__(self, store: Store, bot: KnowledgeBaseBot) -> None:
        self.store = store
        self.bot = bot

    @activity.defn(name="BotAnswer")
    def bot_answer(self, question: BotQuestion) -> BotReply:
        """The bot's answer to one customer message."""
        return self.bot.answer(question.text)

    @activity.defn(name="RecordFacts")
    def record_facts(self, batch: RecordBatch) -> int:
        """Write notes, messages and statistics facts plus the conversation row; idempotent."""
        return self.store.record(batch)
