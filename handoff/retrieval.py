"""Text retrieval that runs offline: which known texts are closest to a customer's question.

Each text becomes the set of its content words (stop words and bare numbers dropped, a light
stemmer folding "refunds"/"refunded" to "refund"), weighted by IDF over the indexed texts, and a
question is scored against each text by cosine. Two things make it fit for a support bot:

- **Typos.** A question word the index does not know is corrected to a known word one edit away
  ("pasword" → "password", "pakage" → "package"), found through a table of the known words with
  one letter deleted (the SymSpell method), so correction costs a few dictionary lookups, not a
  pass over the vocabulary.
- **Unknown words lower the score.** A word that is neither known nor correctable still counts in
  the question's length, at the highest weight: "Do you sell gift cards?" shares only "card"
  with "What cards do you accept?" and scores low, so the bot falls back instead of answering
  about payment methods. Precision first: a fallback offers a person, a wrong answer misleads.

Nothing is downloaded and nothing leaves the process. Search walks the postings of the
question's words only (an inverted index). It serves small sets of texts: the knowledge base,
and the few past replies the database's full-text search found for a suggestion
(handoff/assist.py; the past replies themselves are indexed by the database, handoff/reply_index.py).
See `python -m bench assist` for the answer rate against the regular expression bot. Scores are
cosines in [0, 1], 1 for the same words; a caller decides what is enough.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

CORRECTED_WEIGHT = 0.8
"""A corrected word counts for less than one spelt right: the correction may be wrong."""

MIN_CORRECTED_LENGTH = 4
"""Shorter words are left alone: one edit turns most short words into other real words."""

STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "im",
        "ive",
        "id",
        "dont",
        "cant",
        "wont",
        "didnt",
        "doesnt",
        "isnt",
        "arent",
        "u",
        "ur",
        "pls",
        "please",
        "get",
        "got",
        "want",
        "need",
        "like",
        "know",
        "tell",
        "let",
        "way",
        "one",
        "still",
        "yet",
    ]
)


@dataclass(frozen=True)
class Hit:
    index: int  # position in the indexed texts
    score: float  # cosine similarity, 0..1
    question_words: int  # content words in the question, known or not (1: little to go on)


def tokens(text: str) -> list[str]:
    """Lower-case words without accents or apostrophes, as written (not stemmed, nothing dropped):
    what the database's own full-text search is given (handoff/reply_index.py)."""
    folded = unicodedata.normalize("NFKD", text.lower())
    out: list[str] = []
    current: list[str] = []
    for char in folded:
        if char.isalnum():
            current.append(char)
        elif char in "'’" or unicodedata.combining(char):
            continue  # "can't" is "cant"; an accent leaves its letter
        elif current:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return out


def content_tokens(text: str) -> list[str]:
    """`tokens` without stop words and bare numbers (an order number says nothing about the topic)."""
    return [w for w in tokens(text) if w not in STOP_WORDS and not w.isdigit()]


def words(text: str) -> list[str]:
    """The content words of `text` (see `content_tokens`), each stemmed."""
    return [stem(w) for w in content_tokens(text)]


def counts(text: str) -> Counter[str]:
    """How often each content word (stemmed) occurs in `text`: what `TextIndex` indexes."""
    return Counter(words(text))


def stem(word: str) -> str:
    """A light English stemmer: plural and verb endings only, so stems stay recognisable."""
    if len(word) <= 3:
        return word
    for ending, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            if ending == "s" and word.endswith("ss"):
                return word
            if ending == "es" and not word.endswith(("sses", "xes", "zes", "ches", "shes")):
                continue
            return word[: len(word) - len(ending)] + replacement
    return word


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class TextIndex:
    """An immutable index of `texts`; `search` gives the closest ones to a question."""

    def __init__(self, texts: Sequence[str], *, counted: Sequence[Counter[str]] = ()) -> None:
        """`counted`: the word counts (`counts`) of texts that come first, already made; `texts`
        follow them (handoff/assist.py scores a few new texts against the same knowledge base)."""
        documents = [*counted, *(counts(text) for text in texts)]
        self.size = len(documents)
        # Postings: for each word, the texts holding it and its term weight there (1 + log of
        # its count: a word repeated across an answer's examples says more about it, not linearly).
        self._postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for number, document in enumerate(documents):
            for word, count in document.items():
                self._postings[word].append((number, 1.0 + math.log(count)))
        self.idf = {w: math.log((self.size + 1) / (len(p) + 1)) + 1.0 for w, p in self._postings.items()}
        self._unknown_idf = math.log(self.size + 1) + 1.0  # as rare as a word can be
        self._norms = [
            math.sqrt(sum(((1.0 + math.log(c)) * self.idf[w]) ** 2 for w, c in d.items())) for d in documents
        ]
        self._near_table: dict[str, set[str]] | None = None

    @property
    def _near(self) -> dict[str, set[str]]:
        """SymSpell: each known word under itself and its one-letter deletions (made on the first
        word to correct: most questions have none)."""
        if self._near_table is None:
            near: dict[str, set[str]] = defaultdict(set)
            for word in self._postings:
                if len(word) >= MIN_CORRECTED_LENGTH:
                    for key in {word, *_deletions(word)}:
                        near[key].add(word)
            self._near_table = near
        return self._near_table

    def correct(self, word: str) -> str | None:
        """A known word one edit (insert, delete, substitute, swap) from `word`; the most
        common if several, then the first alphabetically (deterministic); None if none."""
        if len(word) < MIN_CORRECTED_LENGTH:
            return None
        candidates: set[str] = set()
        near = self._near
        for key in {word, *_deletions(word)}:
            candidates |= near.get(key, set())
        close = [c for c in candidates if _one_edit(word, c)]
        if not close:
            return None
        return min(close, key=lambda c: (-len(self._postings[c]), c))

    def weights(self, question: str) -> tuple[dict[str, float], float, int]:
        """The question's known (or corrected) words with their weights, the squared weight of
        its unknown words (which only lengthen it), and how many content words it has."""
        known: dict[str, float] = {}
        unknown = 0.0
        content = set(words(question))
        for word in content:
            if word in self.idf:
                known[word] = max(known.get(word, 0.0), self.idf[word])
                continue
            corrected = self.correct(word)
            if corrected is None:
                unknown += self._unknown_idf**2
            else:
                known[corrected] = max(known.get(corrected, 0.0), self.idf[corrected] * CORRECTED_WEIGHT)
        return known, unknown, len(content)

    def search(self, question: str, k: int = 3) -> list[Hit]:
        """The `k` closest texts, best first (equal scores: the earlier text first)."""
        known, unknown, count = self.weights(question)
        if not known:
            return []
        question_norm = math.sqrt(sum(w * w for w in known.values()) + unknown)
        dot: dict[int, float] = defaultdict(float)
        for word, weight in known.items():
            idf = self.idf[word]
            for number, term_weight in self._postings[word]:
                dot[number] += weight * idf * term_weight
        scored = sorted(((-d / (question_norm * self._norms[n]), n) for n, d in dot.items() if self._norms[n]))
        return [Hit(index=n, score=-negative, question_words=count) for negative, n in scored[:k]]


def _one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance of exactly one (an adjacent swap counts as one edit)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    return any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer)))
