"""``durability="outcomes"``: a task's progress commits without waiting for the disk, its
creation and its end still wait (`tasker_trio.store.postgres.store`)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import tasker_trio
from tasker_trio import StepContext, TaskState
from tasker_trio.db import Database
from tasker_trio.errors import ConfigurationError
from tasker_trio.store.postgres._batches import RELAXED_LABEL, PlanWriter
from tests.engine._support import NAMESPACE, step, template
from tests.postgres._database import count_crossings


async def ok(ctx: StepContext) -> dict[str, Any]:
    return {"step": ctx.step_name}


async def fail(ctx: StepContext) -> dict[str, Any]:
    raise ValueError("no")


CHAIN = template("chain", [step("a", "ok"), step("b", "ok", "a"), step("c", "ok", "b")])
BROKEN = template("broken", [step("a", "ok"), step("b", "fail", "a", retry={"max_attempts": 1})])


async def _run(database: Database, durability: str, name: str) -> tuple[TaskState, list[str]]:
    async with tasker_trio.open_engine(
        [CHAIN, BROKEN],
        handlers={"ok": ok, "fail": fail},
        database=database,
        durability=durability,
    ) as engine:
        crossings = count_crossings(database)
        submission = await engine.submit(NAMESPACE, name, {})
        with trio.fail_after(30):
            task = await engine.wait_for_task(submission.task_uuid)
    writes = [c for c in crossings if c.startswith(("creating a task", "applying a plan"))]
    return task.state, writes


async def test_with_outcomes_only_a_tasks_creation_and_end_wait_for_the_disk(
    database: Database,
) -> None:
    state, writes = await _run(database, "outcomes", "chain")

    assert state == TaskState.COMPLETE
    assert writes == [
        "creating a task",
        "applying a plan" + RELAXED_LABEL,  # a recorded, b claimed
        "applying a plan" + RELAXED_LABEL,  # b recorded, c claimed
        "applying a plan",  # c recorded, the task complete
    ]


async def test_with_outcomes_a_task_blocked_by_failures_waits_for_the_disk(
    database: Database,
) -> None:
    state, writes = await _run(database, "outcomes", "broken")

    assert state == TaskState.BLOCKED_BY_FAILURES
    assert writes == ["creating a task", "applying a plan" + RELAXED_LABEL, "applying a plan"]


async def test_by_default_every_commit_waits_for_the_disk(database: Database) -> None:
    state, writes = await _run(database, "full", "chain")

    assert state == TaskState.COMPLETE
    assert writes == ["creating a task"] + ["applying a plan"] * 3


async def test_a_relaxed_commit_leaves_its_connection_as_it_was(database: Database) -> None:
    writer = PlanWriter(database)
    plan = {"task_uuid": "missing", "version": 0, "now": 0.0, "processor_id": "test"}
    for key in ("step_transitions", "task_transitions", "messages", "steps", "expect", "consumed"):
        plan[key] = []

    answer = await writer.write("claim", plan, where="a plan", relaxed=True)

    assert answer["applied"] is None  # no such task: nothing to apply, but it went
    assert writer.relaxed_batches == 1
    # The setting was the transaction's own (set_config(..., true)): the pool's connection
    # waits for the disk again.
    assert await database.fetchval("SHOW synchronous_commit") == "on"


async def test_an_unknown_durability_is_a_configuration_error(database: Database) -> None:
    with pytest.raises(ConfigurationError, match="unknown durability 'fast'"):
        async with tasker_trio.open_engine([CHAIN], database=database, durability="fast"):
            pass
