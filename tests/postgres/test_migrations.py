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
    "task_transition_log",
    "step_transition_log",
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
    views = await db.fetch("SELECT viewname FROM pg_views WHERE schemaname = 'tasker'")
    assert {row["viewname"] for row in views} >= {"task_transitions", "step_transitions"}
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


async def test_the_audit_marks_one_most_recent_record_per_entity(database: Database) -> None:
    setup = """
    INSERT INTO tasker.tasks (task_uuid, identity_hash, namespace, name, state, created_at,
                              updated_at, data)
    VALUES ('t1', 'h1', 'ns', 'n', 'pending', 0, 0, '{}'),
           ('t2', 'h2', 'ns', 'n', 'pending', 0, 0, '{}');
    SELECT tasker.append_task_transition('t1', 'pending', 'initializing', 'a', 0, 'p', NULL);
    SELECT tasker.append_task_transition('t2', 'pending', 'initializing', 'a', 0, 'p', NULL);
    SELECT tasker.append_task_transition('t1', 'initializing', 'enqueuing_steps', 'b', 1, 'p',
                                         NULL);
    SELECT tasker.append_task_transition('t1', 'enqueuing_steps', 'steps_in_process', 'c', 2, 'p',
                                         NULL);
    """

    async def write(conn: Connection) -> None:
        await conn.execute(setup)

    await database.run(write)
    rows = await database.fetch(
        "SELECT task_uuid, sort_key, most_recent FROM tasker.task_transitions"
        " ORDER BY task_uuid, sort_key"
    )
    assert [tuple(row.values()) for row in rows] == [
        ("t1", 1, False),
        ("t1", 2, False),
        ("t1", 3, True),
        ("t2", 1, True),
    ]
    # A second record with an entity's sort_key is refused: one most recent, by construction.
    with pytest.raises(DatabaseError, match="sort_key") as caught:
        await database.fetchval(
            "INSERT INTO tasker.task_transition_log"
            " (task_uuid, from_state, to_state, event, at, sort_key)"
            " VALUES ('t1', 'steps_in_process', 'complete', 'z', 3, 3)"
        )
    assert caught.value.sqlstate == "23505"  # unique_violation, translated at the bridge


async def test_deleting_a_task_deletes_its_steps_edges_audit_trail_and_results(
    database: Database,
) -> None:
    # No foreign keys check the audit logs' and results' entities since migration 0020, nor
    # the steps' and edges' since 0023; the statement triggers keep what ON DELETE CASCADE
    # did.
    setup = """
    INSERT INTO tasker.tasks (task_uuid, identity_hash, namespace, name, state, created_at,
                              updated_at, data)
    VALUES ('t1', 'h1', 'ns', 'n', 'pending', 0, 0, '{}'),
           ('t2', 'h2', 'ns', 'n', 'pending', 0, 0, '{}');
    INSERT INTO tasker.steps (step_uuid, task_uuid, position, name, state, data)
    VALUES ('s1a', 't1', 0, 'a', 'pending', '{}'), ('s1b', 't1', 1, 'b', 'pending', '{}'),
           ('s2a', 't2', 0, 'a', 'pending', '{}'), ('s2b', 't2', 1, 'b', 'pending', '{}'),
           ('s2c', 't2', 2, 'c', 'pending', '{}');
    INSERT INTO tasker.edges (task_uuid, position, from_step_uuid, to_step_uuid, name)
    VALUES ('t1', 0, 's1a', 's1b', 'provides'), ('t2', 0, 's2a', 's2b', 'provides'),
           ('t2', 1, 's2b', 's2c', 'provides');
    INSERT INTO tasker.dead_letters (task_uuid, reason, created_at) VALUES ('t1', 'r', 0);
    SELECT tasker.append_task_transition(t, 'pending', 'initializing', 'a', 0, 'p', NULL)
    FROM unnest(ARRAY['t1', 't2']) t;
    SELECT tasker.append_step_transition(s, 'pending', 'enqueued', 'e', 0, 'p', NULL)
    FROM unnest(ARRAY['s1a', 's1b', 's2a']) s;
    INSERT INTO tasker.step_results (step_uuid, attempt, accepted, data)
    VALUES ('s1a', 1, true, '{}'), ('s2a', 1, true, '{}');
    """

    async def write(conn: Connection) -> None:
        await conn.execute(setup)

    await database.run(write)
    await database.fetchval("DELETE FROM tasker.tasks WHERE task_uuid = 't1'")
    await database.fetchval("DELETE FROM tasker.steps WHERE step_uuid = 's2a'")

    left = await database.fetchrow(
        "SELECT (SELECT array_agg(task_uuid) FROM tasker.task_transitions) AS tasks,"
        " (SELECT array_agg(step_uuid ORDER BY step_uuid) FROM tasker.steps) AS steps,"
        " (SELECT array_agg(from_step_uuid || '>' || to_step_uuid) FROM tasker.edges) AS edges,"
        " (SELECT count(*) FROM tasker.step_transitions) AS step_records,"
        " (SELECT count(*) FROM tasker.step_results) AS results,"
        " (SELECT count(*) FROM tasker.dead_letters) AS dead_letters"
    )
    assert dict(left) == {
        "tasks": ["t2"],
        "steps": ["s2b", "s2c"],
        "edges": ["s2b>s2c"],
        "step_records": 0,
        "results": 0,
        "dead_letters": 0,
    }


async def test_an_unreachable_server_is_a_database_unavailable_error() -> None:
    with pytest.raises(DatabaseUnavailable, match="connecting to"):
        async with open_database("postgresql://postgres@127.0.0.1:1/nowhere"):
            pass
