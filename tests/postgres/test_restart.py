"""Restart: an engine stopped mid-workflow, then a new engine on the same database.

The first engine's handlers for every non-root step block forever, so when it closes it
leaves behind steps claimed and running (their handlers cancelled, nothing recorded, their
messages hidden for the visibility timeout), steps enqueued but never read, and tasks with
some steps complete. A second engine on the same database — no state shared with the first
but the database — must finish every task exactly once: the abandoned steps reclaimed once
their leases expire, each step with one accepted success, each task completed once.
Real time (the store's wall clock), a short visibility timeout so reclaims come quickly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tasker_trio import StepContext, open_engine
from tasker_trio.db import Database
from tests.postgres._audit import exactly_once_violations, wait_until_settled
from tests.postgres._workloads import (
    HERE,
    NAMESPACE,
    STEP_COUNTS,
    combine,
    expected_results,
    write_templates,
)

VISIBILITY = 1.5
SHAPES = ["linear", "diamond", "fanout"] * 4
CONCURRENCY = 8


async def test_a_new_engine_finishes_every_task_a_stopped_engine_left_mid_workflow(
    database: Database, tmp_path: Path
) -> None:
    templates = write_templates(tmp_path / "templates")
    blocked: list[str] = []
    all_slots_blocked = trio.Event()

    async def root_only(ctx: StepContext) -> dict[str, Any]:
        """Roots run; every other step blocks until the engine closes (cancelled)."""
        if not ctx.get_config("sources"):
            return await combine(ctx)
        blocked.append(f"{ctx.task_uuid}/{ctx.step_name}")
        if len(blocked) == CONCURRENCY:
            all_slots_blocked.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    options: dict[str, Any] = {
        "database": database.dsn,
        "visibility_timeout": VISIBILITY,
        "poll_interval": 0.2,
        "worker_concurrency": CONCURRENCY,
        "shutdown_grace": 0.1,
    }
    with trio.fail_after(30):
        async with open_engine(
            templates, handlers={f"{HERE}:combine": root_only}, **options
        ) as first:
            submitted = {
                (await first.submit(NAMESPACE, shape, {"n": n})).task_uuid: (shape, n)
                for n, shape in enumerate(SHAPES)
            }
            await all_slots_blocked.wait()

        before = {row["state"]: row["n"] for row in await database.fetch(_STEP_STATES)}
        # Left mid-workflow: steps claimed and running, steps still queued, roots done.
        assert before.get("in_progress") == CONCURRENCY, before
        assert before.get("enqueued", 0) > 0, before
        assert before.get("complete", 0) > 0, before
        leases = {row["step_uuid"]: row["lease"] for row in await database.fetch(_LEASES)}

        async with open_engine(templates, **options) as second:
            tasks = await wait_until_settled(database, len(submitted), within=20)
            second_stats = await second.statistics()

    assert exactly_once_violations(tasks) == []
    assert {t.task_uuid for t in tasks} == set(submitted)
    for task in tasks:
        shape, n = submitted[task.task_uuid]
        assert task.values() == expected_results(shape, n)
        assert len(task.steps) == STEP_COUNTS[shape]
    steps = {f"{task.task_uuid}/{step.name}": step for task in tasks for step in task.steps}
    # The steps the first engine abandoned mid-handler were reclaimed: attempt 2, after
    # an in_progress -> in_progress reclaim; nothing else ran twice.
    assert len(blocked) == CONCURRENCY
    for key in blocked:
        assert (steps[key].attempts, steps[key].reclaims) == (2, 1), steps[key]
    for key, step in steps.items():
        if key not in blocked:
            assert (step.attempts, step.reclaims, step.ignored) == (1, 0, 0), step
    # The reclaims waited for the leases to expire (times on the store's wall clock).
    reclaims = {row["step_uuid"]: row["at"] for row in await database.fetch(_RECLAIMS)}
    assert set(reclaims) == set(leases)
    for step_uuid, at in reclaims.items():
        assert at >= leases[step_uuid], (step_uuid, at, leases[step_uuid])
    assert second_stats.poison_messages == {}


_STEP_STATES = "SELECT state, count(*) AS n FROM tasker.steps GROUP BY state"
_LEASES = (
    "SELECT step_uuid, lease_expires_at AS lease FROM tasker.steps WHERE state = 'in_progress'"
)
_RECLAIMS = (
    "SELECT step_uuid, at FROM tasker.step_transitions"
    " WHERE from_state = 'in_progress' AND to_state = 'in_progress'"
)
