"""`python -m bench assist [--quick]`: the retrieval bot against the regular-expression bot.

On the evaluation set in bench/data/assist_questions.toml (questions written for this project,
none of them a knowledge-base example), each once as written and once with a typo (seeded), plus
messages asking two questions and questions the knowledge base cannot answer:
- **correct answers**: the reply is the right answer (for the `none` questions: the fallback);
- **wrong answers**: another answer than the right one (worse than the fallback, which offers a person);
- answer latency p50/p99 on this machine;
- suggested replies (hit@1, hit@3, MRR on held-out questions), words only and with embeddings;
- suggestion latency p50/p99 with 10,000 and 100,000 past replies indexed by the database's own
  full-text search, on SQLite and on PostgreSQL (generated into a private file / schema, dropped
  afterwards), and the memory the embedding model adds to a process.
Asserts nothing; prints a table (and writes bench/assist.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from handoff import reply_index
from handoff.assist import SEMANTIC_WEIGHT, Assistant
from handoff.bot import KnowledgeBaseBot
from handoff.models import BotReply
from handoff.reply_index import PastReply
from handoff.store import Store

QUESTIONS = Path(__file__).with_name("data") / "assist_questions.toml"
REPORT = Path(__file__).with_name("assist.md")
SEED = 20261130


@dataclass(frozen=True)
class Case:
    message: str
    expected: tuple[str, ...]  # starts of the expected answers, in order; () = the fallback
    group: str  # as written, typo, multi, none


def regex_only(bot: KnowledgeBaseBot, message: str) -> BotReply:
    """The bot as it was before retrieval: the first answer whose pattern matches, else the fallback."""
    if bot.wants_human(message):
        return BotReply(text=bot.handoff_answer, wants_human=True)
    for answer in bot.answers:
        if answer.matches(message):
            return BotReply(text=answer.text)
    return BotReply(text=bot.fallback)


def typo(text: str, rng: random.Random) -> str:
    """One typo in one word of 5+ letters: a letter dropped, doubled, swapped or replaced."""
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 5]
    if not long_words:
        return text
    i = rng.choice(long_words)
    w = words[i]
    at = rng.randrange(1, len(w) - 1)
    kind = rng.choice(["drop", "double", "swap", "replace"])
    if kind == "drop":
        w = w[:at] + w[at + 1 :]
    elif kind == "double":
        w = w[:at] + w[at] + w[at:]
    elif kind == "swap":
        w = w[: at - 1] + w[at] + w[at - 1] + w[at + 1 :]
    else:
        w = w[:at] + rng.choice("abcdefghijklmnopqrstuvwxyz") + w[at + 1 :]
    words[i] = w
    return " ".join(words)


def cases() -> list[Case]:
    data = tomllib.loads(QUESTIONS.read_text(encoding="utf-8"))
    rng = random.Random(SEED)
    out: list[Case] = []
    for topic in data["topics"].values():
        for question in topic["questions"]:
            out.append(Case(question, (topic["answer"],), "as written"))
            out.append(Case(typo(question, rng), (topic["answer"],), "typo"))
    for question in data["none"]["questions"]:
        out.append(Case(question, (), "none"))
    for message, expected in data["multi"]["messages"]:
        out.append(Case(message, tuple(expected), "multi"))
    return out


def is_correct(bot: KnowledgeBaseBot, reply: BotReply, case: Case) -> bool:
    if not case.expected:
        return reply.text == bot.fallback
    parts = reply.text.split("\n\n")
    return len(parts) == len(case.expected) and all(p.startswith(e) for p, e in zip(parts, case.expected, strict=True))


def is_wrong(bot: KnowledgeBaseBot, reply: BotReply, case: Case) -> bool:
    """An answer that is not the right one (the fallback is not wrong, only unhelpful)."""
    return reply.text != bot.fallback and not is_correct(bot, reply, case)


@dataclass
class Tally:
    total: int = 0
    correct: int = 0
    wrong: int = 0
    latencies: list[float] = field(default_factory=list)


def evaluate(bot: KnowledgeBaseBot, answer: object, all_cases: list[Case]) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    for case in all_cases:
        started = time.perf_counter()
        reply = answer(bot, case.message)  # type: ignore[operator]
        elapsed = time.perf_counter() - started
        for group in (case.group, "all"):
            t = tallies.setdefault(group, Tally())
            t.total += 1
            t.correct += is_correct(bot, reply, case)
            t.wrong += is_wrong(bot, reply, case)
            t.latencies.append(elapsed)
    return tallies


def synthetic_texts(count: int, rng: random.Random) -> list[str]:
    """`count` reply-like texts over a vocabulary of 20,000 made-up words (Zipf-like use)."""
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 10))) for _ in range(20000)
    ]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    return [" ".join(rng.choices(vocabulary, weights, k=rng.randint(8, 30))) for _ in range(count)]


POSTGRES_URL = os.environ.get("HANDOFF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def database(backend: str) -> Iterator[Store]:
    """A private, empty database: a SQLite file in a temporary folder, or a PostgreSQL schema of
    its own (dropped afterwards)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            store = Store(f"sqlite:///{Path(folder) / 'bench.db'}")
            try:
                yield store
            finally:
                store.close()
        return
    name = f"bench_assist_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    url = sa.engine.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={name}"})
    store = Store(url.render_as_string(hide_password=False))
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


