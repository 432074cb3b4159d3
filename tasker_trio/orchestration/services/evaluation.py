"""Task evaluation: enter ``evaluating_results`` and decide what the task does next.

Shared by every service that changes steps (results, retries, operator actions): after a
step-level change, `reevaluate` moves the task into evaluation with the event its current
state calls for, and `evaluate` decides from the execution status (semantics §4): enqueue
what is ready, wait, park for a retry, or finalize (complete / blocked with a dead letter).
"""

from __future__ import annotations

from collections.abc import Iterable

from tasker_trio.models import StepEdge, WorkflowStep
from tasker_trio.orchestration.services.enqueue_plan import enqueue_viable_steps
from tasker_trio.orchestration.services.task_finalization.action_determiner import (
    FinalAction,
    determine_action,
)
from tasker_trio.orchestration.services.task_finalization.state_transitioner import (
    apply_final_action,
)
from tasker_trio.orchestration.support import (
    IN_FLIGHT_STATES,
    ExecutionStatus,
    StepSnapshot,
    TaskSnapshot,
    execution_status,
)
from tasker_trio.state_machine import TaskEvent, TaskFacts, TaskState
from tasker_trio.store.plan import PlanBuilder


def snapshot_of(steps: Iterable[WorkflowStep], edges: Iterable[StepEdge]) -> TaskSnapshot:
    """The support layer's view of a task: steps by name, edges as (parent, child) names."""
    steps = list(steps)
    names = {s.step_uuid: s.name for s in steps}
    return TaskSnapshot(
        steps=[
            StepSnapshot(
                name=s.name,
                state=s.state,
                attempts=s.attempts,
                policy=s.retry,
                next_retry_at=s.next_retry_at,
            )
            for s in steps
        ],
        edges=[(names[e.from_step_uuid], names[e.to_step_uuid]) for e in edges],
    )


def current_snapshot(builder: PlanBuilder) -> TaskSnapshot:
    """The snapshot of the builder's working copy (cached until a step changes)."""
    snapshot = builder.cache.get("snapshot")
    if snapshot is None:
        snapshot = builder.cache["snapshot"] = snapshot_of(builder.steps.values(), builder.edges)
    assert isinstance(snapshot, TaskSnapshot)
    return snapshot


def evaluate(builder: PlanBuilder, now: float) -> ExecutionStatus:
    """From ``initializing`` or ``evaluating_results``, take the step the status calls for."""
    snapshot = current_snapshot(builder)
    status = execution_status(snapshot, now)
    builder.outcome["status"] = status.value
    if builder.task_state == TaskState.INITIALIZING and not builder.steps:
        builder.task_event(TaskEvent.NO_STEPS_FOUND, facts=TaskFacts(step_count=0))
        return status
    if status == ExecutionStatus.HAS_READY_STEPS:
        builder.task_event(TaskEvent.READY_STEPS_FOUND)
        enqueue_viable_steps(builder, snapshot, now)
        builder.task_event(TaskEvent.STEPS_ENQUEUED)
    elif status in (ExecutionStatus.PROCESSING, ExecutionStatus.WAITING_FOR_DEPENDENCIES):
        builder.task_event(TaskEvent.NO_DEPENDENCIES_READY)
    else:
        action = determine_action(status)
        if action == FinalAction.PARK_FOR_RETRY:
            builder.task_event(TaskEvent.RETRY_PENDING)
        else:
            apply_final_action(builder, action, snapshot)
    return status


def reevaluate(builder: PlanBuilder, now: float, *, step_succeeded: bool | None = None) -> None:
    """After step changes in ``builder``, bring the task into evaluation and evaluate it.

    ``step_succeeded`` says what the change was when it came from a worker's result (True:
    success, False: a failure now waiting for a retry, None: anything else), which picks
    the event out of ``steps_in_process``. Terminal tasks are left alone.
    """
    state = builder.task_state
    if state.is_terminal:
        return
    if state == TaskState.STEPS_IN_PROCESS:
        snapshot = current_snapshot(builder)
        if step_succeeded is False and execution_status(snapshot, now) == (
            ExecutionStatus.WAITING_FOR_RETRY
        ):
            builder.task_event(TaskEvent.STEP_FAILED)  # only the backoff is left: park
            return
        in_flight = any(s.state in IN_FLIGHT_STATES for s in snapshot.steps)
        builder.task_event(TaskEvent.STEP_COMPLETED if in_flight else TaskEvent.ALL_STEPS_COMPLETED)
    elif state in (TaskState.WAITING_FOR_DEPENDENCIES, TaskState.WAITING_FOR_RETRY):
        if state == TaskState.WAITING_FOR_RETRY and _still_only_backoff(builder, now):
            return
        builder.task_event(TaskEvent.DEPENDENCIES_READY)
    elif state == TaskState.BLOCKED_BY_FAILURES:
        builder.task_event(TaskEvent.STEPS_RESET)
    elif state != TaskState.EVALUATING_RESULTS:
        return  # pending / initializing / enqueuing_steps never rest between operations
    evaluate(builder, now)


def _still_only_backoff(builder: PlanBuilder, now: float) -> bool:
    """A task parked for a retry stays parked while the backoff is still all that is left."""
    return execution_status(current_snapshot(builder), now) == ExecutionStatus.WAITING_FOR_RETRY
