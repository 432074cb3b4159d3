"""The task state machine (semantics §2): 12 states, their events and the transition table.

The table is data: ``TASK_TRANSITIONS`` maps ``(state, event)`` to the next state, and
``cancel`` is legal from every non-terminal state. `tasker_trio.state_machine.transition`
applies it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class TaskState(enum.StrEnum):
    """Where a task is in its life."""

    PENDING = "pending"
    """Created; initialization has not begun."""
    INITIALIZING = "initializing"
    """Its steps and edges are being created and its first ready steps looked for."""
    ENQUEUING_STEPS = "enqueuing_steps"
    """Ready steps are being sent to the workers' queues."""
    STEPS_IN_PROCESS = "steps_in_process"
    """Some steps are enqueued or running on workers."""
    EVALUATING_RESULTS = "evaluating_results"
    """A step result arrived; orchestration decides what comes next."""
    WAITING_FOR_DEPENDENCIES = "waiting_for_dependencies"
    """Nothing can be enqueued until steps still in flight finish."""
    WAITING_FOR_RETRY = "waiting_for_retry"
    """The only work left is a step waiting out its backoff."""
    BLOCKED_BY_FAILURES = "blocked_by_failures"
    """A step failed permanently and nothing else can move; an operator must act."""
    COMPLETE = "complete"
    """Every step is complete or resolved manually (terminal)."""
    ERROR = "error"
    """The task was given up (terminal)."""
    CANCELLED = "cancelled"
    """The task was cancelled (terminal)."""
    RESOLVED_MANUALLY = "resolved_manually"
    """An operator declared the task resolved (terminal)."""

    @property
    def is_terminal(self) -> bool:
        """Whether nothing may leave this state."""
        return self in TASK_TERMINAL_STATES


class TaskEvent(enum.StrEnum):
    """What can happen to a task."""

    START = "start"
    """Begin initialization."""
    READY_STEPS_FOUND = "ready_steps_found"
    """Some steps can be enqueued now."""
    NO_STEPS_FOUND = "no_steps_found"
    """The task has no steps at all, so it is complete."""
    NO_DEPENDENCIES_READY = "no_dependencies_ready"
    """Nothing is ready; steps still in flight must finish first."""
    STEPS_ENQUEUED = "steps_enqueued"
    """The ready steps were enqueued."""
    ENQUEUE_FAILED = "enqueue_failed"
    """Enqueuing failed in a way that cannot be retried."""
    STEP_COMPLETED = "step_completed"
    """One step finished successfully."""
    ALL_STEPS_COMPLETED = "all_steps_completed"
    """The last step in flight finished."""
    STEP_FAILED = "step_failed"
    """A step failed and waits out its backoff."""
    ALL_STEPS_SUCCESSFUL = "all_steps_successful"
    """Every step is complete or resolved manually."""
    PERMANENT_FAILURE = "permanent_failure"
    """A step is in error and nothing else can move."""
    RETRY_PENDING = "retry_pending"
    """The only remaining work is a step waiting out its backoff."""
    DEPENDENCIES_READY = "dependencies_ready"
    """A step result arrived while the task waited: evaluate again."""
    RETRY_READY = "retry_ready"
    """A backoff elapsed: enqueue the retry."""
    GIVE_UP = "give_up"
    """An operator (or a lifecycle limit) abandons a blocked task."""
    MANUAL_RESOLUTION = "manual_resolution"
    """An operator declares a blocked task resolved."""
    STEPS_RESET = "steps_reset"
    """An operator reset the failed steps of a blocked task."""
    CANCEL = "cancel"
    """Cancel the task (legal from every non-terminal state)."""


S = TaskState
E = TaskEvent

TASK_TERMINAL_STATES: frozenset[TaskState] = frozenset(
    {S.COMPLETE, S.ERROR, S.CANCELLED, S.RESOLVED_MANUALLY}
)

_EXPLICIT: dict[tuple[TaskState, TaskEvent], TaskState] = {
    (S.PENDING, E.START): S.INITIALIZING,
    (S.INITIALIZING, E.READY_STEPS_FOUND): S.ENQUEUING_STEPS,
    (S.INITIALIZING, E.NO_STEPS_FOUND): S.COMPLETE,
    (S.INITIALIZING, E.NO_DEPENDENCIES_READY): S.WAITING_FOR_DEPENDENCIES,
    (S.ENQUEUING_STEPS, E.STEPS_ENQUEUED): S.STEPS_IN_PROCESS,
    (S.ENQUEUING_STEPS, E.ENQUEUE_FAILED): S.ERROR,
    (S.STEPS_IN_PROCESS, E.STEP_COMPLETED): S.EVALUATING_RESULTS,
    (S.STEPS_IN_PROCESS, E.ALL_STEPS_COMPLETED): S.EVALUATING_RESULTS,
    (S.STEPS_IN_PROCESS, E.STEP_FAILED): S.WAITING_FOR_RETRY,
    (S.EVALUATING_RESULTS, E.ALL_STEPS_SUCCESSFUL): S.COMPLETE,
    (S.EVALUATING_RESULTS, E.READY_STEPS_FOUND): S.ENQUEUING_STEPS,
    (S.EVALUATING_RESULTS, E.NO_DEPENDENCIES_READY): S.WAITING_FOR_DEPENDENCIES,
    (S.EVALUATING_RESULTS, E.PERMANENT_FAILURE): S.BLOCKED_BY_FAILURES,
    (S.EVALUATING_RESULTS, E.RETRY_PENDING): S.WAITING_FOR_RETRY,
    (S.WAITING_FOR_DEPENDENCIES, E.DEPENDENCIES_READY): S.EVALUATING_RESULTS,
    (S.WAITING_FOR_RETRY, E.RETRY_READY): S.ENQUEUING_STEPS,
    (S.WAITING_FOR_RETRY, E.DEPENDENCIES_READY): S.EVALUATING_RESULTS,
    (S.BLOCKED_BY_FAILURES, E.GIVE_UP): S.ERROR,
    (S.BLOCKED_BY_FAILURES, E.MANUAL_RESOLUTION): S.RESOLVED_MANUALLY,
    (S.BLOCKED_BY_FAILURES, E.STEPS_RESET): S.EVALUATING_RESULTS,
}

TASK_TRANSITIONS: Mapping[tuple[TaskState, TaskEvent], TaskState] = MappingProxyType(
    _EXPLICIT | {(state, E.CANCEL): S.CANCELLED for state in S if state not in TASK_TERMINAL_STATES}
)
"""The whole task table: ``(state, event) -> next state``."""

del S, E

TASK_GUARDS: Mapping[tuple[TaskState, TaskEvent], str] = MappingProxyType(
    {(TaskState.INITIALIZING, TaskEvent.NO_STEPS_FOUND): "task_has_no_steps"}
)
"""Which named guard must hold for a guarded task transition."""
