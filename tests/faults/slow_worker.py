"""`python -m tests.faults.slow_worker`: the real worker (worker.py), whose bot never finishes
answering SLOW_QUESTION, so a test can hold one `BotAnswer` in flight and kill the worker then.

Every other message is answered exactly as the shipped knowledge base answers it. (A slow
pattern cannot do this any more: patterns are matched in linear time, see handoff/bot.py.)
"""

from __future__ import annotations

import asyncio
import threading

from handoff.bot import KnowledgeBaseBot
from handoff.models import BotReply
from tests.faults.conversations import SLOW_QUESTION
from worker import main


class SlowBot(KnowledgeBaseBot):
    def answer(self, message: str) -> BotReply:
        if message == SLOW_QUESTION:
            threading.Event().wait()  # until the test kills this process
        return super().answer(message)


if __name__ == "__main__":
    asyncio.run(main(SlowBot.from_file()))
