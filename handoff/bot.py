"""The default bot: a small knowledge base of question patterns and answers.

It is deliberately simple and deterministic (no model, no network), so a support team can
read and edit what it says, and tests can assert exact answers. Swap it by pointing
`HANDOFF_KNOWLEDGE_BASE` at another TOML file of the same shape.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from handoff.models import BotReply

DEFAULT_KNOWLEDGE_BASE = Path(__file__).with_name("knowledge_base.toml")


class KnowledgeBaseError(ValueError):
    """The knowledge-base file is missing a field or holds an invalid pattern."""


@dataclass(frozen=True)
class Answer:
    patterns: tuple[re.Pattern[str], ...]
    text: str

    def matches(self, message: str) -> bool:
        return any(p.search(message) for p in self.patterns)


@dataclass(frozen=True)
class KnowledgeBaseBot:
    answers: tuple[Answer, ...]
    human_request_patterns: tuple[re.Pattern[str], ...]
    fallback: str
    handoff_answer: str

    @classmethod
    def from_file(cls, path: Path | str = DEFAULT_KNOWLEDGE_BASE) -> KnowledgeBaseBot:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            return cls(
                answers=tuple(
                    Answer(patterns=_compile(a["patterns"]), text=str(a["answer"])) for a in data.get("answers", [])
                ),
                human_request_patterns=_compile(data["human_request_patterns"]),
                fallback=str(data["fallback"]),
                handoff_answer=str(data["handoff_answer"]),
            )
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, re.error) as e:
            raise KnowledgeBaseError(f"cannot load knowledge base {path}: {e!r}") from e

    def wants_human(self, message: str) -> bool:
        return any(p.search(message) for p in self.human_request_patterns)

    def answer(self, message: str) -> BotReply:
        if self.wants_human(message):
            return BotReply(text=self.handoff_answer, wants_human=True)
        for answer in self.answers:
            if answer.matches(message):
                return BotReply(text=answer.text)
        return BotReply(text=self.fallback)


def _compile(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)
