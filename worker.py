"""Run a Handoff worker: `python worker.py`.

Settings come from the environment (see `handoff.config.Settings`): HANDOFF_TEMPORAL_ADDRESS,
HANDOFF_NAMESPACE, HANDOFF_TASK_QUEUE, HANDOFF_DATABASE_URL, HANDOFF_KNOWLEDGE_BASE, and the payload
encryption keys HANDOFF_ENCRYPTION_KEYS (the same as the API's; see handoff/codec.py).
SIGTERM or SIGINT stops polling, lets in-flight activities finish, then exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities import ConversationActivities
from handoff import payload_passes
from handoff.bot import KnowledgeBaseBot, KnowledgeBaseError
from handoff.codec import EncryptionConfigError
from handoff.config import Settings
from handoff.connection import TemporalTlsError, connect_temporal
from handoff.local_secrets import SecretFileError
from handoff.sandbox import compile_workflow_modules, workflow_runner
from handoff.store import Store
from handoff.telemetry import ActivityOutcomes, tracer_from_environment, worker_runtime
from workflows import ConversationWorkflow

log = logging.getLogger("handoff.worker")

ACTIVITY_THREADS = 16


def build_worker(client: Client, task_queue: str, store: Store, bot: KnowledgeBaseBot, **options: object) -> Worker:
    """A worker for conversations on `task_queue`, recording into `store`."""
    activities = ConversationActivities(store, bot)
    options.setdefault("max_cached_workflows", Settings.model_fields["max_cached_conversations"].default)
    # The sandbox stays on; this runner only spares it recompiling (handoff/sandbox.py).
    options.setdefault("workflow_runner", workflow_runner())
    compile_workflow_modules(ConversationWorkflow)
    # One walk over each activation's and completion's payloads, not three (handoff/payload_passes.py).
    payload_passes.install()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ConversationWorkflow],
        activities=[activities.bot_answer, activities.record_facts],
        activity_executor=ThreadPoolExecutor(ACTIVITY_THREADS),
        # Tracing, when on, comes with the client (handoff/telemetry.py); outcomes always count.
        interceptors=[ActivityOutcomes()],
        max_concurrent_activities=ACTIVITY_THREADS,
        graceful_shutdown_timeout=timedelta(seconds=10),
        **options,  # type: ignore[arg-type]
    )


async def run_worker(settings: Settings, stop: asyncio.Event, bot: KnowledgeBaseBot | None = None) -> None:
    """Run until `stop` is set, then shut down gracefully; `bot` defaults to the configured knowledge base."""
    bot = bot or KnowledgeBaseBot.from_file(settings.knowledge_base)  # a refused pattern stops us here
    client = await connect_temporal(
        settings,
        tracer=tracer_from_environment("handoff-worker"),
        runtime=worker_runtime(settings.worker_metrics_address),
    )
    store = Store(settings.database_url)
    try:
        async with build_worker(
            client, settings.task_queue, store, bot, max_cached_workflows=settings.max_cached_conversations
        ):
            log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
            await stop.wait()
            log.info("worker shutting down")
    finally:
        store.close()


async def main(bot: KnowledgeBaseBot | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_worker(Settings(), stop, bot)
    except (KnowledgeBaseError, TemporalTlsError, EncryptionConfigError, SecretFileError) as refused:
        # Ops can act on this one: say it in one line, not a traceback.
        log.error("%s", refused)
        raise SystemExit(2) from None


if __name__ == "__main__":
    asyncio.run(main())
