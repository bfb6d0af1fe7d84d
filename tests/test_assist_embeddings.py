"""Meaning, not only words (issue 14, item 5): the WordLlama model loads from inside its installed
package with no network and no download, and finds a past reply that shares no word with the
question."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from handoff.assist import Assistant, Embedder
from handoff.bot import KnowledgeBaseBot
from handoff.reply_index import PastReply


def test_the_model_loads_and_embeds_with_no_network_and_writes_no_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network access during a test of offline loading")

    # No cached copy can help (an empty home and cache), and any connection attempt is refused and seen.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)

    vectors = Embedder().vectors(["I forgot my password", "How do I reset my login credentials?"])

    assert attempts == [], "loading the model tried to reach the network"
    assert list(tmp_path.rglob("*")) == [], "loading the model wrote a cache (a download)"
    assert vectors.shape == (2, 256)
    assert float(vectors[0] @ vectors[1]) > 0.3  # the same request in other words


def test_loading_the_model_leaves_the_process_logging_as_it_was() -> None:
    """wordllama's import configures the root logger (INFO to stderr): put back, so the API's
    logging stays what its operators set."""
    code = (
        "import logging; from handoff.assist import Embedder; Embedder(); "
        "root = logging.getLogger(); print(len(root.handlers), root.level)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["0", str(logging.WARNING)]


def test_a_past_reply_in_other_words_is_suggested_only_with_embeddings() -> None:
    bot = KnowledgeBaseBot.from_file()
    reply = "I have reopened your account, you can sign in again now."
    past = [
        PastReply("past-1", "my account got locked after too many attempts", reply),
        PastReply("past-2", "the parcel arrived damaged", "Sorry! A replacement is on its way."),
    ]
    question = "I am blocked out of my profile, it says too many tries"
    with_meaning = Assistant(bot, embeddings=True).rank(question, past)
    words_only = Assistant(bot, embeddings=False).rank(question, past)
    assert reply in [s.text for s in with_meaning]
    assert "Sorry! A replacement is on its way." not in [s.text for s in with_meaning]
    with_score = next(s.score for s in with_meaning if s.text == reply)
    words_score = next((s.score for s in words_only if s.text == reply), 0.0)
    assert with_score > words_score
