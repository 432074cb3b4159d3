"""`open_engine`: the whole engine as one nursery tree, opened and closed in order.

Start order: backend (store + broker) -> orchestration actors -> event systems (queue
consumers, retry timer) -> worker actor -> worker pollers. Shutdown runs in reverse: pollers
stop taking messages, running handlers are cancelled (their messages stay in the queue and
are reclaimed after their visibility timeout), then event systems, then the actors.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio

from tasker_trio.actors import open_registry
from tasker_trio.engine_api import Engine
from tasker_trio.errors import ConfigurationError
from tasker_trio.messaging.memory import MemoryQueues
from tasker_trio.messaging.protocol import QueueMessage
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    ORCHESTRATION_TASK_FINALIZATIONS,
    ORCHESTRATION_TASK_REQUESTS,
    worker_queue,
)
from tasker_trio.orchestration.actors import ORCHESTRATION_ACTORS
from tasker_trio.orchestration.command_processor import CommandProcessor
from tasker_trio.orchestration.commands import FinalizeTask, InitializeTask, ProcessStepResult
from tasker_trio.orchestration.context import OrchestrationContext
from tasker_trio.orchestration.event_systems.queue_consumer import ConsumerSettings, QueueConsumer
from tasker_trio.orchestration.event_systems.retry_timer import run_retry_timer
from tasker_trio.orchestration.event_systems.staleness_sweeper import run_staleness_sweeper
from tasker_trio.orchestration.hydration import (
    hydrate_finalization,
    hydrate_step_result,
    hydrate_task_request,
)
from tasker_trio.orchestration.services.staleness import LifecycleDefaults, StalenessService
from tasker_trio.store.memory import MemoryStore
from tasker_trio.templates import TaskTemplate, TemplateRegistry, load_templates
from tasker_trio.worker.actor import WorkerContext, poll_queue, worker_actor_class
from tasker_trio.worker.executor import ExecutionSettings
from tasker_trio.worker.handlers import HandlerFn, HandlerResolver
from tasker_trio.worker.leases import keep_leases

TemplateSource = TaskTemplate | str | os.PathLike[str]


def build_registry(
    templates: Iterable[TemplateSource] | TemplateSource, *, environment: str | None = None
) -> TemplateRegistry:
    """A registry of ``templates``: `TaskTemplate` objects, files, or directories."""
    if isinstance(templates, TaskTemplate | str | os.PathLike):
        templates = [templates]
    registry = TemplateRegistry()
    for source in templates:
        loaded = [source] if isinstance(source, TaskTemplate) else load_templates(Path(source))
        for template in loaded:
            registry.register(template.for_environment(environment) if environment else template)
    return registry


@asynccontextmanager
async def open_engine(
    templates: Iterable[TemplateSource] | TemplateSource = (),
    *,
    handlers: Mapping[str, HandlerFn] | None = None,
    database: str | None = None,
    workers: bool = True,
    namespaces: Iterable[str] | None = None,
    worker_concurrency: int = 8,
    visibility_timeout: float = 30.0,
    poll_interval: float = 1.0,
    environment: str | None = None,
    rng: random.Random | None = None,
    staleness_interval: float = 60.0,
    lifecycle_defaults: LifecycleDefaults | None = None,
    shutdown_grace: float = 0.5,
) -> AsyncIterator[Engine]:
    """Open an engine: orchestration, and (unless ``workers=False``) workers.

    Args:
        templates: task templates, template files, or directories of them.
        handlers: step handlers by the names templates use (besides `step_handler`
            registrations and import paths).
        database: a PostgreSQL URL; ``None`` (the default) runs the embedded in-memory
            backend.
        workers: also run workers in this process.
        namespaces: the namespaces the workers serve (default: every template's).
        worker_concurrency: how many steps the workers run at once.
        visibility_timeout: seconds a claimed step stays hidden without renewal (a worker
            that dies is recovered after this).
        poll_interval: the polling fallback of every queue listener, in seconds.
        environment: apply the templates' ``environments:`` overrides for this environment.
        rng: the random source for backoff jitter (seed it for reproducible runs).
        staleness_interval: seconds between two sweeps for stale tasks.
        lifecycle_defaults: the lifecycle limits of templates that set none.
        shutdown_grace: seconds running steps get to finish when the engine closes; those
            still running then are cancelled and record nothing (their messages stay queued).

    Raises:
        ConfigurationError: a setting is unusable.
        TemplateError: a template does not load.
    """
    if database is not None:
        raise ConfigurationError(
            "the PostgreSQL backend is not available in this version; "
            "omit database= to use the embedded backend"
        )
    if worker_concurrency < 1:
        raise ConfigurationError(f"worker_concurrency must be at least 1, got {worker_concurrency}")
    registry = build_registry(templates, environment=environment)
    queues = MemoryQueues()
    store = MemoryStore(queues, processor_id=f"orchestrator-{uuid.uuid4().hex[:8]}")
    context = OrchestrationContext(
        store=store, broker=queues, templates=registry, rng=rng or random.Random()
    )
    consumer_settings = ConsumerSettings(
        visibility_timeout=visibility_timeout, poll_interval=poll_interval
    )
    async with AsyncExitStack() as stack:
        actors = await stack.enter_async_context(open_registry(context, ORCHESTRATION_ACTORS))
        commands = CommandProcessor(actors)
        events = await stack.enter_async_context(_cancelled_on_exit())
        for queue, dispatch in _dispatchers(commands).items():
            consumer = QueueConsumer(
                queues, queue, dispatch, consumer_settings, on_poison=partial(_count, context)
            )
            await events.start(consumer.run)
        await events.start(partial(run_retry_timer, context, commands, poll_interval=poll_interval))
        staleness = StalenessService(store, registry, lifecycle_defaults or LifecycleDefaults())
        await events.start(partial(run_staleness_sweeper, staleness, interval=staleness_interval))
        worker: WorkerContext | None = None
        worker_registry = None
        if workers:
            worker = WorkerContext(
                store=store,
                broker=queues,
                resolver=HandlerResolver(handlers),
                settings=ExecutionSettings(
                    worker_id=f"worker-{uuid.uuid4().hex[:8]}",
                    visibility_timeout=visibility_timeout,
                ),
                concurrency=worker_concurrency,
            )
            worker_registry = await stack.enter_async_context(
                open_registry(
                    worker, [worker_actor_class(worker_concurrency, stop_grace=shutdown_grace)]
                )
            )
            ref = worker_registry.ref("WorkerActor")
            pollers = await stack.enter_async_context(_cancelled_on_exit())
            await pollers.start(
                partial(keep_leases, store, queues, worker.running, visibility_timeout)
            )
            served = sorted(set(namespaces) if namespaces is not None else registry.namespaces())
            for namespace in served:
                await pollers.start(
                    partial(
                        poll_queue,
                        worker,
                        ref,
                        worker_queue(namespace),
                        poll_interval=poll_interval,
                    )
                )
        yield Engine(
            context=context,
            commands=commands,
            orchestration=actors,
            worker=worker,
            worker_registry=worker_registry,
        )


@asynccontextmanager
async def _cancelled_on_exit() -> AsyncIterator[trio.Nursery]:
    """A nursery for loops that run until the engine closes (cancelled on exit)."""
    async with trio.open_nursery() as nursery:
        try:
            yield nursery
        finally:
            nursery.cancel_scope.cancel()


def _dispatchers(commands: CommandProcessor) -> dict[str, Any]:
    async def step_result(message: QueueMessage) -> None:
        await commands.process(ProcessStepResult(notice=hydrate_step_result(message)))

    async def task_request(message: QueueMessage) -> None:
        await commands.process(InitializeTask(request=hydrate_task_request(message).request))

    async def finalization(message: QueueMessage) -> None:
        await commands.process(FinalizeTask(task_uuid=hydrate_finalization(message).task_uuid))

    return {
        ORCHESTRATION_STEP_RESULTS: step_result,
        ORCHESTRATION_TASK_REQUESTS: task_request,
        ORCHESTRATION_TASK_FINALIZATIONS: finalization,
    }


def _count(context: OrchestrationContext, queue: str, reason: str) -> None:
    del reason
    context.poison_count[queue] = context.poison_count.get(queue, 0) + 1
