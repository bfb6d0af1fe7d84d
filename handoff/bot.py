"""The default bot: a small knowledge base of question patterns and answers.

It is deliberately simple and deterministic (no model, no network), so a support team can
read and edit what it says, and tests can assert exact answers. Swap it by pointing
`HANDOFF_KNOWLEDGE_BASE` at another TOML file of the same shape.

Patterns are matched with RE2 (`google-re2`), which runs in time linear in the message, so no
pattern and no message can make an answer slow (Python's `re` backtracks: one of our own
patterns took minutes over "human" + 10,000 spaces, holding the GIL and with it the whole
process). RE2 has no backreferences or lookarounds: a knowledge base using them is refused at
load time, naming the pattern, so the worker stops at start rather than misbehave later.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2

from handoff.lifecycle import MAX_MESSAGE_CHARS
from handoff.models import BotReply

DEFAULT_KNOWLEDGE_BASE = Path(__file__).with_name("knowledge_base.toml")

PATTERN_MAX_MEM = 8 << 20
"""RE2's memory budget per compiled pattern (its default, made explicit): a pattern whose program
does not fit is refused at load time; at match time RE2 stays linear within it."""

MAX_MATCHED_CHARS = MAX_MESSAGE_CHARS
"""The bot reads at most this many characters of a message (the longest message accepted), so
the work per answer is bounded by patterns × this, whatever reaches the activity."""


class KnowledgeBaseError(ValueError):
    """The knowledge-base file is missing a field or holds an invalid pattern."""


@dataclass(frozen=True)
class Answer:
    patterns: tuple[Any, ...]
    text: str

    def matches(self, message: str) -> bool:
        return any(p.search(message) for p in self.patterns)


@dataclass(frozen=True)
class KnowledgeBaseBot:
    answers: tuple[Answer, ...]
    human_request_patterns: tuple[Any, ...]
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
        except KnowledgeBaseError as e:
            raise KnowledgeBaseError(f"cannot load knowledge base {path}: {e}") from None
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as e:
            raise KnowledgeBaseError(f"cannot load knowledge base {path}: {e!r}") from e

    def wants_human(self, message: str) -> bool:
        return any(p.search(message) for p in self.human_request_patterns)

    def answer(self, message: str) -> BotReply:
        message = message[:MAX_MATCHED_CHARS]
        if self.wants_human(message):
            return BotReply(text=self.handoff_answer, wants_human=True)
        for answer in self.answers:
            if answer.matches(message):
                return BotReply(text=answer.text)
        return BotReply(text=self.fallback)


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = PATTERN_MAX_MEM
    options.log_errors = False  # the refusal is raised with its reason instead
    return options


def _compile(patterns: list[str]) -> tuple[Any, ...]:
    """Each pattern compiled with RE2, case-insensitive; one RE2 cannot compile is refused by name."""
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise TypeError("patterns must be a list of strings")
    options = _options()
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re2.compile(pattern, options))
        except re2.error as e:
            reason = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
            raise KnowledgeBaseError(
                f"pattern {pattern!r} is refused: {reason} (patterns are matched with RE2, which runs in linear "
                "time and has no backreferences or lookarounds)"
            ) from None
    return tuple(compiled)
