"""Optional rewriting by a team's own language model (issue 14, item 5).

With `HANDOFF_LLM_BASE_URL` and `HANDOFF_LLM_MODEL` set (and `HANDOFF_LLM_API_KEY` if the server
wants one), suggestions and the handover summary are sent to that server's OpenAI-compatible
`POST {base}/chat/completions` (vLLM, Ollama, llama.cpp's server, ...) to be rewritten. Without
them nothing is sent anywhere and everything works as before.

The model only ever *improves wording*: any error, a timeout (`HANDOFF_LLM_TIMEOUT`), an empty or
oversized answer gives back the text as it was, and the suggestion keeps its id (feedback refers
to what was suggested, not to its wording). Log lines name the failure's kind only: never a
message text, a rewritten text or the key.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from handoff.assist import Suggestion
    from handoff.config import Settings

log = logging.getLogger("handoff.llm")

MAX_REWRITE_CHARS = 4000
"""An answer longer than this is not a rewrite of a reply: the original is kept."""

CACHE_SIZE = 1000
"""Rewrites remembered per process, so refreshing suggestions does not ask again."""

SUGGESTION_PROMPT = (
    "You help a customer-support agent. Rewrite the suggested reply so it answers the customer's "
    "latest messages directly, in the same language as the customer, friendly and short. Keep every "
    "fact, link, number and instruction of the suggested reply; add no new facts or promises. "
    "Answer with the rewritten reply only."
)
SUMMARY_PROMPT = (
    "You help a customer-support agent who is taking over a conversation from a bot. Rewrite this "
    "summary of the bot session as two or three plain sentences: what the customer needs, what the "
    "bot already answered, where it failed. Keep the facts and times; add nothing. Answer with the "
    "summary only."
)


class Rewriter:
    """A client of one OpenAI-compatible chat-completions endpoint."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout)
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def rewrite(self, instruction: str, text: str) -> str | None:
        """The model's rewrite of `text`, or None (on any failure: the caller keeps `text`)."""
        key = (instruction, text)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": instruction}, {"role": "user", "content": text}],
            "temperature": 0.2,
        }
        try:
            response = await self._http.post(self.url, json=body)
            response.raise_for_status()
            answer: Any = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as e:
            # The kind of failure only: the request and the answer hold the customer's words.
            log.warning("the language model's rewrite failed (%s): the text is used as it is", type(e).__name__)
            return None
        if not isinstance(answer, str) or not answer.strip() or len(answer) > MAX_REWRITE_CHARS:
            log.warning("the language model gave no usable rewrite: the text is used as it is")
            return None
        rewritten = answer.strip()
        self._cache[key] = rewritten
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return rewritten

    async def suggestions(self, context: list[str], suggested: list[Suggestion]) -> list[Suggestion]:
        """Each suggestion rewritten for the customer's latest messages (at once), ids kept."""
        customer = "\n".join(f"Customer: {message}" for message in context)
        rewrites = await asyncio.gather(
            *(self.rewrite(SUGGESTION_PROMPT, f"{customer}\n\nSuggested reply: {s.text}") for s in suggested)
        )
        return [
            s if text is None else s.model_copy(update={"text": text, "rewritten": True})
            for s, text in zip(suggested, rewrites, strict=True)
        ]

    async def summary(self, text: str) -> str | None:
        return await self.rewrite(SUMMARY_PROMPT, text)


def rewriter_from_settings(settings: Settings) -> Rewriter | None:
    """The team's rewriter, or None when no language model is configured."""
    if not settings.llm_base_url or not settings.llm_model:
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return Rewriter(settings.llm_base_url, settings.llm_model, key, settings.llm_timeout)
