"""`open_backend`: the store and broker an engine runs on — in memory, or PostgreSQL + PGMQ.

A backend is a `Store` and a `Broker` over the same state (DESIGN.md, "Backends"). The
memory one needs nothing; the PostgreSQL one opens the database (unless it is handed an open
one), checks that its schema is the one this code expects (or migrates it when asked), and
closes the database last, after everything that used it.

The clock: the store decides leases, visibility timeouts, backoffs and staleness with its
``now()``; the engine's own timers only ever sleep for *durations* computed from it
(``next_retry_at - store.now()``), and handler deadlines and lease renewals are durations on
Trio's clock. So any clock works as long as the store and the broker share it. The memory
backend always runs on the Trio clock; PostgreSQL defaults to wall-clock time, which every
process on every machine agrees on (a per-process Trio clock does not). Tests under
`trio.testing.MockClock` pass ``clock=trio.current_time`` and a database guard that holds the
mock clock still while the database works.

Templates live with the backend too: in memory an engine knows the templates it was given;
on PostgreSQL it registers them in the database and then knows every registered template
(`register_and_load`), and its workers serve the registered namespaces when told nothing else
(`served_namespaces`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Literal

import attrs
import trio

from tasker_trio.db import Database, DatabaseUnavailable, migrate, open_database, status
from tasker_trio.db.bridge import Guard
from tasker_trio.db.migrations import load_migrations
from tasker_trio.db.opening import redact
from tasker_trio.db.signals import Signals
from tasker_trio.errors import ConfigurationError
from tasker_trio.messaging.memory import MemoryQueues
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.messaging.protocol import Broker
from tasker_trio.store.memory import MemoryStore
from tasker_trio.store.postgres import DURABILITY_MODES, PostgresStore
from tasker_trio.store.postgres.templates import (
    load_registry,
    register_templates,
    registered_namespaces,
    registrant,
)
from tasker_trio.store.protocol import Store
from tasker_trio.templates import TaskTemplate, TemplateRegistry

_log = logging.getLogger("tasker_trio.backend")

WAKEUP_MODES = ("hybrid", "event", "poll")
"""How a process learns of other processes' changes (see `tasker_trio.db.open_database`)."""

Clock = Callable[[], float]
"""Seconds, as the store's ``now()`` reports them."""

TEMPLATE_REFRESH_INTERVAL = 30.0
"""Seconds between two looks for newly registered templates (`refresh_templates`).

A request naming an unknown template refreshes at once; this bounds how long requests that
name no version keep getting the previous latest version after a newer one is registered.
"""


@attrs.frozen(kw_only=True)
class Backend:
    """A store and a broker over the same state.

    Attributes:
        name: ``"memory"`` or ``"postgres"``.
        database: the open database (PostgreSQL only).
    """

    name: Literal["memory", "postgres"]
    store: Store
    broker: Broker
    database: Database | None = None


@asynccontextmanager
async def open_backend(
    database: str | Database | None,
    *,
    clock: Clock | None = None,
    database_guard: Guard | None = None,
    pool_size: int = 10,
    wakeups: str = "hybrid",
    poll_interval: float = 1.0,
    migrate_schema: bool = False,
    processor_id: str | None = None,
    durability: str = "full",
) -> AsyncIterator[Backend]:
    """Open the backend ``database`` names: None for memory, a URL or an open `Database`.

    An open `Database` is used as it is and left open (its owner closes it);
    ``database_guard``, ``pool_size``, ``wakeups`` (``hybrid``, ``event`` or ``poll``) and
    ``poll_interval`` apply only when this opens the database from a URL; ``durability``
    (``full`` or ``outcomes``, `tasker_trio.store.postgres.store`) to PostgreSQL only.

    Raises:
        ConfigurationError: a clock for the memory backend other than Trio's; a pool size
            below 1; an unknown wake-up mode or durability; a schema older (or newer) than
            this code.
        DatabaseUnavailable: the server cannot be reached, refuses the credentials, or has
            no such database (the message says which).
    """
    if durability not in DURABILITY_MODES:
        raise ConfigurationError(
            f"unknown durability {durability!r}: use one of {', '.join(DURABILITY_MODES)}"
        )
    if database is None:
        if clock is not None and clock is not trio.current_time:
            raise ConfigurationError(
                "the memory backend always runs on the Trio clock; clock= applies to "
                "PostgreSQL only"
            )
        queues = MemoryQueues()
        store = MemoryStore(queues, processor_id=processor_id or "orchestrator")
        yield Backend(name="memory", store=store, broker=queues)
        return
    if pool_size < 1:
        raise ConfigurationError(f"the database pool size must be at least 1, got {pool_size}")
    if wakeups not in WAKEUP_MODES:
        raise ConfigurationError(
            f"unknown wake-up mode {wakeups!r}: use one of {', '.join(WAKEUP_MODES)}"
        )
    if isinstance(database, Database):
        yield await _postgres(database, clock, migrate_schema, processor_id, durability)
        return
    opened = False
    try:
        async with open_database(
            database,
            max_size=pool_size,
            wakeups=wakeups,
            poll_interval=poll_interval,
            guard=database_guard,
        ) as db:
            opened = True
            yield await _postgres(db, clock, migrate_schema, processor_id, durability)
    except DatabaseUnavailable as exc:
        if opened:  # lost later, not refused at the door: the message stands as it is
            raise
        raise explain_unavailable(exc) from exc


