"""Schemathesis against the API's own OpenAPI schema: whatever a client sends, never a 5xx.

The app is `create_app` on the session's real Temporal dev server with a real worker (a
private task queue and store, so the conversations made here show nowhere else), served
over real HTTP in this process. Every operation is fuzzed twice, with valid inputs and with
inputs that break the schema, each time with a valid token of the right kind (an agent's,
the conversation's customer token, the operators' codec token), both on made-up
conversation ids and on a real conversation, so requests get past authentication into the
handlers and down to Temporal and the database. Hypothesis runs in a thread, because the
worker and the app live on the test's event loop, which must keep running meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation

from handoff.api import create_app
from tests.security.conftest import CODEC_TOKEN, Engine, api_settings
from tests.security.server import serving

EXAMPLES_PER_STRATEGY = 20
# Event streams (SSE) never end: each call reads for a second, so they get fewer examples.
STREAM_EXAMPLES = 5
STREAM_TIMEOUT = (60.0, 1.0)
AGENT = {"Authorization": "Bearer alice-demo-token-not-secret"}
CODEC = {"Authorization": f"Bearer {CODEC_TOKEN}"}
# Operations without a parameter or body once the token is fixed: no invalid request exists.
# Named one by one, so an operation that silently stops being fuzzed fails the test instead.
# (A conversation id is any string, so its path parameter has no invalid value either.)
NOTHING_TO_NEGATE = {
    "POST /conversations/{conversation_id}/request-human",
    "POST /conversations/{conversation_id}/takeover",
    "POST /conversations/{conversation_id}/hand-back",
    "POST /conversations/{conversation_id}/release",
    "GET /conversations/{conversation_id}",
    "GET /live/waiting",
    "GET /live/mine",
    "GET /metrics",
    "GET /conversations/{conversation_id}/suggestions",
    "GET /conversations/{conversation_id}/handover-summary",
    "POST /conversations/{conversation_id}/exclude-from-suggestions",
    "GET /session",
    "DELETE /session",
    "GET /team",
    "GET /agents",
}


@dataclass
class Known:
    """A real conversation, so fuzzed requests reach the handlers, not just a 404."""

    conversation_id: str
    customer: dict[str, str]


@dataclass
class Findings:
    server_errors: list[str] = field(default_factory=list)
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    nothing_to_negate: set[str] = field(default_factory=set)


def variants(operation: APIOperation[Any, Any, Any, Any], known: Known) -> list[dict[str, Any]]:
    """The fixed parts of each request: a valid token for the operation, with a generated or a real id."""
    path, tags = operation.path, operation.definition.raw.get("tags", [])
    if path.startswith("/codec"):
        return [{"headers": CODEC}]
    has_id = "{conversation_id}" in path
    real = {"path_parameters": {"conversation_id": known.conversation_id}}
    if "customer" in tags:
        if not has_id:
            return [{}]  # starting a conversation needs no token
        return [{"headers": known.customer}, {"headers": known.customer, **real}]
    return [{"headers": AGENT}, *([{"headers": AGENT, **real}] if has_id else [])]


def fuzz(schema: schemathesis.BaseSchema, base_url: str, known: Known) -> Findings:
    findings = Findings()
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema fails the test here
        for fixed in variants(operation, known):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                name = f"{operation.method.upper()} {operation.path}"
                stream = "text/event-stream" in operation.definition.raw["responses"].get("200", {}).get("content", {})
                try:
                    run_one(
                        operation.as_strategy(generation_mode=mode, **fixed),
                        base_url,
                        findings,
                        examples=STREAM_EXAMPLES if stream else EXAMPLES_PER_STRATEGY,
                        timeout=STREAM_TIMEOUT if stream else 60,
                    )
                except Unsatisfiable:
                    # Hypothesis gave up: nothing in the request can be made invalid once the
                    # token is fixed. Allowed only for the operations named for it.
                    if mode is not GenerationMode.NEGATIVE or name not in NOTHING_TO_NEGATE:
                        raise
                    findings.nothing_to_negate.add(name)
    return findings


def run_one(
    strategy: st.SearchStrategy[schemathesis.Case[Any]],
    base_url: str,
    findings: Findings,
    *,
    examples: int = EXAMPLES_PER_STRATEGY,
    timeout: float | tuple[float, float] = 60,
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def call(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=base_url, timeout=timeout)
        findings.calls += 1
        findings.statuses[response.status_code] = findings.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            body = response.content[:300].decode("utf-8", "replace")
            findings.server_errors.append(f"{response.status_code} {body}\n  {case.as_curl_command()}")

    call()


@pytest.mark.slow
async def test_no_request_the_schema_allows_or_breaks_gets_a_server_error(private: Engine, tmp_path: Path) -> None:
    app = create_app(api_settings(private.handoff.task_queue, tmp_path), client=private.handoff, store=private.store)
    async with serving(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as api:
            created = (await api.post("/conversations", json={"customer_id": "fuzz", "text": "hello"})).json()
            known = Known(created["id"], {"Authorization": f"Bearer {created['customer_token']}"})
            schema = schemathesis.openapi.from_dict((await api.get("/openapi.json")).json())
        findings = await asyncio.to_thread(fuzz, schema, base_url, known)
    assert findings.server_errors == [], "\n".join(findings.server_errors)
    # The list of operations without invalid requests is current (it hides no fuzzing).
    assert findings.nothing_to_negate == NOTHING_TO_NEGATE
    # The fuzzing got past authentication and validation into the handlers.
    assert findings.calls > 200
    assert sum(n for code, n in findings.statuses.items() if code < 300) > 50, findings.statuses
    assert {401, 404, 409, 422} <= set(findings.statuses), findings.statuses


# What the fuzzer found once or cannot reach (it never sends a lone surrogate, NaN, or a date
# at the calendar's edge with a far offset): each was a 500, each must be a 422 that says why.
JSON = {"Content-Type": "application/json"}
SURROGATE_TEXT = b'{"text": "hi \\ud800"}'


@pytest.fixture(scope="module")
async def local_api(private: Engine, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        api_settings(private.handoff.task_queue, tmp_path_factory.mktemp("fuzz")),
        client=private.handoff,
        store=private.store,
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://handoff.test", timeout=60) as api:
        yield api


@pytest.fixture(scope="module")
async def held(local_api: httpx.AsyncClient) -> Known:
    """A conversation Alice holds."""
    created = (await local_api.post("/conversations", json={"customer_id": "fuzz", "text": "hello"})).json()
    assert (await local_api.post(f"/conversations/{created['id']}/takeover", headers=AGENT)).status_code == 200
    return Known(created["id"], {"Authorization": f"Bearer {created['customer_token']}"})


async def refused_as_invalid(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 422, response.text
    assert reason in response.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"customer_id": "c", "text": "hi \\ud800"}', "the message is not valid Unicode text"),
        (b'{"customer_id": "c\\udfff", "text": "hi"}', "valid string"),
        (b'{"customer_id": NaN, "text": "hi"}', '"loc": ["body", "customer_id"]'),
        (b'{"customer_id": "c", "text": Infinity}', '"loc": ["body", "text"]'),
        (b"[-Infinity]", "valid dictionary"),
    ],
    ids=["surrogate-text", "surrogate-customer-id", "nan", "infinity", "bare-infinity"],
)
async def test_a_start_that_no_payload_or_json_answer_can_carry_is_a_422(
    local_api: httpx.AsyncClient, body: bytes, reason: str
) -> None:
    await refused_as_invalid(await local_api.post("/conversations", content=body, headers=JSON), reason)


async def test_a_message_or_reply_with_a_lone_surrogate_is_a_422(local_api: httpx.AsyncClient, held: Known) -> None:
    cid = held.conversation_id
    sent = await local_api.post(f"/conversations/{cid}/messages", content=SURROGATE_TEXT, headers=held.customer | JSON)
    await refused_as_invalid(sent, "the message is not valid Unicode text")
    replied = await local_api.post(f"/conversations/{cid}/replies", content=SURROGATE_TEXT, headers=AGENT | JSON)
    await refused_as_invalid(replied, "the reply is not valid Unicode text")


@pytest.mark.parametrize("path", ["/conversations", "/stats"])
@pytest.mark.parametrize("when", ["since=9999-12-31T23:59:59-23:59", "until=0001-01-01T00:00:00%2B23:59"])
async def test_a_date_that_leaves_the_calendar_in_utc_is_a_422(
    local_api: httpx.AsyncClient, path: str, when: str
) -> None:
    await refused_as_invalid(await local_api.get(f"{path}?{when}", headers=AGENT), "is out of range in UTC")
