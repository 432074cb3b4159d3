"""Schema migrations: versioned, idempotent, serialised by an advisory lock, PGMQ included."""

from __future__ import annotations

import pytest
import trio

from tasker_trio.db import (
    Database,
    DatabaseError,
    DatabaseUnavailable,
    MigrationError,
    check_schema,
    migrate,
    open_database,
    status,
)
from tasker_trio.db.bridge import Connection
from tasker_trio.db.migrations import load_migrations

EXPECTED_TABLES = {
    "tasks",
    "steps",
    "edges",
    "task_transitions",
    "step_transitions",
    "step_results",
    "dead_letters",
    "archive_reasons",
    "prepared_queues",
    "schema_migrations",
}


def test_migrations_are_numbered_in_order() -> None:
    versions = [m.version for m in load_migrations()]

    assert versions == sorted(set(versions))
    assert versions[0] == 1


async def test_migrate_creates_the_schema_and_installs_pgmq(empty_database: Database) -> None:
    db = empty_database
    assert not (await status(db)).up_to_date

    applied = await migrate(db)

    assert [m.version for m in applied] == [m.version for m in load_migrations()]
    tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'tasker'")
    assert {row["tablename"] for row in tables} >= EXPECTED_TABLES
    assert await db.fetchval("SELECT to_regclass('pgmq.meta') IS NOT NULL")
    assert (await status(db)).up_to_date
    await check_schema(db)


async def test_migrate_again_changes_nothing(database: Database) -> None:
    before = await database.fetch("SELECT version, applied_at FROM tasker.schema_migrations")

    assert await migrate(database) == ()

    after = await database.fetch("SELECT version, applied_at FROM tasker.schema_migrations")
    assert after == before


async def test_concurrent_migrations_apply_each_version_once(empty_database: Database) -> None:
    results: list[int] = []

    async def run() -> None:
        results.append(len(await migrate(empty_database)))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(run)

    assert sorted(results) == [0, 0, len(load_migrations())]
    count = await empty_database.fetchval("SELECT count(*) FROM tasker.schema_migrations")
    assert count == len(load_migrations())


async def test_an_unmigrated_database_is_reported_as_outdated(empty_database: Database) -> None:
    with pytest.raises(MigrationError, match="db migrate"):
        await check_schema(empty_database)


async def test_one_most_recent_transition_per_entity_is_enforced(database: Database) -> None:
    insert = """
    INSERT INTO tasker.tasks (task_uuid, identity_hash, namespace, name, state, created_at,
                              updated_at, data)
    VALUES ('t1', 'h1', 'ns', 'n', 'pending', 0, 0, '{}');
    INSERT INTO tasker.task_transitions
        (task_uuid, from_state, to_state, event, at, sort_key, most_recent)
    VALUES ('t1', 'pending', 'initializing', 'start', 0, 1, true);
    """

    async def setup(conn: Connection) -> None:
        await conn.execute(insert)

    await database.run(setup)
    with pytest.raises(DatabaseError, match="most_recent") as caught:
        await database.fetchval(
            "INSERT INTO tasker.task_transitions"
            " (task_uuid, from_state, to_state, event, at, sort_key, most_recent)"
            " VALUES ('t1', 'initializing', 'enqueuing_steps', 'x', 0, 2, true)"
        )
    assert caught.value.sqlstate == "23505"  # unique_violation, translated at the bridge


async def test_an_unreachable_server_is_a_database_unavailable_error() -> None:
    with pytest.raises(DatabaseUnavailable, match="connecting to"):
        async with open_database("postgresql://postgres@127.0.0.1:1/nowhere"):
            pass
