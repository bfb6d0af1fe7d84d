"""Ops: `/metrics` in Prometheus format (see handoff/metrics.py for the series).

The series name agents and count conversations, which is no business of the internet: with
`HANDOFF_METRICS_TOKEN` set, a scrape must carry `Authorization: Bearer <token>` (Prometheus's
`authorization` setting); unset, only a client on this machine (loopback) is answered, which is
what `handoff up` and a local Prometheus need.
"""

from __future__ import annotations

import hmac
from ipaddress import ip_address

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from handoff.api.deps import ServicesDep
from handoff.metrics import CONTENT_TYPE_LATEST, ApiMetrics

router = APIRouter(tags=["ops"])


def _from_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _authorize(request: Request, s: ServicesDep) -> None:
    token = s.settings.metrics_token
    if token is None:
        if not _from_loopback(request):
            raise HTTPException(403, "metrics are served to loopback only unless HANDOFF_METRICS_TOKEN is set")
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
        raise HTTPException(401, "metrics need Authorization: Bearer <HANDOFF_METRICS_TOKEN>")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text exposition format."}},
)
async def metrics(request: Request, s: ServicesDep) -> Response:
    """Requests by route and status, latency histograms, and the live support gauges."""
    _authorize(request, s)
    api_metrics: ApiMetrics = request.app.state.metrics
    # The live gauges query the database: off the event loop.
    body = await run_in_threadpool(api_metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
