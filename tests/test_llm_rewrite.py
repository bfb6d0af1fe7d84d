"""Optional rewriting by a team's language model (issue 14, item 5), against a real HTTP server
speaking the OpenAI `/chat/completions` protocol, started by the test: suggestions and summaries
come back rewritten with their ids kept; an error or a timeout gives the text as it was; no log
line holds a message or the key; without a configured model, nothing is sent anywhere."""

from __future__ import annotations

import logging

import pytest

from handoff.assist import Suggestion, SuggestionSource
from handoff.config import Settings
from handoff.llm import Rewriter, rewriter_from_settings
from tests.fake_openai import FakeOpenAI, server

__all__ = ["server"]  # the fixture

KEY = "sk-test-key-never-logged"
QUESTION = "my discount code SPRING24 is refused at checkout"
SUGGESTED = "Discount codes don't apply to sale items."


def suggestion() -> Suggestion:
    return Suggestion(id="abc123", text=SUGGESTED, score=0.8, source=SuggestionSource(kind="knowledge_base"))


async def test_suggestions_and_summaries_are_rewritten_with_their_ids_kept(server: str) -> None:
    rewriter = Rewriter(server, "good", KEY)
    try:
        [rewritten] = await rewriter.suggestions([QUESTION], [suggestion()])
        summary = await rewriter.summary("The customer wrote 1 message to the bot: “hello”")
    finally:
        await rewriter.aclose()
    assert rewritten.text == f"Rewritten: {SUGGESTED}" and rewritten.rewritten and rewritten.id == "abc123"
    assert summary == "Rewritten: “hello”"
    first = FakeOpenAI.seen[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == f"Bearer {KEY}"
    assert first["body"]["model"] == "good" and QUESTION in first["body"]["messages"][-1]["content"]


@pytest.mark.parametrize("model", ["broken", "slow"])
async def test_an_error_or_a_timeout_gives_the_text_as_it_was_and_logs_no_text_or_key(
    server: str, model: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rewriter = Rewriter(server, model, KEY, timeout=0.3)
    try:
        [kept] = await rewriter.suggestions([QUESTION], [suggestion()])
        summary = await rewriter.summary("The customer wrote 1 message to the bot: “hello”")
    finally:
        await rewriter.aclose()
    assert kept == suggestion() and summary is None
    assert "rewrite failed" in caplog.text
    for secret in (KEY, QUESTION, "SPRING24", SUGGESTED, "hello"):
        assert secret not in caplog.text


def test_without_a_configured_model_there_is_no_rewriter() -> None:
    assert rewriter_from_settings(Settings(llm_base_url=None, llm_model=None)) is None
    assert rewriter_from_settings(Settings(llm_base_url="http://127.0.0.1:9/v1", llm_model=None)) is None
