"""Agents at work (issue 10): status changes, offline returns and the automatic assigner.

The assigner runs in the API process when HANDOFF_ASSIGNMENT=auto. Only one process assigns at a
time: it holds the database lease `assigner` (renewed every round; another API process takes it
over within `LEASE_SECONDS` of the holder dying). Each round it reads the Waiting column and
every agent's status and count from the database, asks `handoff.availability.plan_assignments`
who gets what, and sends each pair as the ordinary `TakeOver` update with `automatic=True`,
through the client's slot reservation, so capacity holds exactly as for a manual take-over.
The workflow refuses an automatic take-over of a conversation that is no longer waiting, so a
plan made from a column that has since changed assigns nothing twice.

Cost: one `TakeOver` update per assignment (the same action a manual take-over costs); the
rounds read the database only. A round runs every `ROUND_SECONDS` and at once when something in
this process frees a slot or brings an agent online.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime

from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

from handoff import presence
from handoff.agents import AgentDirectory
from handoff.availability import DEFAULT_CAPACITY, AgentLoad, AgentStatus, Waiting, plan_assignments
from handoff.client import AgentUnavailable, HandoffClient, HandoffError
from handoff.models import Agent
from handoff.store import Store

log = logging.getLogger("handoff.assignment")

LEASE = "assigner"
LEASE_SECONDS = 10.0
ROUND_SECONDS = 0.2
MAX_CONCURRENT = 20
"""Take-overs one round sends at once."""
TAKE_OVER_SHARE = 0.6
"""The assigner waits for one take-over this share of `HandoffClient.slot_stale_after` (a worker
restarting is waited out), then gives up, so that a slot is only healed once nobody sends its
update any more; an update admitted meanwhile still applies, and healing writes it."""


async def change_status(
    handoff: HandoffClient, store: Store, agent: Agent, status: AgentStatus, *, offline_returns: bool
) -> presence.Presence:
    """Set the agent's status; going offline with `offline_returns` puts every conversation they
    hold back in the Waiting column, at the front, each with a note."""
    now = datetime.now(UTC)
    result = await asyncio.to_thread(presence.set_status, store, agent.id, status, now)
    if status is AgentStatus.OFFLINE and offline_returns:
        await return_held(handoff, store, agent)
    return result


async def return_held(handoff: HandoffClient, store: Store, agent: Agent, timeout: float | None = None) -> int:
    """Put what `agent` holds back in the queue (they went offline), all at once; how many went
    back. A conversation that changed hands meanwhile is left alone (the workflow refuses the
    release); one not released within `timeout` is left to a later round of the assigner."""

    async def release(conversation_id: str) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await handoff.release(conversation_id, agent, offline=True)
            return True
        except HandoffError as refused:
            log.info("Not returned to the queue: %s", refused.message)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            log.info("Not returned to the queue yet: Temporal did not answer in time")
        return False

    held = await asyncio.to_thread(store.assigned_to, agent.id)
    return sum(await asyncio.gather(*(release(c.conversation_id) for c in held)))


class Assigner:
    """Gives waiting conversations to online agents with free slots, oldest wait first."""

    def __init__(
        self, handoff: HandoffClient, store: Store, agents: AgentDirectory, *, offline_returns: bool = False
    ) -> None:
        self.handoff = handoff
        self.store = store
        self.agents = agents
        self.offline_returns = offline_returns
        self.holder = f"assigner-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._assigning: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Take-overs sent (each one TakeOver update: a billable action) and those that went through.
        self.sent = 0
        self.assigned = 0

    @property
    def _update_timeout(self) -> float:
        return self.handoff.slot_stale_after.total_seconds() * TAKE_OVER_SHARE

    def wake(self) -> None:
        """Run a round now (a slot freed or an agent came online in this process)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="handoff-assigner")

    async def stop(self) -> None:
        """Stop assigning; take-overs still in flight are abandoned (their slots are healed).

        The SDK turns a cancelled update into an ordinary exception, so the loop also checks
        `_stopping`: a round that ends in one is not retried."""
        self._stopping = True
        for task in [*self._assigning, *([self._task] if self._task else [])]:
            task.cancel()
        for task in [*self._assigning, *([self._task] if self._task else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.store.release_lease, LEASE, self.holder)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if await asyncio.to_thread(self.store.take_lease, LEASE, self.holder, LEASE_SECONDS):
                    await self.round()
            except Exception:  # a database or Temporal outage: try again next round
                if self._stopping:
                    return
                log.warning("Assignment round failed; retrying", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), ROUND_SECONDS)
            self._wake.clear()

    async def round(self) -> int:
        """One round: heal lost slots, return what offline agents hold (if so configured), then
        assign; how many take-overs were sent."""
        await self.handoff.heal_slots()
        if self.offline_returns:
            await self._return_offline()
        plan = await asyncio.to_thread(self._plan)
        if not plan:
            return 0
        limit = asyncio.Semaphore(MAX_CONCURRENT)

        async def assign(conversation_id: str, agent: Agent) -> None:
            async with limit:
                try:
                    async with asyncio.timeout(self._update_timeout):
                        await self.handoff.take_over_result(conversation_id, agent, caller_records=True, automatic=True)
                    self.sent += 1
                    self.assigned += 1
                except AgentUnavailable as refused:  # refused before any update was sent
                    log.debug("Not assigned: %s", refused.message)
                except HandoffError as refused:
                    self.sent += 1
                    log.debug("Not assigned: %s", refused.message)
                except Exception:
                    self.sent += 1
                    log.warning("Assignment failed; its slot is settled later", exc_info=True)
                finally:
                    self._in_flight.discard(conversation_id)

        sent = 0
        for conversation_id, agent_id in plan:
            agent = self.agents.by_id(agent_id)
            if agent is None:
                continue
            self._in_flight.add(conversation_id)
            task = asyncio.create_task(assign(conversation_id, agent))
            self._assigning.add(task)
            task.add_done_callback(self._assigning.discard)
            sent += 1
        # Rounds go on while these run (a slow one must not hold up the others): the next round
        # leaves conversations in flight alone, and counts their slots.
        return sent

    async def settled(self) -> None:
        """Wait for the take-overs sent so far (tests and the benchmark)."""
        while self._assigning:
            await asyncio.gather(*list(self._assigning), return_exceptions=True)

    def _plan(self) -> list[tuple[str, str]]:
        now = datetime.now(UTC)
        waiting = [
            Waiting(c.conversation_id, c.waiting_since or c.updated_at)
            for c in self.store.waiting()
            if c.conversation_id not in self._in_flight
        ]
        if not waiting:
            return []
        statuses = presence.presences(self.store)
        counts = presence.held_counts(self.store)
        capacities = self.handoff.capacities or self.agents.capacities(DEFAULT_CAPACITY)
        loads = []
        for entry in self.agents.agents:
            state = statuses.get(entry.id)
            if state is None or state.status is not AgentStatus.ONLINE:
                continue
            capacity = capacities.of(entry.id)
            idle_since = state.last_assigned_at or state.changed_at or now
            loads.append(AgentLoad(entry.id, state.status, counts.get(entry.id, 0), capacity, idle_since))
        return plan_assignments(waiting, loads, now)

    async def _return_offline(self) -> None:
        statuses = await asyncio.to_thread(presence.presences, self.store)
        held = await asyncio.to_thread(presence.holding_counts, self.store)
        for agent_id, count in held.items():
            state = statuses.get(agent_id)
            agent = self.agents.by_id(agent_id)
            # Only an agent who said they are offline: one with no status yet (e.g. holding
            # conversations from before statuses existed) keeps them.
            if count and agent is not None and state is not None and state.status is AgentStatus.OFFLINE:
                await return_held(self.handoff, self.store, agent, self._update_timeout)
