"""Scratch PostgreSQL databases for the harness: migrated, and emptied before every example.

An `EngineStateMachine` with a ``database`` URL runs every Hypothesis example on that
database. Creating a database per example would cost a second or more; instead each example
opens the database, applies any pending migration (a no-op after the first example) and
empties it with `reset_database` — one statement — before its engine starts. Emptying means
*everything* tasker_trio keeps there is deleted, so point the harness at a scratch database
only, never at one whose tasks you want to keep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tasker_trio.db import Database, migrate, open_database
from tasker_trio.db.bridge import Guard

__all__ = ["RESET_SQL", "open_scratch_database", "reset_database"]

RESET_SQL = """
DO $reset$
DECLARE
    pending text[];
    item record;
    progressed boolean;
BEGIN
    -- Every tasker table but the migration bookkeeping, referencing tables before the ones
    -- they reference. DELETE, not TRUNCATE: on a few hundred rows it takes a millisecond
    -- where TRUNCATE takes ~5 ms a table.
    SELECT coalesce(array_agg(tablename::text), '{}') INTO pending
      FROM pg_tables WHERE schemaname = 'tasker' AND tablename <> 'schema_migrations';
    WHILE cardinality(pending) > 0 LOOP
        progressed := false;
        FOR item IN
            SELECT t.name FROM unnest(pending) AS t(name)
             WHERE NOT EXISTS (
                   SELECT 1 FROM pg_constraint c, unnest(pending) AS other(name)
                    WHERE c.contype = 'f'
                      AND c.confrelid = format('tasker.%I', t.name)::regclass
                      AND c.conrelid = format('tasker.%I', other.name)::regclass
                      AND other.name <> t.name)
        LOOP
            EXECUTE format('DELETE FROM tasker.%I', item.name);
            pending := array_remove(pending, item.name);
            progressed := true;
        END LOOP;
        IF NOT progressed THEN  -- tables that reference each other: TRUNCATE cuts through
            EXECUTE 'TRUNCATE ' || (SELECT string_agg(format('tasker.%I', t.name), ', ')
                                      FROM unnest(pending) AS t(name));
            pending := '{}';
        END IF;
    END LOOP;
    -- Generated ids (`seq`, transition ids, dead-letter entry ids) start over.
    FOR item IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'tasker' LOOP
        PERFORM setval(format('tasker.%I', item.sequencename)::regclass, 1, false);
    END LOOP;
    -- Every PGMQ queue: the engine creates its queues on their first send, as in a new
    -- database, so no message, archive or msg_id sequence outlives an example.
    IF to_regclass('pgmq.meta') IS NOT NULL THEN
        FOR item IN SELECT queue_name FROM pgmq.meta LOOP
            PERFORM pgmq.drop_queue(item.queue_name);
        END LOOP;
    END IF;
END
$reset$
"""
"""Empties a migrated database: one statement (see `reset_database`)."""


async def reset_database(db: Database) -> None:
    """Delete every task, step, audit record, dead letter and PGMQ queue in ``db``.

    The schema (and its migration bookkeeping) stays, and generated ids start over, so the
    database is as `migrate` leaves a new one. Nothing may use the database meanwhile: run it
    before an engine opens, not while one runs.

    Raises:
        DatabaseError: the server refused (for instance, the schema is not migrated).
        DatabaseUnavailable: the server could not be reached.
    """
    await db.fetchval(RESET_SQL, where="emptying the scratch database")


@asynccontextmanager
async def open_scratch_database(
    url: str, *, guard: Guard | None = None, poll_interval: float = 1.0, pool_size: int = 10
) -> AsyncIterator[Database]:
    """Open the database at ``url``, migrate it, empty it, and yield it (closed on exit).

    ``guard`` is entered around every round trip (`tasker_trio.db.open_database`);
    `TrioThread.io_guard` is the one a harness passes.

    Raises:
        DatabaseUnavailable: the database cannot be opened.
        MigrationError: a migration failed.
    """
    async with open_database(
        url, min_size=1, max_size=pool_size, guard=guard, poll_interval=poll_interval
    ) as db:
        await migrate(db)
        await reset_database(db)
        yield db
