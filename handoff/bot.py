"""The default bot: a knowledge base of answers, found by retrieval, with a confidence threshold.

A customer's question is compared with each answer's example questions (and its text) by
`handoff.retrieval.TextIndex` (TF-IDF of words and character n-grams: paraphrases and typos
match, nothing is downloaded); the closest answer is given when its similarity reaches the
knowledge base's `confidence_threshold`, else the fallback, which offers a person. A message
asking several questions ("I forgot my password. Where is my invoice?") gets one answer for
each, in order. Explicit requests for a person, and any answer's optional `patterns`, are
regular expressions checked first. It stays deterministic (same message, same answer), so a
support team can read and edit what it says, and tests can assert exact answers. Swap it by
pointing `HANDOFF_KNOWLEDGE_BASE` at another TOML file of the same shape.

Patterns are matched with RE2 (`google-re2`), which runs in time linear in the message, so no
pattern and no message can make an answer slow (Python's `re` backtracks: one of our own
patterns took minutes over "human" + 10,000 spaces, holding the GIL and with it the whole
process). RE2 has no backreferences or lookarounds: a knowledge base using them is refused at
load time, naming the pattern, so the worker stops at start rather than misbehave later.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2

from handoff.lifecycle import MAX_MESSAGE_CHARS
from handoff.models import BotReply
from handoff.retrieval import TextIndex

DEFAULT_KNOWLEDGE_BASE = Path(__file__).with_name("knowledge_base.toml")

PATTERN_MAX_MEM = 8 << 20
"""RE2's memory budget per compiled pattern (its default, made explicit): a pattern whose program
does not fit is refused at load time; at match time RE2 stays linear within it."""

MAX_MATCHED_CHARS = MAX_MESSAGE_CHARS
"""The bot reads at most this many characters of a message (the longest message accepted), so
the work per answer is bounded by patterns × this, whatever reaches the activity."""


DEFAULT_CONFIDENCE_THRESHOLD = 0.28
"""Used when a knowledge base sets none. Chosen with `python -m bench assist`: the lowest value
at which no question outside the knowledge base got an answer (README, "The bot")."""

MAX_QUESTIONS_PER_MESSAGE = 5
"""Questions answered in one message at most (the rest of a long message is read as one), which
bounds the retrieval work per message."""


class KnowledgeBaseError(ValueError):
    """The knowledge-base file is missing a field or holds an invalid pattern."""


@dataclass(frozen=True)
class Answer:
    text: str
    patterns: tuple[Any, ...] = ()
    examples: tuple[str, ...] = ()
    small_talk: bool = False  # a greeting or thanks: left out when a real question is answered too

    def matches(self, message: str) -> bool:
        return any(p.search(message) for p in self.patterns)


@dataclass(frozen=True)
class Match:
    """The answer found for one question, and how: `pattern` (score 1) or `retrieval`."""

    answer: Answer
    score: float
    by: str


@dataclass(frozen=True)
class KnowledgeBaseBot:
    answers: tuple[Answer, ...]
    human_request_patterns: tuple[Any, ...]
    fallback: str
    handoff_answer: str
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    # Built from `answers`: one document per answer, its examples and its text together, so an
    # answer is scored on all the ways customers ask for it (a single short example would let
    # one shared word decide).
    _index: TextIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        documents = ["\n".join((*answer.examples, answer.text)) for answer in self.answers]
        object.__setattr__(self, "_index", TextIndex(documents))

    @classmethod
    def from_file(cls, path: Path | str = DEFAULT_KNOWLEDGE_BASE) -> KnowledgeBaseBot:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            threshold = float(data.get("confidence_threshold", DEFAULT_CONFIDENCE_THRESHOLD))
            if not 0.0 < threshold <= 1.0:
                raise KnowledgeBaseError(f"confidence_threshold must be in (0, 1], not {threshold}")
            return cls(
                answers=tuple(_answer(a) for a in data.get("answers", [])),
                human_request_patterns=_compile(data["human_request_patterns"]),
                fallback=str(data["fallback"]),
                handoff_answer=str(data["handoff_answer"]),
                confidence_threshold=threshold,
            )
        except KnowledgeBaseError as e:
            raise KnowledgeBaseError(f"cannot load knowledge base {path}: {e}") from None
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as e:
            raise KnowledgeBaseError(f"cannot load knowledge base {path}: {e!r}") from e

    def wants_human(self, message: str) -> bool:
        return any(p.search(message) for p in self.human_request_patterns)

    def best_match(self, question: str) -> Match | None:
        """The answer to one question: the first whose pattern matches, else the closest by
        retrieval if it is close enough, else None."""
        for answer in self.answers:
            if answer.matches(question):
                return Match(answer, 1.0, "pattern")
        hits = self._index.search(question, k=1)
        # One content word ("wrong", "card") is too little to know the topic: such a question
        # is answered by a pattern or not at all.
        if hits and hits[0].question_words > 1 and hits[0].score >= self.confidence_threshold:
            return Match(self.answers[hits[0].index], hits[0].score, "retrieval")
        return None

    def answer(self, message: str) -> BotReply:
        message = message[:MAX_MATCHED_CHARS]
        if self.wants_human(message):
            return BotReply(text=self.handoff_answer, wants_human=True)
        found: list[Answer] = []
        for question in questions_in(message):
            match = self.best_match(question)
            if match is not None and match.answer not in found:
                found.append(match.answer)
        real = [a for a in found if not a.small_talk]
        chosen = real or found[:1]
        if not chosen:
            return BotReply(text=self.fallback, fallback=True)
        return BotReply(text="\n\n".join(a.text for a in chosen))


def questions_in(message: str) -> list[str]:
    """The message cut after each `.`, `?`, `!` or line break, at most
    `MAX_QUESTIONS_PER_MESSAGE` pieces (the last one holds the rest); pieces without a letter
    or digit are dropped. A scan, not a regular expression: linear, whatever the message."""
    pieces: list[str] = []
    start = 0
    for position, char in enumerate(message):
        if len(pieces) == MAX_QUESTIONS_PER_MESSAGE - 1:
            break
        if char in ".?!\n":
            pieces.append(message[start : position + 1])
            start = position + 1
    pieces.append(message[start:])
    return [p.strip() for p in pieces if any(c.isalnum() for c in p)]


def _answer(entry: dict[str, Any]) -> Answer:
    examples = entry.get("examples", [])
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise KnowledgeBaseError("examples must be a list of strings")
    return Answer(
        text=str(entry["answer"]),
        patterns=_compile(entry.get("patterns", [])),
        examples=tuple(examples),
        small_talk=bool(entry.get("small_talk", False)),
    )


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
