"""The harness on PostgreSQL: a scratch database is migrated, and emptied between examples.

`reset_database` must leave nothing of an example behind (rows, generated ids, PGMQ queues
and their messages) and keep the schema; `open_scratch_database` migrates a new database;
the machine refuses to start while an earlier one still runs (they would share the
database). Skipped without a PostgreSQL server, failed under ``CI``.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tasker_trio import StepContext, TaskState, TaskTemplate, open_engine
from tasker_trio.db import Database, status
from tasker_trio.testing import EngineStateMachine, open_scratch_database, reset_database
from tests.postgres._database import fresh_database, skip_without_server

TEMPLATE = TaskTemplate.from_yaml("""
name: pair
namespace_name: scratch
version: 1.0.0
steps:
  - name: first
    handler: {callable: echo}
  - name: second
    handler: {callable: echo}
    dependencies: [first]
""")


async def echo(ctx: StepContext) -> dict[str, Any]:
    return {"step": ctx.step_name}


async def run_one_task(db: Database, k: int) -> None:
    async with open_engine(
        [TEMPLATE], database=db, handlers={"echo": echo}, clock=trio.current_time
    ) as engine:
        submission = await engine.submit("scratch", "pair", {"k": k})
        task = await engine.wait_for_task(submission.task_uuid, timeout=30)
        assert task.state == TaskState.COMPLETE


async def row_counts(db: Database) -> dict[str, int]:
    tables = await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'tasker' ORDER BY tablename"
    )
    return {
        row["tablename"]: await db.fetchval(f'SELECT count(*) FROM tasker."{row["tablename"]}"')
        for row in tables
    }


async def queue_names(db: Database) -> list[str]:
    return [row["queue_name"] for row in await db.fetch("SELECT queue_name FROM pgmq.meta")]


@skip_without_server()
async def test_reset_leaves_nothing_of_a_run_but_the_schema() -> None:
    async with fresh_database() as db:
        migrations = await db.fetchval("SELECT count(*) FROM tasker.schema_migrations")
        await run_one_task(db, 1)
        await db.fetchval("SELECT tasker.q_send('leftover', '{}'::jsonb, 0, 60)")
        assert "leftover" in await queue_names(db)
        busy = await row_counts(db)
        assert busy["tasks"] == 1
        assert busy["step_transition_log"] > 0

        await reset_database(db)

        counts = await row_counts(db)
        assert counts.pop("schema_migrations") == migrations
        assert set(counts.values()) == {0}, counts
        assert await queue_names(db) == []
        # Generated ids start over, and the engine runs on the emptied database as on a new one.
        await run_one_task(db, 2)
        assert await db.fetchval("SELECT min(seq) FROM tasker.tasks") == 1
        assert await db.fetchval("SELECT min(id) FROM tasker.task_transitions") == 1
        await reset_database(db)  # emptying an empty database is fine too
        assert set((await row_counts(db)).values()) == {0, migrations}


@skip_without_server()
async def test_open_scratch_database_migrates_and_empties() -> None:
    async with fresh_database(migrated=False) as blank:
        async with open_scratch_database(blank.dsn) as db:
            assert (await status(db)).up_to_date
            await run_one_task(db, 1)
        async with open_scratch_database(blank.dsn) as db:
            assert (await row_counts(db))["tasks"] == 0


def test_one_machine_at_a_time() -> None:
    first = EngineStateMachine()
    try:
        with pytest.raises(RuntimeError, match="one at a time"):
            EngineStateMachine()
    finally:
        first.teardown()
    EngineStateMachine().teardown()  # the first one stopped: a new one may start
