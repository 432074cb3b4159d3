"""`open_engine` on PostgreSQL: schema checks, the clock and guard, split processes' roles.

The behaviour of workflows on PostgreSQL is covered by ``tests/engine`` (every test there
runs on both backends); these tests cover what only the PostgreSQL wiring does.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tasker_trio import StepContext, TaskState, open_engine
from tasker_trio.db import Database, status
from tasker_trio.errors import ConfigurationError
from tests.engine._support import NAMESPACE, step, template
from tests.postgres._database import HoldMockClock, count_crossings, fresh_database


async def double(ctx: StepContext) -> dict[str, Any]:
    return {"value": 2 * ctx.get_input("n", 1)}


def chain() -> Any:
    return template("chain", [step("a", "double"), step("b", "double", "a")])


async def test_an_unmigrated_database_is_refused_with_the_fix(empty_database: Database) -> None:
    with pytest.raises(ConfigurationError) as caught:
        async with open_engine([chain()], handlers={"double": double}, database=empty_database):
            pass  # pragma: no cover
    message = str(caught.value)
    assert "older than this code" in message
    assert "python -m tasker_trio db migrate --database postgresql://" in message


async def test_migrate_on_start_applies_the_schema(
    empty_database: Database, autojump_clock: trio.abc.Clock
) -> None:
    async with open_engine(
        [chain()],
        handlers={"double": double},
        database=empty_database,
        migrate=True,
        clock=trio.current_time,
    ) as engine:
        submission = await engine.submit(NAMESPACE, "chain", {"n": 3})
        task = await engine.wait_for_task(submission.task_uuid, timeout=60)
    assert task.state == TaskState.COMPLETE
    assert (await status(empty_database)).up_to_date


async def test_engine_opens_its_own_database_from_a_url_under_a_mock_clock(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The engine owns the pool (opened first, closed last); the guard keeps the mock clock
    still during queries, so backoffs on the store's Trio clock come out exact."""
    async with (
        fresh_database(wakeups="poll") as db,
        open_engine(
            [chain()],
            handlers={"double": double},
            database=db.dsn,
            database_guard=HoldMockClock(),
            clock=trio.current_time,
            pool_size=4,
        ) as engine,
    ):
        assert engine.backend == "postgres"
        submission = await engine.submit(NAMESPACE, "chain", {"n": 5})
        task = await engine.wait_for_task(submission.task_uuid, timeout=60)
        results = await engine.get_results(task.task_uuid)
    assert task.state == TaskState.COMPLETE
    assert results == {"a": {"value": 10}, "b": {"value": 10}}


async def test_orchestration_and_workers_in_separate_engines(database: Database) -> None:
    """Two engines on one database, as ``serve`` and ``worker`` processes would be."""
    async with (
        open_engine([chain()], database=database, workers=False) as orchestrator,
        open_engine(
            handlers={"double": double},
            database=database,
            orchestration=False,
            namespaces=[NAMESPACE],
        ) as worker,
    ):
        submission = await orchestrator.submit(NAMESPACE, "chain", {"n": 4})
        with trio.fail_after(20):
            task = await orchestrator.wait_for_task(submission.task_uuid)
        with pytest.raises(ConfigurationError, match="workers only"):
            await worker.submit(NAMESPACE, "chain", {"n": 4})
        stats = await orchestrator.statistics()
    assert task.state == TaskState.COMPLETE
    assert stats.workers is None
    assert stats.steps_executed == 0  # the other engine ran them


async def test_wait_for_task_takes_the_task_its_settling_commit_left(database: Database) -> None:
    """A task settled by this process's own commit is returned as committed: one read of
    the task (before the wait), none after it."""
    async with open_engine([chain()], handlers={"double": double}, database=database) as engine:
        submission = await engine.submit(NAMESPACE, "chain", {"n": 4})
        crossings = count_crossings(database)
        with trio.fail_after(20):
            task = await engine.wait_for_task(submission.task_uuid)
        reads = crossings.count("reading a task")
        stored = await engine.get_task(submission.task_uuid)
    assert task.state == TaskState.COMPLETE
    assert task == stored
    assert reads == 1


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"orchestration": False, "workers": False}, "not neither"),
        ({"orchestration": False}, "needs the namespaces"),
        ({"wakeups": "sometimes"}, "unknown wake-up mode"),
        ({"pool_size": 0}, "pool size"),
    ],
)
async def test_unusable_settings_are_refused(
    database: Database, options: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        async with open_engine(database=database.dsn, **options):
            pass  # pragma: no cover


async def test_the_memory_backend_keeps_the_trio_clock() -> None:
    with pytest.raises(ConfigurationError, match="Trio clock"):
        async with open_engine(clock=lambda: 0.0):
            pass  # pragma: no cover
