"""The benchmark's worker process: `python -m bench.worker handoff|baseline --task-queue Q`.

A separate process, so its resident memory is the worker's alone. The Handoff worker is built
by `worker.build_worker`, exactly as `python worker.py` builds it; the only knob the benchmark
turns is the workflow cache size (`--max-cached`). Settings (address, database) come from the
HANDOFF_* environment like the real worker. Prints `ready` once polling; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.baseline import BaselineConversation, noop_answer
from bench.baseline_updates import BaselineConversationUpdates
from handoff.bot import KnowledgeBaseBot
from handoff.config import Settings
from handoff.converter import data_converter
from handoff.store import Store
from worker import build_worker

READY = "ready"


async def serve(kind: str, task_queue: str, max_cached: int | None, unsandboxed: bool = False) -> None:
    settings = Settings()
    # Handoff's converter encrypts payloads; the hand-written baseline uses the plain pydantic one.
    converter = data_converter(settings) if kind == "handoff" else pydantic_data_converter
    client = await Client.connect(settings.temporal_address, data_converter=converter)
    options: dict[str, object] = {} if max_cached is None else {"max_cached_workflows": max_cached}
    if unsandboxed:
        # Only to measure what the workflow sandbox costs; Handoff's worker runs sandboxed.
        options["workflow_runner"] = UnsandboxedWorkflowRunner()
    store: Store | None = None
    if kind == "handoff":
        store = Store(settings.database_url)
        worker = build_worker(client, task_queue, store, KnowledgeBaseBot.from_file(settings.knowledge_base), **options)
    else:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[BaselineConversation, BaselineConversationUpdates],
            activities=[noop_answer],
            **options,  # type: ignore[arg-type]
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    orphan_watch = asyncio.create_task(stop_when_orphaned(stop))
    try:
        async with worker:
            print(READY, flush=True)
            await stop.wait()
        orphan_watch.cancel()
    finally:
        if store is not None:
            store.close()


async def stop_when_orphaned(stop: asyncio.Event) -> None:
    """A benchmark killed outright must not leave its workers polling forever."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1)
    stop.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("kind", choices=["handoff", "baseline"])
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--max-cached", type=int, default=None)
    parser.add_argument("--unsandboxed", action="store_true", help="run workflows outside the sandbox (to measure it)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.kind, args.task_queue, args.max_cached, args.unsandboxed))
    sys.exit(0)


if __name__ == "__main__":
    main()
