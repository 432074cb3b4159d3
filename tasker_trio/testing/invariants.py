"""The engine's invariants as pure checks over an `EngineSnapshot` of tasks, steps and audits.

`take_snapshot` reads everything the checks need from a running `Engine` in one go; each
``check_*`` function returns the list of violations it found (empty when the invariant holds),
each a sentence naming the task, the step and the records involved. The checks use only the
public `Engine` API and the pure state machines, so they hold for any backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from tasker_trio.engine_api import SETTLED_STATES, Engine
from tasker_trio.models import Task, Transition, WorkflowStep
from tasker_trio.state_machine import StepEvent, StepState, TaskEvent, TaskState, transition

__all__ = [
    "EngineSnapshot",
    "TaskRecord",
    "check_attempts",
    "check_audit_trails",
    "check_complete_tasks",
    "check_parents_before_start",
    "check_retry_backoff",
    "check_settled",
    "check_settled_task_consistency",
    "take_snapshot",
]

SATISFYING = frozenset({StepState.COMPLETE, StepState.RESOLVED_MANUALLY})
"""Parent states that let a child run."""


@attrs.frozen(kw_only=True)
class TaskRecord:
    """One task as the engine reports it.

    Attributes:
        task: the task.
        steps: its steps, in template order.
        trail: the task's audit trail.
        step_trails: each step's audit trail, by step uuid.
        parents: each step's parent step names, by step name (from its template).
    """

    task: Task
    steps: tuple[WorkflowStep, ...]
    trail: tuple[Transition, ...]
    step_trails: Mapping[str, tuple[Transition, ...]]
    parents: Mapping[str, tuple[str, ...]]

    def step_named(self, name: str) -> WorkflowStep:
        """The step called ``name``."""
        return next(s for s in self.steps if s.name == name)


@attrs.frozen(kw_only=True)
class EngineSnapshot:
    """Every known task of an engine at one instant, with the figures the checks need."""

    now: float
    tasks: Mapping[str, TaskRecord]
    result_queue_depth: int


async def take_snapshot(
    engine: Engine,
    task_uuids: Iterable[str],
    parents_of: Callable[[Task], Mapping[str, tuple[str, ...]]],
    now: float,
) -> EngineSnapshot:
    """Read the tasks ``task_uuids`` with their steps and audit trails from ``engine``.

    Raises:
        TaskNotFound: one of the tasks does not exist (a lost task).
    """
    tasks: dict[str, TaskRecord] = {}
    for task_uuid in task_uuids:
        task = await engine.get_task(task_uuid)
        steps = tuple(await engine.get_steps(task_uuid))
        step_trails = {s.step_uuid: tuple(await engine.get_transitions(s.step_uuid)) for s in steps}
        tasks[task_uuid] = TaskRecord(
            task=task,
            steps=steps,
            trail=tuple(await engine.get_transitions(task_uuid)),
            step_trails=step_trails,
            parents=parents_of(task),
        )
    depth = (await engine.statistics()).result_queue_depth
    return EngineSnapshot(now=now, tasks=tasks, result_queue_depth=depth)


def _where(record: TaskRecord, step: WorkflowStep | None = None) -> str:
    task = record.task
    where = f"task {task.name} {task.task_uuid[:8]} ({task.state})"
    return where if step is None else f"{where}, step {step.name} ({step.state})"


def check_parents_before_start(snapshot: EngineSnapshot) -> list[str]:
    """(1) No step started before all its parents were complete or resolved_manually.

    For each ``start`` record of a step, each parent's latest record at or before that time
    must leave it satisfied. Records of one settle share a timestamp, so this accepts a
    parent that finished at the same instant; the handler probes of the state machine check
    the order within an instant. Also: no step starts after its task became terminal.
    """
    problems: list[str] = []
    for record in snapshot.tasks.values():
        terminal_at = next((t.at for t in record.trail if TaskState(t.to_state).is_terminal), None)
        for step in record.steps:
            for start in record.step_trails[step.step_uuid]:
                if start.to_state != StepState.IN_PROGRESS:
                    continue
                if terminal_at is not None and start.at > terminal_at:
                    problems.append(
                        f"{_where(record, step)} started at {start.at} after its task became "
                        f"terminal at {terminal_at}"
                    )
                for parent_name in record.parents.get(step.name, ()):
                    parent = record.step_named(parent_name)
                    before = [t for t in record.step_trails[parent.step_uuid] if t.at <= start.at]
                    state = before[-1].to_state if before else StepState.PENDING
                    if state not in SATISFYING:
                        problems.append(
                            f"{_where(record, step)} started (record {start.sort_key}, "
                            f"at {start.at}) while parent {parent_name} was {state}"
                        )
    return problems


def check_attempts(snapshot: EngineSnapshot) -> list[str]:
    """(2) Attempts never exceed ``max_attempts`` (counted since the last operator reset)."""
    problems: list[str] = []
    for record in snapshot.tasks.values():
        for step in record.steps:
            limit = step.retry.max_attempts
            if step.attempts > limit:
                problems.append(f"{_where(record, step)} has {step.attempts} > {limit} attempts")
            starts = 0
            for t in record.step_trails[step.step_uuid]:
                if t.event == StepEvent.RESET:
                    starts = 0
                elif t.to_state == StepState.IN_PROGRESS:
                    starts += 1
                    if starts > limit:
                        problems.append(
                            f"{_where(record, step)}: start record {t.sort_key} is attempt "
                            f"{starts} of at most {limit}"
                        )
    return problems


def check_retry_backoff(snapshot: EngineSnapshot) -> list[str]:
    """(3) No retry is enqueued or started before the ``next_retry_at`` that scheduled it."""
    problems: list[str] = []
    for record in snapshot.tasks.values():
        for step in record.steps:
            not_before: float | None = None
            for t in record.step_trails[step.step_uuid]:
                if t.event == StepEvent.WAIT_FOR_RETRY:
                    value: Any = t.metadata.get("next_retry_at")
                    if not isinstance(value, int | float):
                        problems.append(
                            f"{_where(record, step)}: wait_for_retry record {t.sort_key} has no "
                            f"next_retry_at in its metadata ({t.metadata})"
                        )
                        continue
                    not_before = float(value)
                elif t.event in (StepEvent.ENQUEUE, StepEvent.START) and not_before is not None:
                    if t.at < not_before:
                        problems.append(
                            f"{_where(record, step)}: {t.event} record {t.sort_key} at {t.at} "
                            f"is before next_retry_at {not_before}"
                        )
                    if t.event == StepEvent.START:
                        not_before = None
                elif t.event == StepEvent.RESET:
                    not_before = None
    return problems


def _replay(trail: Iterable[Transition], kind: str, where: str) -> list[str]:
    problems: list[str] = []
    trail = list(trail)
    if [t.sort_key for t in trail] != list(range(1, len(trail) + 1)):
        problems.append(f"{where}: sort_keys {[t.sort_key for t in trail]} are not 1..n")
    if trail and [t.most_recent for t in trail] != [False] * (len(trail) - 1) + [True]:
        problems.append(f"{where}: most_recent flags {[t.most_recent for t in trail]}")
    state: Any = TaskState.PENDING if kind == "task" else StepState.PENDING
    for t in trail:
        if t.from_state != state:
            problems.append(f"{where}: record {t.sort_key} leaves {t.from_state}, was in {state}")
        try:
            event: Any = TaskEvent(t.event) if kind == "task" else StepEvent(t.event)
            state = transition(
                TaskState(t.from_state) if kind == "task" else StepState(t.from_state), event
            )
        except ValueError as exc:  # InvalidTransition and unknown names are ValueErrors
            problems.append(f"{where}: record {t.sort_key} ({t.from_state} --{t.event}->) {exc}")
            break
        if t.to_state != state:
            problems.append(
                f"{where}: record {t.sort_key} goes {t.from_state} --{t.event}-> {t.to_state}, "
                f"the state machine says {state}"
            )
            break
    return problems


def check_audit_trails(snapshot: EngineSnapshot) -> list[str]:
    """(4) Every audit trail replays legally from ``pending``, sort_key 1..n, one most_recent.

    The last record's ``to`` must also be the entity's current state.
    """
    problems: list[str] = []
    for record in snapshot.tasks.values():
        where = _where(record)
        if not record.trail:
            problems.append(f"{where} has no audit record")
        problems += _replay(record.trail, "task", where)
        if record.trail and record.trail[-1].to_state != record.task.state:
            problems.append(f"{where}: last record ends in {record.trail[-1].to_state}")
        for step in record.steps:
            trail = record.step_trails[step.step_uuid]
            problems += _replay(trail, "step", _where(record, step))
            current = trail[-1].to_state if trail else StepState.PENDING
            if current != step.state:
                problems.append(f"{_where(record, step)}: its audit ends in {current}")
    return problems


def check_complete_tasks(snapshot: EngineSnapshot) -> list[str]:
    """(5) A complete task has every step complete or resolved_manually."""
    return [
        f"{_where(record, step)}: the task is complete but this step is not"
        for record in snapshot.tasks.values()
        if record.task.state == TaskState.COMPLETE
        for step in record.steps
        if step.state not in SATISFYING
    ]


def check_settled_task_consistency(snapshot: EngineSnapshot) -> list[str]:
    """A blocked task has a step in error; a cancelled task has no step left to run."""
    problems: list[str] = []
    for record in snapshot.tasks.values():
        state = record.task.state
        if state == TaskState.BLOCKED_BY_FAILURES and not any(
            s.state == StepState.ERROR for s in record.steps
        ):
            problems.append(f"{_where(record)} is blocked without a step in error")
        if state == TaskState.CANCELLED:
            problems += [
                f"{_where(record, s)}: the task is cancelled but this step is not terminal"
                for s in record.steps
                if not s.state.is_terminal
            ]
    return problems


def check_settled(snapshot: EngineSnapshot) -> list[str]:
    """(6)+(7) Every task is terminal or blocked, and no step result awaits orchestration."""
    problems = [
        f"{_where(record)} has not settled at {snapshot.now}"
        for record in snapshot.tasks.values()
        if record.task.state not in SETTLED_STATES
    ]
    if snapshot.result_queue_depth:
        problems.append(f"{snapshot.result_queue_depth} step result message(s) undelivered")
    return problems
