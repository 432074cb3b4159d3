"""Exactly-once checks read straight from the ``tasker`` schema's tables.

Whatever processes ran the work, the audit trail must show, for every step of a completed
task, exactly one accepted ``submit_success`` (the transition a worker's accepted success
makes), exactly one transition into ``complete`` and exactly one accepted result row; and
for every task exactly one transition into ``complete``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from tasker_trio.db import Database

_STEPS = """
SELECT s.step_uuid, s.task_uuid, s.name, s.state, s.attempts,
       (s.data -> 'results') AS results,
       (SELECT count(*) FROM tasker.step_transitions t
         WHERE t.step_uuid = s.step_uuid AND t.event = 'submit_success') AS successes,
       (SELECT count(*) FROM tasker.step_transitions t
         WHERE t.step_uuid = s.step_uuid AND t.to_state = 'complete') AS completions,
       (SELECT count(*) FROM tasker.step_transitions t
         WHERE t.step_uuid = s.step_uuid AND t.from_state = 'in_progress'
           AND t.to_state = 'in_progress') AS reclaims,
       (SELECT count(*) FROM tasker.step_results r
         WHERE r.step_uuid = s.step_uuid AND r.accepted) AS accepted,
       (SELECT count(*) FROM tasker.step_results r
         WHERE r.step_uuid = s.step_uuid AND NOT r.accepted) AS ignored
FROM tasker.steps s
ORDER BY s.task_uuid, s.position
"""

_TASKS = """
SELECT k.task_uuid, k.name, k.state, (k.data -> 'context') AS context,
       (SELECT count(*) FROM tasker.task_transitions t
         WHERE t.task_uuid = k.task_uuid AND t.to_state = 'complete') AS completions
FROM tasker.tasks k
ORDER BY k.seq
"""


@attrs.frozen(kw_only=True)
class StepRow:
    step_uuid: str
    task_uuid: str
    name: str
    state: str
    attempts: int
    results: Any
    successes: int
    completions: int
    reclaims: int
    accepted: int
    ignored: int


@attrs.frozen(kw_only=True)
class TaskRow:
    task_uuid: str
    name: str
    state: str
    context: dict[str, Any]
    completions: int
    steps: tuple[StepRow, ...]

    def values(self) -> dict[str, int]:
        """Each step's ``value`` result by step name."""
        return {s.name: s.results["value"] for s in self.steps if s.results}


async def read_audit(db: Database) -> list[TaskRow]:
    """Every task with its steps and their transition counts."""
    steps: dict[str, list[StepRow]] = {}
    for row in await db.fetch(_STEPS, idempotent=True):
        record = dict(row)
        steps.setdefault(record["task_uuid"], []).append(StepRow(**record))
    return [
        TaskRow(**dict(row), steps=tuple(steps.get(row["task_uuid"], ())))
        for row in await db.fetch(_TASKS, idempotent=True)
    ]


def exactly_once_violations(tasks: list[TaskRow]) -> list[str]:
    """Every breach of the exactly-once rules above, one line each (empty: none)."""
    problems: list[str] = []
    for task in tasks:
        if task.state != "complete":
            problems.append(f"task {task.task_uuid} ({task.name}) is {task.state}")
        if task.completions != 1:
            problems.append(
                f"task {task.task_uuid} ({task.name}) entered complete {task.completions} times"
            )
        for step in task.steps:
            counts = (step.successes, step.completions, step.accepted)
            if step.state != "complete" or counts != (1, 1, 1):
                problems.append(
                    f"step {task.name}/{step.name} {step.step_uuid}: state {step.state}, "
                    f"submit_success x{step.successes}, ->complete x{step.completions}, "
                    f"accepted results x{step.accepted}"
                )
    return problems


async def wait_until_settled(db: Database, count: int, *, within: float) -> list[TaskRow]:
    """Poll until ``count`` tasks exist and none is still running; return the audit.

    Raises:
        AssertionError: not settled within ``within`` seconds (with the states seen).
    """
    states: dict[str, int] = {}
    with trio.move_on_after(within):
        while True:
            rows = await db.fetch(
                "SELECT state, count(*) AS n FROM tasker.tasks GROUP BY state", idempotent=True
            )
            states = {row["state"]: row["n"] for row in rows}
            settled = sum(states.get(s, 0) for s in ("complete", "error", "blocked_by_failures"))
            if sum(states.values()) >= count and settled == sum(states.values()):
                return await read_audit(db)
            await trio.sleep(0.1)
    raise AssertionError(f"{count} tasks not settled after {within}s: {states}")


async def count_completed(db: Database) -> int:
    """How many tasks are complete now."""
    value = await db.fetchval(
        "SELECT count(*) FROM tasker.tasks WHERE state = 'complete'", idempotent=True
    )
    return int(value)


async def poll_until(
    condition: Callable[[], Awaitable[bool]], *, within: float, interval: float = 0.05
) -> None:
    """Wait until ``condition()`` holds, checking every ``interval`` seconds.

    Raises:
        trio.TooSlowError: not within ``within`` seconds.
    """
    with trio.fail_after(within):
        # Another process's progress (rows, files) has no event to wait on: poll.
        while not await condition():  # noqa: ASYNC110
            await trio.sleep(interval)
