"""The plain model of scripted workloads: how each step of an undisturbed task must end.

A scripted template (`tasker_trio.testing.strategies.ScriptedTemplate`) says, step by step,
what its handler does on each attempt; from that alone — no engine — `check_model` predicts
how a settled task ends and compares it with what the engine reports. It is invariant (8)
of `EngineStateMachine`, checked at teardown once every task settled.
"""

from __future__ import annotations

from collections.abc import Collection

from tasker_trio.state_machine import StepState, TaskState
from tasker_trio.testing.invariants import EngineSnapshot
from tasker_trio.testing.strategies import Workload

__all__ = ["check_model"]


def check_model(
    snapshot: EngineSnapshot,
    workload: Workload,
    *,
    cancelled: Collection[str],
    reset_steps: Collection[tuple[str, str]],
) -> list[str]:
    """(8) Scripted tasks nobody cancelled end as the plain model of their scripts says.

    A step whose parents all succeeded ends ``complete`` after the attempts its script needs,
    or ``error`` after ``max_attempts`` (or after one permanent failure); a step below a
    failed one stays ``pending`` with no attempt. A step an operator reset (``reset_steps``,
    by task uuid and step name) succeeds on its one attempt after the reset. The task ends
    ``complete`` when every step succeeded, else ``blocked_by_failures``. Tasks in
    ``cancelled`` and tasks of templates without a script are not predicted.

    Returns:
        One sentence per step or task that ended otherwise (empty: the model holds).
    """
    problems: list[str] = []
    for task_uuid, record in snapshot.tasks.items():
        scripted = workload.scripted.get(record.task.name)
        if scripted is None or task_uuid in cancelled:
            continue
        ok: dict[str, bool] = {}
        for step in record.steps:
            parents_ok = all(ok[p] for p in record.parents.get(step.name, ()))
            was_reset = (task_uuid, step.name) in reset_steps
            success = scripted.expected_success(step.name) or was_reset
            ok[step.name] = parents_ok and success
            if not parents_ok:
                want, attempts = StepState.PENDING, 0
            else:
                want = StepState.COMPLETE if success else StepState.ERROR
                attempts = 1 if was_reset else scripted.expected_attempts(step.name)
            if (step.state, step.attempts) != (want, attempts):
                problems.append(
                    f"task {record.task.name} {task_uuid[:8]}, step {step.name}: ended "
                    f"{step.state} after {step.attempts} attempt(s), the model says {want} "
                    f"after {attempts} ({scripted.scripts[step.name]}, {step.retry})"
                )
        want_task = TaskState.COMPLETE if all(ok.values()) else TaskState.BLOCKED_BY_FAILURES
        if record.task.state != want_task:
            problems.append(
                f"task {record.task.name} {task_uuid[:8]} ended {record.task.state}, "
                f"the model says {want_task}"
            )
    return problems
