"""`open_engine`: the whole engine as one nursery tree, opened and closed in order.

Start order: backend (store + broker; for PostgreSQL the database) -> orchestration actors
-> event systems (queue consumers, retry timer, staleness sweeper) -> worker actor -> worker
pollers. Shutdown runs in reverse: pollers stop taking messages, running handlers are
cancelled (their messages stay in the queue and are reclaimed after their visibility
timeout), then event systems, then the actors, and the database closes last. A process may
run orchestration only (``workers=False``) or workers only (``orchestration=False``); they
then coordinate through the database. The event systems, pollers and in-process handoffs are
started by `tasker_trio._engine_startup`.

Templates: in memory, the engine knows the templates it was given. On PostgreSQL it first
registers them in the database (`tasker_trio.store.postgres.templates`; a registered version
never changes), then works with every registered template — its own and those any other
process registered — and picks up templates registered later when a request names one it
does not know yet, and every `tasker_trio.backend.TEMPLATE_REFRESH_INTERVAL` seconds.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from tasker_trio._engine_startup import (
    cancelled_on_exit,
    hand_off,
    start_event_systems,
    start_pollers,
)
from tasker_trio.actors import ActorRegistry, open_registry
from tasker_trio.backend import (
    no_namespaces,
    open_backend,
    refresh_templates,
    register_and_load,
    served_namespaces,
)
from tasker_trio.db import Database
from tasker_trio.db.bridge import Guard
from tasker_trio.engine_api import Engine
from tasker_trio.errors import ConfigurationError
from tasker_trio.orchestration.actors import ORCHESTRATION_ACTORS
from tasker_trio.orchestration.command_processor import CommandProcessor
from tasker_trio.orchestration.context import OrchestrationContext
from tasker_trio.orchestration.event_systems.queue_consumer import ConsumerSettings, QueueConsumer
from tasker_trio.orchestration.services.staleness import LifecycleDefaults, StalenessService
from tasker_trio.store.protocol import SupportsHandoff
from tasker_trio.templates import TaskTemplate, TemplateRegistry, load_templates
from tasker_trio.worker.actor import WorkerContext, worker_actor_class
from tasker_trio.worker.executor import ExecutionSettings
from tasker_trio.worker.handlers import HandlerFn, HandlerResolver

TemplateSource = TaskTemplate | str | os.PathLike[str]


def gather_templates(
    templates: Iterable[TemplateSource] | TemplateSource,
) -> list[TaskTemplate]:
    """The templates ``templates`` stands for: `TaskTemplate` objects, files, or directories.

    Raises:
        TemplateError: a file does not load.
    """
    if isinstance(templates, TaskTemplate | str | os.PathLike):
        templates = [templates]
    gathered: list[TaskTemplate] = []
    for source in templates:
        gathered.extend(
            [source] if isinstance(source, TaskTemplate) else load_templates(Path(source))
        )
    return gathered


def build_registry(
    templates: Iterable[TemplateSource] | TemplateSource, *, environment: str | None = None
) -> TemplateRegistry:
    """A registry of ``templates``: `TaskTemplate` objects, files, or directories.

    Raises:
        TemplateError: a file does not load.
        DuplicateTemplate: two different templates share a namespace, name and version.
    """
    return TemplateRegistry.from_templates(
        template.for_environment(environment) if environment else template
        for template in gather_templates(templates)
    )


@asynccontextmanager
async def open_engine(
    templates: Iterable[TemplateSource] | TemplateSource = (),
    *,
    handlers: Mapping[str, HandlerFn] | None = None,
    database: str | Database | None = None,
    orchestration: bool = True,
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
    clock: Callable[[], float] | None = None,
    database_guard: Guard | None = None,
    pool_size: int = 10,
    wakeups: str = "hybrid",
    migrate: bool = False,
    handoffs: bool = True,
    durability: str = "full",
) -> AsyncIterator[Engine]:
    """Open an engine: orchestration and workers (either may be left out).

    Args:
        templates: task templates, template files, or directories of them.
        handlers: step handlers by the names templates use (besides `step_handler`
            registrations and import paths).
        database: ``None`` (the default) runs the embedded in-memory backend; a
            ``postgresql://`` URL runs on PostgreSQL + PGMQ (the database is opened here
            and closed last); an open `tasker_trio.db.Database` is used and left open.
        orchestration: run orchestration (task requests, results, retries, finalization,
            staleness) in this process; ``False`` for a workers-only process.
        workers: run workers in this process; ``False`` for an orchestration-only process.
        namespaces: the namespaces the workers serve (default: every given template's; on
            PostgreSQL without templates, every namespace registered in the database).
        worker_concurrency: how many steps the workers run at once.
        visibility_timeout: seconds a claimed step stays hidden without renewal (a worker
            that dies is recovered after this).
        poll_interval: the polling fallback of every queue listener, in seconds. On
            PostgreSQL this is how soon a message sent by *another* process is noticed.
        environment: apply the templates' ``environments:`` overrides for this environment.
        rng: the random source for backoff jitter (seed it for reproducible runs).
        staleness_interval: seconds between two sweeps for stale tasks.
        lifecycle_defaults: the lifecycle limits of templates that set none.
        shutdown_grace: seconds running steps get to finish when the engine closes; those
            still running then are cancelled and record nothing (their messages stay queued).
        clock: the store's clock (PostgreSQL only; default wall-clock `time.time`, which
            all processes share). Tests under `trio.testing.MockClock` pass
            `trio.current_time`. The memory backend always uses the Trio clock.
        database_guard: entered around every database operation when ``database`` is a
            URL (see `tasker_trio.db.open_database`); tests pass one that holds a
            `MockClock` still while the database works.
        pool_size: the most connections the database pool opens.
        wakeups: how a PostgreSQL engine hears of other processes' messages: ``hybrid``
            (LISTEN/NOTIFY, and every wait cut at ``poll_interval``), ``event`` or ``poll``.
        migrate: apply pending schema migrations on start instead of refusing to run.
        handoffs: on PostgreSQL, when this process runs orchestration and workers, hand
            steps and results between them directly (`SupportsHandoff`; each is still
            committed first); ``False`` makes them go through the queues like separate
            processes do.
        durability: on PostgreSQL, ``full`` (the default): every commit waits for the
            write-ahead log to reach the disk; ``outcomes``: only a task's creation, its
            end (finished, or blocked with a dead letter) and operators' actions wait, and
            its progress in between (results recorded, next steps claimed, retries woken)
            does not — a crash of the *server* may then lose its last moments of progress,
            which is done again (handlers may run again), never an outcome a client was
            told (`docs/backends.md`, "Durability").

    Raises:
        ConfigurationError: a setting is unusable, or the database schema is not current
            (it says to run ``python -m tasker_trio db migrate``).
        DatabaseUnavailable: the database cannot be opened (unreachable, credentials,
            no such database).
        TemplateError: a template does not load. (On PostgreSQL, a registered template
            this code finds invalid is logged and left out.)
        TemplateVersionConflict: on PostgreSQL, a given template differs from the one
            registered under its namespace, name and version (change its version).
    """
    if worker_concurrency < 1:
        raise ConfigurationError(f"worker_concurrency must be at least 1, got {worker_concurrency}")
    if not (orchestration or workers):
        raise ConfigurationError("an engine runs orchestration, workers, or both; not neither")
    given = gather_templates(templates)
    registry = build_registry(given, environment=environment)  # duplicates fail before I/O
    settings = ConsumerSettings(visibility_timeout=visibility_timeout, poll_interval=poll_interval)
    processor_id = f"orchestrator-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        # First in, last out: everything below uses the backend until it has stopped.
        backend = await stack.enter_async_context(
            open_backend(
                database,
                clock=clock,
                database_guard=database_guard,
                pool_size=pool_size,
                wakeups=wakeups,
                poll_interval=poll_interval,
                migrate_schema=migrate,
                processor_id=processor_id,
                durability=durability,
            )
        )
        if backend.database is not None:
            registry = await register_and_load(
                backend.database, given, environment=environment, processor_id=processor_id
            )
        served = await served_namespaces(backend, namespaces, given)
        if workers and not orchestration and not served:
            raise ConfigurationError(no_namespaces(backend))
        context = OrchestrationContext(
            store=backend.store,
            broker=backend.broker,
            templates=registry,
            rng=rng or random.Random(),
        )
        actors: ActorRegistry[OrchestrationContext] | None = None
        commands: CommandProcessor | None = None
        results: QueueConsumer | None = None
        if orchestration:
            actors = await stack.enter_async_context(open_registry(context, ORCHESTRATION_ACTORS))
            commands = CommandProcessor(actors)
            events = await stack.enter_async_context(cancelled_on_exit())
            staleness = StalenessService(
                backend.store, registry, lifecycle_defaults or LifecycleDefaults()
            )
            results = await start_event_systems(
                events,
                context,
                commands=commands,
                settings=settings,
                staleness=staleness,
                staleness_interval=staleness_interval,
            )
            if registry.source is not None:
                await events.start(refresh_templates, registry)
        worker: WorkerContext | None = None
        worker_registry: ActorRegistry[WorkerContext] | None = None
        if workers:
            worker = WorkerContext(
                store=backend.store,
                broker=backend.broker,
                resolver=HandlerResolver(handlers),
                settings=ExecutionSettings(
                    worker_id=f"worker-{uuid.uuid4().hex[:8]}",
                    visibility_timeout=visibility_timeout,
                    clock=backend.store.now,
                ),
                concurrency=worker_concurrency,
            )
            worker_registry = await stack.enter_async_context(
                open_registry(
                    worker, [worker_actor_class(worker_concurrency, stop_grace=shutdown_grace)]
                )
            )
            pollers = await stack.enter_async_context(cancelled_on_exit())
            await start_pollers(pollers, worker, worker_registry, served, settings)
            if handoffs and results is not None and isinstance(backend.store, SupportsHandoff):
                hand_off(
                    stack,
                    backend.store,
                    worker=worker,
                    worker_registry=worker_registry,
                    namespaces=served,
                    results=results,
                )
        yield Engine(
            context=context,
            commands=commands,
            orchestration=actors,
            worker=worker,
            worker_registry=worker_registry,
            backend=backend.name,
        )