async def _postgres(
    db: Database,
    clock: Clock | None,
    migrate_schema: bool,
    processor_id: str | None,
    durability: str,
) -> Backend:
    if migrate_schema:
        await migrate(db)
    await check_schema_current(db)
    now = clock or time.time
    signals = Signals()  # one set, so the broker's waiters hear the store's sends
    return Backend(
        name="postgres",
        store=PostgresStore(
            db, signals=signals, clock=now, processor_id=processor_id, durability=durability
        ),
        broker=PgmqBroker(db, signals=signals, clock=now),
        database=db,
    )


async def check_schema_current(db: Database) -> None:
    """Raise `ConfigurationError` unless the database has exactly this code's migrations.

    Raises:
        ConfigurationError: migrations are pending (run ``db migrate``), or the database
            has migrations this code does not know (it is newer than this code).
    """
    current = await status(db)
    url = redact(db.dsn)
    if current.pending:
        names = ", ".join(m.name for m in current.pending)
        raise ConfigurationError(
            f"the database schema at {url} is older than this code (missing {names}); "
            f"run `python -m tasker_trio db migrate --database {url}` first"
        )
    known = {m.version for m in load_migrations()}
    unknown = sorted(set(current.applied) - known)
    if unknown:
        raise ConfigurationError(
            f"the database schema at {url} is newer than this code (it has migration(s) "
            f"{', '.join(map(str, unknown))}); upgrade tasker_trio"
        )


async def register_and_load(
    db: Database, given: list[TaskTemplate], *, environment: str | None, processor_id: str
) -> TemplateRegistry:
    """Register ``given`` in the database, then load every registered template.

    The registry refreshes from the database (``environment`` overrides applied).

    Raises:
        TemplateVersionConflict: a given template differs from the registered one of its
            namespace, name and version.
    """
    await register_templates(db, given, registered_by=registrant(f"engine {processor_id}"))
    return await load_registry(db, environment=environment)


async def served_namespaces(
    backend: Backend, namespaces: Iterable[str] | None, given: list[TaskTemplate]
) -> list[str]:
    """The workers' namespaces: as given, else the templates', else the database's."""
    if namespaces is not None:
        return sorted(set(namespaces))
    if given or backend.database is None:
        return sorted({template.namespace_name for template in given})
    return await registered_namespaces(backend.database)


async def refresh_templates(
    registry: TemplateRegistry, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Add newly registered templates every `TEMPLATE_REFRESH_INTERVAL` s, until cancelled.

    A failed look is logged and tried again at the next interval.
    """
    task_status.started()
    while True:
        await trio.sleep(TEMPLATE_REFRESH_INTERVAL)
        try:
            added = await registry.refresh()
        except Exception:
            _log.exception("looking for newly registered task templates failed")
        else:
            if added:
                _log.info("loaded %d newly registered task template(s)", added)


def no_namespaces(backend: Backend) -> str:
    """Why a workers-only engine has nothing to serve, and what to do about it."""
    if backend.database is None:
        return "a workers-only engine needs the namespaces to serve: give namespaces= or templates"
    url = redact(backend.database.dsn)
    return (
        f"a workers-only engine needs the namespaces to serve, and no template is registered "
        f"in {url} yet: give namespaces= (worker --namespace NS), or register templates first "
        f"(python -m tasker_trio templates register PATH --database {url})"
    )


_HINTS = {
    "3D000": "the database does not exist (create it, e.g. `createdb NAME`)",
    "28000": "the server refused the credentials (unknown role, or not allowed to connect)",
    "28P01": "the server refused the credentials (wrong password)",
    "57P03": "the server is starting up or shutting down",
}


def explain_unavailable(exc: DatabaseUnavailable) -> DatabaseUnavailable:
    """``exc`` (raised while opening a database) with a first sentence that says what to fix."""
    hint = _HINTS.get(exc.sqlstate or "")
    if hint is None:
        hint = "the server cannot be reached (is it running, and are host and port right?)"
    return DatabaseUnavailable(f"cannot open the database: {hint}. {exc}", sqlstate=exc.sqlstate)
