"""Task execution status: what a task should do next, from one snapshot (semantics §4).

`execution_status` checks, in this priority order, and the first that holds wins:

1. ``has_ready_steps`` — some step is viable now (`viable_steps`);
2. ``processing`` — some step is enqueued, in progress, or awaiting orchestration
   (`IN_FLIGHT_STATES`);
3. ``waiting_for_retry`` — some step is waiting out its backoff: pending or waiting_for_retry,
   parents satisfied, an attempt left, ``next_retry_at`` still ahead (`earliest_retry_at`);
4. ``blocked_by_failures`` — some step is failed (error, cancelled, or waiting with no
   attempt left; see `is_failed`) and nothing above holds;
5. ``all_complete`` — every step is complete or resolved manually (true for zero steps);
6. ``waiting_for_dependencies`` — the rest.

**[better]** than tasker-core, which checks failures first: a permanent failure stops only its
descendants. Independent branches keep running (1 to 3 win over 4), and the task is blocked only
once nothing else can move, so resetting the failed step leaves only its own part of the graph.
A cancelled step blocks like an error: its descendants can never run without an operator.

`task_event_for` maps a status to the task event fired from ``evaluating_results``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from tasker_trio.orchestration.support.viable_steps import (
    IN_FLIGHT_STATES,
    TaskSnapshot,
    earliest_retry_at,
    failed_steps,
    viable_steps,
)
from tasker_trio.state_machine.task import TaskEvent


class ExecutionStatus(enum.StrEnum):
    """Where a task's execution stands, in priority order (first match wins)."""

    HAS_READY_STEPS = "has_ready_steps"
    """Some step can be enqueued now."""
    PROCESSING = "processing"
    """Some step is enqueued, in progress, or awaiting orchestration."""
    WAITING_FOR_RETRY = "waiting_for_retry"
    """Some step waits out its backoff; nothing is ready or in flight."""
    BLOCKED_BY_FAILURES = "blocked_by_failures"
    """Some step failed and nothing else can move; an operator must act."""
    ALL_COMPLETE = "all_complete"
    """Every step is complete or resolved manually (or the task has no steps)."""
    WAITING_FOR_DEPENDENCIES = "waiting_for_dependencies"
    """None of the above (not reachable from a consistent snapshot of a DAG)."""


def execution_status(snapshot: TaskSnapshot, now: float) -> ExecutionStatus:
    """The task's execution status at ``now`` (see the module docstring for the rules)."""
    if viable_steps(snapshot, now):
        return ExecutionStatus.HAS_READY_STEPS
    if any(step.state in IN_FLIGHT_STATES for step in snapshot.steps):
        return ExecutionStatus.PROCESSING
    if earliest_retry_at(snapshot) is not None:
        return ExecutionStatus.WAITING_FOR_RETRY
    if failed_steps(snapshot):
        return ExecutionStatus.BLOCKED_BY_FAILURES
    if all(step.state.satisfies_children for step in snapshot.steps):
        return ExecutionStatus.ALL_COMPLETE
    return ExecutionStatus.WAITING_FOR_DEPENDENCIES


_TASK_EVENTS: Mapping[ExecutionStatus, TaskEvent] = MappingProxyType(
    {
        ExecutionStatus.HAS_READY_STEPS: TaskEvent.READY_STEPS_FOUND,
        ExecutionStatus.PROCESSING: TaskEvent.NO_DEPENDENCIES_READY,
        ExecutionStatus.WAITING_FOR_RETRY: TaskEvent.RETRY_PENDING,
        ExecutionStatus.BLOCKED_BY_FAILURES: TaskEvent.PERMANENT_FAILURE,
        ExecutionStatus.ALL_COMPLETE: TaskEvent.ALL_STEPS_SUCCESSFUL,
        ExecutionStatus.WAITING_FOR_DEPENDENCIES: TaskEvent.NO_DEPENDENCIES_READY,
    }
)


def task_event_for(status: ExecutionStatus) -> TaskEvent:
    """The task event orchestration fires from ``evaluating_results`` for ``status``.

    has_ready_steps → ready_steps_found; processing → no_dependencies_ready;
    waiting_for_retry → retry_pending; blocked_by_failures → permanent_failure;
    all_complete → all_steps_successful; waiting_for_dependencies → no_dependencies_ready.
    """
    return _TASK_EVENTS[status]
