"""What `open_engine` starts beside the actors: event systems, pollers, in-process handoffs.

Orchestration's event systems are the queue consumers (one per route), the retry timer and
the staleness sweeper; the workers' are the lease keeper and one poller per namespace queue.
Each runs in a nursery from `cancelled_on_exit`, so it stops when the engine closes. When
orchestration and workers share a process, `hand_off` connects them directly through a
`SupportsHandoff` store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

import trio

from tasker_trio.actors import ActorRegistry
from tasker_trio.models import ORCHESTRATION_STEP_RESULTS, worker_queue
from tasker_trio.orchestration.command_processor import CommandProcessor
from tasker_trio.orchestration.context import OrchestrationContext
from tasker_trio.orchestration.event_systems.dispatchers import orchestration_routes
from tasker_trio.orchestration.event_systems.queue_consumer import ConsumerSettings, QueueConsumer
from tasker_trio.orchestration.event_systems.retry_timer import run_retry_timer
from tasker_trio.orchestration.event_systems.staleness_sweeper import run_staleness_sweeper
from tasker_trio.orchestration.services.staleness import StalenessService
from tasker_trio.store.protocol import SupportsHandoff
from tasker_trio.worker.actor import WorkerContext, WorkerHandoff, poll_queue
from tasker_trio.worker.leases import keep_leases


async def start_event_systems(
    events: trio.Nursery,
    context: OrchestrationContext,
    *,
    commands: CommandProcessor,
    settings: ConsumerSettings,
    staleness: StalenessService,
    staleness_interval: float,
) -> QueueConsumer | None:
    """The orchestration queue consumers, the retry timer and the staleness sweeper.

    Returns the step results' consumer.
    """
    results: QueueConsumer | None = None
    for route in orchestration_routes(commands):
        consumer = QueueConsumer(
            context.broker,
            route.queue,
            route.dispatch,
            settings,
            on_poison=partial(_count, context),
            group=route.group,
            consumes=route.consumes,
            read=context.store.read_for_processing if route.read_ahead else None,
        )
        await events.start(consumer.run)
        if route.queue == ORCHESTRATION_STEP_RESULTS:
            results = consumer
    await events.start(
        partial(run_retry_timer, context, commands, poll_interval=settings.poll_interval)
    )
    await events.start(partial(run_staleness_sweeper, staleness, interval=staleness_interval))
    return results


def hand_off(
    stack: AsyncExitStack,
    store: SupportsHandoff,
    *,
    worker: WorkerContext,
    worker_registry: ActorRegistry[WorkerContext],
    namespaces: list[str],
    results: QueueConsumer,
) -> None:
    """Hand steps and results between this process's orchestration and workers.

    Undone first on the way out, before the workers stop: plans made then leave their
    steps in the queues, and results go through the queue.
    """
    handoff = WorkerHandoff(
        context=worker,
        actor=worker_registry.ref("WorkerActor"),
        queues=frozenset(worker_queue(namespace) for namespace in namespaces),
        worker_id=worker.settings.worker_id,
        lease_seconds=worker.settings.visibility_timeout,
    )
    store.hand_off(worker=handoff, results=results)

    def undo() -> None:
        handoff.close()
        store.hand_off()

    stack.callback(undo)


async def start_pollers(
    pollers: trio.Nursery,
    worker: WorkerContext,
    worker_registry: ActorRegistry[WorkerContext],
    namespaces: list[str],
    settings: ConsumerSettings,
) -> None:
    """The lease keeper, and one poller per namespace queue."""
    ref = worker_registry.ref("WorkerActor")
    await pollers.start(
        partial(
            keep_leases, worker.store, worker.broker, worker.running, settings.visibility_timeout
        )
    )
    for namespace in namespaces:
        await pollers.start(
            partial(
                poll_queue,
                worker,
                ref,
                worker_queue(namespace),
                poll_interval=settings.poll_interval,
            )
        )


@asynccontextmanager
async def cancelled_on_exit() -> AsyncIterator[trio.Nursery]:
    """A nursery for loops that run until the engine closes (cancelled on exit)."""
    async with trio.open_nursery() as nursery:
        try:
            yield nursery
        finally:
            nursery.cancel_scope.cancel()


def _count(context: OrchestrationContext, queue: str, reason: str) -> None:
    del reason
    context.poison_count[queue] = context.poison_count.get(queue, 0) + 1
