"""Handoff's HTTP API: what the customer's chat widget and the agent UI call.

One module per audience under `routes/` (customer, agents, live columns, history and
statistics); what they share is in `deps` (services, callers, bounded Temporal calls),
how failures become HTTP answers in `errors`, how one conversation is read in `reads`.
Commands go to the conversation's workflow through `HandoffClient`; every Temporal call
is bounded by `Settings.api_temporal_timeout`, so an outage is a prompt 503, never a
hanging request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from handoff.agent_sessions import AgentSessions
from handoff.agents import AgentDirectory
from handoff.api.deps import Services
from handoff.api.docs import ASSETS_URL, install_docs
from handoff.api.errors import BodyLimit, NoStore, install_error_handlers
from handoff.api.pages import install_pages
from handoff.api.routes import agents, assist, customer, events, history, live, metrics, people, session, team
from handoff.assignment import Assigner
from handoff.assist import Assistant
from handoff.availability import AssignmentMode
from handoff.bot import KnowledgeBaseBot
from handoff.client import HandoffClient
from handoff.codec_server import codec_router
from handoff.config import Settings
from handoff.connection import connect_temporal
from handoff.customer_tokens import CustomerTokens, load_secret
from handoff.llm import rewriter_from_settings
from handoff.metrics import ApiMetrics, RequestMetrics
from handoff.presence import STALE_SLOT
from handoff.store import Store
from handoff.telemetry import tracer_from_environment
from handoff.webhooks import start_webhooks

__all__ = ["Services", "create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    client: HandoffClient | None = None,
    store: Store | None = None,
    tracer: Any | None = None,
) -> FastAPI:
    """The API app. Without `client`/`store` it connects to Temporal (lazily, so it starts even
    while Temporal is down and answers 503 until it is back) and opens the database at start-up;
    its own client enforces the agents' capacity, a given `client` its own `capacities` (if any).
    `tracer` (default: the OTLP one the environment configures, if any) traces each request into
    the workflows and activities it reaches (handoff/telemetry.py)."""
    settings = settings or Settings()
    tracer = tracer or tracer_from_environment("handoff-api")
    agent_directory = AgentDirectory.from_settings(settings.agents_file)
    secret = load_secret(settings)
    s = Services(
        settings=settings,
        agents=agent_directory,
        tokens=CustomerTokens(secret),
        sessions=AgentSessions(secret, agent_directory),
        client=client,
        store=store,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        own_store = s.store is None
        if s.client is None:
            temporal = await connect_temporal(settings, lazy=True, tracer=tracer)
            s.client = HandoffClient(
                temporal,
                settings.task_queue,
                timers=settings.timers(),
                handover_summaries=settings.handover_summary,
                # Issue 10: take-overs and transfers count against the agent's capacity; a slot is
                # healed only once its sender gave up (see HandoffClient.heal_slots).
                capacities=agent_directory.capacities(settings.agent_capacity),
                slot_stale_after=max(STALE_SLOT, 2 * timedelta(seconds=settings.api_temporal_timeout)),
            )
        if s.store is None:
            s.store = Store(settings.database_url)
        if s.client.store is None:
            # Long conversations hold only recent entries; older ones are read from here.
            s.client.store = s.store
        deliverer = await start_webhooks(settings, s.store, _app)
        if settings.assignment is AssignmentMode.AUTO:
            s.assigner = Assigner(s.client, s.store, agent_directory, offline_returns=settings.offline_returns)
            s.assigner.start()
        try:
            yield
        finally:
            if s.assigner is not None:
                await s.assigner.stop()
            if deliverer is not None:
                await deliverer.stop()
            hub = getattr(_app.state, "push_hub", None)
            if hub is not None:
                await hub.stop()
            if own_store:
                s.store.close()
            if _app.state.rewriter is not None:
                await _app.state.rewriter.aclose()

    app = FastAPI(
        title="Handoff",
        summary="Customer-support conversations: bot, waiting, human, closed.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by `install_docs`, from installed files instead of a CDN
        redoc_url=None,
    )
    app.state.services = s
    # Suggested replies: the knowledge base is read once, here (a bad file stops the start-up).
    app.state.assistant = Assistant(
        KnowledgeBaseBot.from_file(settings.knowledge_base), embeddings=settings.assist_embeddings
    )
    app.state.rewriter = rewriter_from_settings(settings)
    app.state.metrics = ApiMetrics(lambda: s.store, lambda: [agent.id for agent in s.agents.agents])
    app.add_middleware(BodyLimit)
    app.add_middleware(NoStore, cacheable=f"{ASSETS_URL}/")
    # Outermost: it counts and traces what the client gets, 413s and error answers included.
    app.add_middleware(RequestMetrics, metrics=app.state.metrics, tracer=tracer)
    install_error_handlers(app)
    install_docs(app)
    install_pages(app, settings.widget_frame_ancestors)
    # Customer routes first: POST /conversations starts one, GET /conversations is the history.
    for router in (
        customer.router,
        agents.router,
        assist.router,
        history.router,
        live.router,
        people.router,
        events.router,
        session.router,
        team.router,
    ):
        app.include_router(router)
    app.include_router(metrics.router)
    app.include_router(codec_router(settings))  # operators' decryption, see handoff/codec_server.py
    return app
