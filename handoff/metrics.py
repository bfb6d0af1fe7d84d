"""The API's Prometheus metrics: requests by route and status, their latency, and the live
support figures ops page on (who is waiting, for how long, who holds what).

Request series are labelled by the route's *template* (`/conversations/{conversation_id}`),
never by the path a client sent: ids would make one series per conversation, and a series
name is not the place for them. The live gauges are read from the database when Prometheus
scrapes (one aggregate query, no Temporal call), so they are exact at that instant whichever
API process or worker wrote the change, and cost nothing between scrapes.

The worker's metrics (the Temporal SDK's own, plus activity outcomes) are served by the
worker process itself: see `handoff/telemetry.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handoff.models import Status
from handoff.store import Store, conversations

__all__ = ["CONTENT_TYPE_LATEST", "ApiMetrics", "RequestMetrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds; the API's reads answer in milliseconds, commands wait for Temporal (up to 5 s)."""

UNMATCHED_ROUTE = "unmatched"
"""The label of a request no route took (a 404 or a scanner): one series for all of them."""


class LiveSupportCollector(Collector):
    """Gauges of the live columns, computed from the database at scrape time."""

    def __init__(self, store: Callable[[], Store | None], agent_ids: Callable[[], Iterable[str]]) -> None:
        self._store = store
        self._agent_ids = agent_ids

    def describe(self) -> Iterable[Metric]:
        # Registering must not query the database (it may not be open yet).
        return []

    def collect(self) -> Iterable[Metric]:
        store = self._store()
        if store is None:
            return
        open_statuses = [Status.BOT.value, Status.WAITING.value, Status.HUMAN.value]
        with store.engine.connect() as conn:
            by_status: dict[str, int] = dict(
                conn.execute(
                    sa.select(conversations.c.status, sa.func.count())
                    .where(conversations.c.status.in_(open_statuses))
                    .group_by(conversations.c.status)
                ).all()
            )
            oldest_waiting = conn.execute(
                sa.select(sa.func.min(conversations.c.waiting_since)).where(
                    conversations.c.status == Status.WAITING.value
                )
            ).scalar_one()
            held: dict[str | None, int] = dict(
                conn.execute(
                    sa.select(conversations.c.agent_id, sa.func.count())
                    .where(conversations.c.status == Status.HUMAN.value)
                    .group_by(conversations.c.agent_id)
                ).all()
            )
        open_now = GaugeMetricFamily(
            "handoff_conversations_open", "Open conversations by status (bot, waiting, human).", labels=["status"]
        )
        for status in open_statuses:
            open_now.add_metric([status], by_status.get(status, 0))
        yield open_now
        yield GaugeMetricFamily(
            "handoff_conversations_waiting", "Conversations in the Waiting column.", value=by_status.get("waiting", 0)
        )
        if oldest_waiting is not None and oldest_waiting.tzinfo is None:
            oldest_waiting = oldest_waiting.replace(tzinfo=UTC)
        waited = 0.0 if oldest_waiting is None else (datetime.now(UTC) - oldest_waiting).total_seconds()
        yield GaugeMetricFamily(
            "handoff_oldest_wait_seconds",
            "How long the longest-waiting conversation has waited for a person (0: nobody waits).",
            value=max(waited, 0.0),
        )
        per_agent = GaugeMetricFamily(
            "handoff_conversations_held", "Conversations each agent holds now.", labels=["agent_id"]
        )
        for agent_id in sorted({*self._agent_ids(), *(a for a in held if a)}):
            per_agent.add_metric([agent_id], held.get(agent_id, 0))
        yield per_agent


class ApiMetrics:
    """One registry per app (not the process-global one), so two apps in one process, as in
    the tests or `handoff up`, never count each other's requests."""

    def __init__(self, store: Callable[[], Store | None], agent_ids: Callable[[], Iterable[str]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "handoff_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "handoff_http_request_duration_seconds",
            "Time to answer an HTTP request (for a stream: until it ends), by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(LiveSupportCollector(store, agent_ids))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def route_template(scope: Scope) -> str:
    """The path template of the route that took the request (FastAPI puts it in the scope)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestMetrics:
    """Pure ASGI middleware: counts and times every HTTP request (streams included, which a
    `BaseHTTPMiddleware` would buffer), and opens the request's trace span, so the Temporal
    calls it makes (and the workflow and activities behind them) join one trace."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, tracer: Any | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        started = time.perf_counter()

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            if self.tracer is None:
                await self.app(scope, receive, send_and_note_status)
            else:
                await self._traced(scope, receive, send_and_note_status)
        finally:
            self.metrics.observe(route_template(scope), scope["method"], status, time.perf_counter() - started)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        assert self.tracer is not None
        method = scope["method"]
        with self.tracer.start_as_current_span(f"{method} {scope['path']}", kind=SpanKind.SERVER) as span:
            status = 500

            async def note(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await self.app(scope, receive, note)
            finally:
                # The route is known only once routing ran: name the span by its template
                # (ids stay out of span names, as out of metric labels).
                route = route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