def latency_figures(
    backend: str, count: int, queries: int, assistants: list[Assistant]
) -> tuple[float, list[tuple[float, float]]]:
    """Seconds to index `count` generated past replies, and per assistant the suggestion
    latency p50 and p99 (ms) over `queries` questions (the first words of indexed contexts)."""
    rng = random.Random(SEED + count)
    contexts = synthetic_texts(count, rng)
    replies = [PastReply(f"generated-{n // 2}", context, f"reply {n}") for n, context in enumerate(contexts)]
    out: list[tuple[float, float]] = []
    with database(backend) as store:
        started = time.perf_counter()
        at = datetime.now(UTC)
        for chunk in range(0, count, 10_000):
            with store.engine.begin() as conn:
                reply_index.add(conn, replies[chunk : chunk + 10_000], at)
        if backend == "postgresql":
            with store.engine.begin() as conn:
                conn.execute(sa.text("ANALYZE past_replies"))
        indexed = time.perf_counter() - started
        questions = [" ".join(rng.choice(contexts).split()[:6]) for _ in range(queries)]
        for assistant in assistants:
            assistant.suggest(store, [questions[0]])  # warm: connection pool, model loaded
            timings = []
            for question in questions:
                started = time.perf_counter()
                assistant.suggest(store, [question])
                timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            out.append((statistics.median(timings), timings[int(len(timings) * 0.99) - 1]))
    return indexed, out


MODEL_MEMORY = """
import gc, psutil
import handoff.api, handoff.assist
gc.collect()
before = psutil.Process().memory_info().rss
embedder = handoff.assist.Embedder()
embedder.vectors(["where is my parcel?"])
gc.collect()
print(psutil.Process().memory_info().rss - before)
"""


def model_memory_mb() -> float:
    """The resident memory loading the embedding model adds to a fresh process that imported the API."""
    result = subprocess.run([sys.executable, "-c", MODEL_MEMORY], capture_output=True, text=True, check=True)
    return int(result.stdout.strip()) / 1e6


AGENT_REPLY = "Agent's answer about {topic}: {answer}"
"""The reply an agent sent in a past conversation of a topic (distinct from the knowledge base's
text, so a hit on it shows the past-reply index at work, not only the knowledge base)."""


@dataclass(frozen=True)
class SuggestionScores:
    held_out: int
    hit_at_1: float
    hit_at_3: float
    mrr: float
    from_past_replies: float  # share of first suggestions that came from a past reply
    out_of_scope: float  # share of questions the knowledge base cannot answer that got a suggestion anyway


