"""Traces across processes and the worker's metrics.

**Traces.** One trace follows an API call into Temporal and on to the workflow and its
activities: the API opens a server span per request (`handoff.metrics.RequestMetrics`), and
Temporal's `TracingInterceptor` (`temporalio.contrib.opentelemetry`) carries the span context in
the headers of every start, signal and update, so the worker's workflow and activity spans join
the same trace. Tracing is on when OpenTelemetry's standard variables name an OTLP endpoint
(`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, OTLP over HTTP;
`OTEL_SERVICE_NAME` overrides the service name); off, no interceptor runs at all, so an
untraced worker pays nothing for it. Span names and attributes carry ids and route templates,
never message text or customer ids (payloads stay encrypted; see README, Security).

**Worker metrics.** `HANDOFF_WORKER_METRICS_ADDRESS` (e.g. `0.0.0.0:9464`) makes the worker serve
`/metrics` in Prometheus format from the Temporal SDK's own exporter: its workflow-task,
activity and poller series, plus `handoff_activity_outcomes` (recorded through the SDK's metric
meter, so one endpoint serves both). Unset, the worker serves no metrics, so two workers on one
machine never fight over a port.
"""

from __future__ import annotations

import asyncio
import atexit
import os
from typing import Any

from temporalio import activity
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_configured() -> bool:
    return any(os.environ.get(name) for name in OTLP_ENDPOINT_VARIABLES)


def tracer_from_environment(service_name: str) -> Any | None:
    """A tracer exporting over OTLP/HTTP when an endpoint is configured, else None (no tracing).

    The provider is this process's own rather than OpenTelemetry's global one, so the API and
    the worker of `handoff up`, or a test, each pass theirs explicitly."""
    if not tracing_configured():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    atexit.register(provider.shutdown)  # sends the spans still batched
    return provider.get_tracer("handoff")


def temporal_interceptors(tracer: Any | None) -> list[ClientInterceptor]:
    """The client interceptors for `tracer` (they act on the worker too, when it uses the client)."""
    if tracer is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer)]


def worker_runtime(metrics_address: str | None) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics on `metrics_address`, or None (the default
    runtime, no metrics endpoint). One per process: the SDK binds the port when it is made."""
    if not metrics_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics_address)))


class ActivityOutcomes(Interceptor):
    """Counts each activity attempt by type and outcome (`completed`, `failed`, `cancelled`) and
    whether it was a retry: the figures ops watch for a database outage (record_facts failing
    and retrying) or a stuck bot (bot_answer failing), in the worker's Prometheus endpoint."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountOutcomes(next)


class _CountOutcomes(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        counter = activity.metric_meter().create_counter(
            "handoff_activity_outcomes", "Activity attempts by type, outcome and whether it was a retry."
        )
        attributes: dict[str, str | int | float | bool] = {
            "activity_type": info.activity_type,
            "retry": info.attempt > 1,
        }
        try:
            result = await self.next.execute_activity(input)
        except asyncio.CancelledError:
            counter.add(1, {**attributes, "outcome": "cancelled"})
            raise
        except BaseException:
            counter.add(1, {**attributes, "outcome": "failed"})
            raise
        counter.add(1, {**attributes, "outcome": "completed"})
        return result
