"""What ops see (issue 12, item 3): the API's and the worker's Prometheus endpoints move as a
conversation goes, and one trace follows an API call through the workflow to its activities.

Everything real: the session's Temporal dev server, a worker of the test's own with the SDK's
Prometheus exporter on a real port, the API over HTTP. Spans are collected in memory by the
OpenTelemetry SDK (the exporter is the only thing swapped: OTLP needs a collector)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from handoff.api import create_app
from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.store import Store
from handoff.telemetry import temporal_interceptors, worker_runtime
from tests.api.conftest import TEST_SECRET
from tests.api.helpers import ALICE, ok, start
from tests.helpers import eventually
from tests.ports import free_port
from worker import build_worker

pytestmark = pytest.mark.parametrize("empty_store", ["sqlite"], indirect=True)


@dataclass
class Observed:
    api: httpx.AsyncClient
    worker_metrics: str  # the worker's /metrics URL
    spans: InMemorySpanExporter
    settings: Settings
    store: Store


def metered_runtime() -> tuple[Runtime, int]:
    """A runtime serving the worker's metrics on a fresh port; another port if that one was taken."""
    for _ in range(5):
        port = free_port()
        try:
            runtime = worker_runtime(f"127.0.0.1:{port}")
        except Exception:  # the SDK could not bind: someone took the port first
            continue
        assert runtime is not None
        return runtime, port
    raise AssertionError("no port for the worker's metrics after 5 tries")


@pytest.fixture
async def observed(
    temporal_env: WorkflowEnvironment, bot: KnowledgeBaseBot, empty_store: Store
) -> AsyncIterator[Observed]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("handoff-test")
    runtime, metrics_port = metered_runtime()
    config = temporal_env.client.config()
    config["interceptors"] = temporal_interceptors(tracer)
    traced = Client(**config)
    # The worker's client: the same connection's settings, on the runtime that serves metrics.
    worker_client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=temporal_env.client.data_converter,
        interceptors=temporal_interceptors(tracer),
        runtime=runtime,
    )
    task_queue = f"handoff-observed-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=task_queue, customer_token_secret=SecretStr(TEST_SECRET), api_temporal_timeout=20.0)
    app = create_app(settings, client=HandoffClient(traced, task_queue, empty_store), store=empty_store, tracer=tracer)
    async with build_worker(worker_client, task_queue, empty_store, bot):
        transport = httpx.ASGITransport(app=app)  # the client is 127.0.0.1: loopback
        async with httpx.AsyncClient(transport=transport, base_url="http://handoff.test", timeout=60) as api:
            yield Observed(api, f"http://127.0.0.1:{metrics_port}/metrics", spans, settings, empty_store)
    provider.shutdown()


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one series in a Prometheus exposition (0 when absent)."""
    total = 0.0
    for line in exposition.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


async def api_metrics(api: httpx.AsyncClient) -> str:
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_the_api_metrics_move_with_a_conversation(observed: Observed) -> None:
    api = observed.api
    before = await api_metrics(api)
    assert sample(before, "handoff_conversations_waiting") == 0
    assert sample(before, "handoff_conversations_held", agent_id="alice") == 0

    conversation = await start(api, "I want to talk to a human please")

    async def waiting() -> float:
        return sample(await api_metrics(api), "handoff_conversations_waiting")

    # The gauges read the database, where the move to Waiting is recorded just after the answer.
    await eventually(waiting, lambda count: count == 1, what="the conversation in the waiting gauge")
    during = await api_metrics(api)
    created = 'handoff_http_requests_total{method="POST",route="/conversations",status="201"}'
    assert created in during, "requests are labelled by the route's template, never by an id"
    assert sample(during, "handoff_http_requests_total", route="/conversations", status="201") == 1
    assert sample(during, "handoff_http_request_duration_seconds_count", route="/conversations") == 1
    assert sample(during, "handoff_conversations_waiting") == 1
    assert sample(during, "handoff_oldest_wait_seconds") > 0
    assert conversation["id"] not in during

    await ok(api.post(f"/conversations/{conversation['id']}/takeover", headers=ALICE))

    async def held_by_alice() -> float:
        return sample(await api_metrics(api), "handoff_conversations_held", agent_id="alice")

    # The gauges read the database, which the workflow's recorder writes just after the command.
    await eventually(held_by_alice, lambda held: held == 1, what="the take-over in the held gauge")
    after = await api_metrics(api)
    assert sample(after, "handoff_conversations_waiting") == 0
    assert sample(after, "handoff_conversations_open", status="human") == 1
    assert (
        sample(after, "handoff_http_requests_total", route="/conversations/{conversation_id}/takeover", status="200")
        == 1
    )


async def test_metrics_are_for_loopback_or_the_metrics_token(observed: Observed) -> None:
    app = observed.api._transport.app  # type: ignore[attr-defined]
    remote = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://handoff.test") as outsider:
        response = await outsider.get("/metrics")
        assert response.status_code == 403 and "HANDOFF_METRICS_TOKEN" in response.json()["detail"]
        observed.settings.metrics_token = SecretStr("a-metrics-token-for-prometheus")
        assert (await outsider.get("/metrics")).status_code == 401
        wrong = await outsider.get("/metrics", headers={"Authorization": "Bearer another-token"})
        assert wrong.status_code == 401
        right = await outsider.get("/metrics", headers={"Authorization": "Bearer a-metrics-token-for-prometheus"})
        assert right.status_code == 200 and "handoff_conversations_waiting" in right.text


async def test_the_worker_metrics_count_activity_outcomes_and_the_sdk_series(observed: Observed) -> None:
    async with httpx.AsyncClient(timeout=10) as scraper:
        before = (await scraper.get(observed.worker_metrics)).text
        assert sample(before, "handoff_activity_outcomes", activity_type="BotAnswer", outcome="completed") == 0

        await start(observed.api, "How do I reset my password?")

        async def bot_answers_completed() -> float:
            text = (await scraper.get(observed.worker_metrics)).text
            return sample(text, "handoff_activity_outcomes", activity_type="BotAnswer", outcome="completed")

        # The SDK exports on its own schedule: poll until the attempt shows.
        await eventually(bot_answers_completed, lambda count: count >= 1, what="BotAnswer attempts counted")
        after = (await scraper.get(observed.worker_metrics)).text
    assert sample(after, "handoff_activity_outcomes", activity_type="BotAnswer", outcome="failed") == 0
    assert sample(after, "temporal_workflow_task_execution_latency_count") > sample(
        before, "temporal_workflow_task_execution_latency_count"
    )


async def test_one_trace_follows_an_api_call_into_the_workflow_and_its_activities(observed: Observed) -> None:
    await start(observed.api, "How do I reset my password?")

    def names_in_api_trace() -> set[str]:
        spans = observed.spans.get_finished_spans()
        roots = [s for s in spans if s.name == "POST /conversations"]
        assert len(roots) == 1, [s.name for s in spans]
        assert roots[0].context is not None
        trace_id = roots[0].context.trace_id
        return {s.name for s in spans if s.context is not None and s.context.trace_id == trace_id}

    async def probe() -> set[str]:
        return names_in_api_trace()

    names = await eventually(
        probe,
        lambda found: {"RunWorkflow:Conversation", "RunActivity:BotAnswer"} <= found,
        what="workflow and activity spans in the API call's trace",
    )
    assert "SignalWithStartWorkflow:Conversation" in names
    # Span names say what ran, never what the customer wrote.
    assert not any("password" in name.lower() for name in names)