def suggestion_figures(assistant: Assistant, backend: str = "sqlite") -> SuggestionScores:
    """Past conversations from the evaluation set: every other question of each topic is a
    resolved conversation (the question, then the topic's agent reply), indexed in a private
    database; the rest are held out and asked; a suggestion is right when it is that topic's
    agent reply or knowledge-base answer."""
    data = tomllib.loads(QUESTIONS.read_text(encoding="utf-8"))
    bot = assistant.bot
    past: list[PastReply] = []
    held: list[tuple[str, set[str]]] = []
    for name, topic in data["topics"].items():
        answer = next(a.text for a in bot.answers if a.text.startswith(topic["answer"]))
        reply = AGENT_REPLY.format(topic=name, answer=answer)
        for number, question in enumerate(topic["questions"]):
            if number % 2 == 0:
                past.append(PastReply(f"past-{name}-{number}", question, reply))
            else:
                held.append((question, {reply, answer}))
    hits1 = hits3 = 0
    reciprocal = 0.0
    from_past = 0
    with database(backend) as store:
        with store.engine.begin() as conn:
            reply_index.add(conn, past, datetime.now(UTC))  # what closing these conversations indexes
        for question, right in held:
            suggested = assistant.suggest(store, [question])
            ranks = [i for i, s in enumerate(suggested) if s.text in right]
            hits1 += bool(ranks) and ranks[0] == 0
            hits3 += bool(ranks)
            reciprocal += 1 / (ranks[0] + 1) if ranks else 0.0
            from_past += bool(suggested) and suggested[0].source.kind == "past_reply"
        unanswerable = data["none"]["questions"]
        noise = sum(bool(assistant.suggest(store, [question])) for question in unanswerable)
    n = len(held)
    return SuggestionScores(n, hits1 / n, hits3 / n, reciprocal / n, from_past / n, noise / len(unanswerable))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench assist", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--quick", action="store_true", help="skip the 100,000-reply indexes")
    args = parser.parse_args(argv)
    bot = KnowledgeBaseBot.from_file()
    all_cases = cases()
    retrieval = evaluate(bot, KnowledgeBaseBot.answer, all_cases)
    regex = evaluate(bot, regex_only, all_cases)
    lines = [
        "| Questions | count | regex bot: correct | retrieval bot: correct | regex bot: wrong | retrieval bot: wrong |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for group in ("as written", "typo", "multi", "none", "all"):
        r, n = regex[group], retrieval[group]
        lines.append(
            f"| {group} | {n.total} | {r.correct / r.total:.0%} | {n.correct / n.total:.0%} "
            f"| {r.wrong / r.total:.0%} | {n.wrong / n.total:.0%} |"
        )
    latencies = sorted(retrieval["all"].latencies)
    p50, p99 = statistics.median(latencies) * 1000, latencies[int(len(latencies) * 0.99) - 1] * 1000
    lines += [
        "",
        f"Answer latency (retrieval bot, {len(latencies)} messages): p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
        f"confidence threshold {bot.confidence_threshold}.",
    ]
    words_only = Assistant(bot, embeddings=False)
    blends = [(weight, Assistant(bot, embeddings=True, semantic_weight=weight)) for weight in (0.3, 0.5, 0.7)]
    lines += [
        "",
        "Suggested replies: held-out questions against past resolved conversations of the other questions",
        "(indexed in the database, found by its full-text search, scored in process).",
        "",
        "| Scoring | database | held out | hit@1 | hit@3 | MRR | first from a past reply "
        "| out-of-scope questions given a suggestion |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, assistant, backend in [
        ("words only", words_only, "sqlite"),
        ("words only", words_only, "postgresql"),
        *((f"words + embeddings ({w:.0%})", a, "sqlite") for w, a in blends),
        (f"words + embeddings ({SEMANTIC_WEIGHT:.0%})", blends[1][1], "postgresql"),
    ]:
        scores = suggestion_figures(assistant, backend)
        lines.append(
            f"| {label} | {backend} | {scores.held_out} | {scores.hit_at_1:.0%} | {scores.hit_at_3:.0%} "
            f"| {scores.mrr:.2f} | {scores.from_past_replies:.0%} | {scores.out_of_scope:.0%} |"
        )
    default = blends[1][1]
    lines += [
        "",
        "| Indexed replies | database | indexing | words only: p50 | p99 | with embeddings: p50 | p99 |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for backend in ("sqlite", "postgresql"):
        for count in (10_000,) if args.quick else (10_000, 100_000):
            indexed, ((w50, w99), (e50, e99)) = latency_figures(backend, count, 200, [words_only, default])
            lines.append(
                f"| {count:,} | {backend} | {indexed:.1f} s | {w50:.1f} ms | {w99:.1f} ms "
                f"| {e50:.1f} ms | {e99:.1f} ms |"
            )
    lines += [
        "",
        f"Memory the embedding model adds to a process that imported the API: {model_memory_mb():.0f} MB (RSS).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    REPORT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
