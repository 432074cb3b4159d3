"""The step state machine (semantics §3): 10 states, their events and the transition table.

``STEP_TRANSITIONS`` maps ``(state, event)`` to the next state; ``STEP_GUARDS`` names the
guard (see `tasker_trio.state_machine.guards`) that must also hold for a transition.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class StepState(enum.StrEnum):
    """Where a workflow step is in its life."""

    PENDING = "pending"
    """Created; waits for its parents (or was reset by an operator)."""
    ENQUEUED = "enqueued"
    """Its message is in the namespace's worker queue."""
    IN_PROGRESS = "in_progress"
    """A worker claimed it and runs its handler."""
    ENQUEUED_FOR_ORCHESTRATION = "enqueued_for_orchestration"
    """The handler succeeded; the result awaits orchestration."""
    ENQUEUED_AS_ERROR_FOR_ORCHESTRATION = "enqueued_as_error_for_orchestration"
    """The handler failed; orchestration decides between retry and error."""
    WAITING_FOR_RETRY = "waiting_for_retry"
    """Failed, with attempts left; waits out its backoff."""
    COMPLETE = "complete"
    """Finished successfully (terminal)."""
    ERROR = "error"
    """Failed for good (terminal for the engine; an operator may reset it)."""
    CANCELLED = "cancelled"
    """Cancelled with its task (terminal)."""
    RESOLVED_MANUALLY = "resolved_manually"
    """An operator declared it resolved without a result (terminal)."""

    @property
    def is_terminal(self) -> bool:
        """Whether the engine will never move this step again (an operator may reset error)."""
        return self in STEP_TERMINAL_STATES

    @property
    def satisfies_children(self) -> bool:
        """Whether a child may run once this parent is in this state."""
        return self in (StepState.COMPLETE, StepState.RESOLVED_MANUALLY)


class StepEvent(enum.StrEnum):
    """What can happen to a step."""

    ENQUEUE = "enqueue"
    """Send it to a worker queue (a retry is just the next enqueue)."""
    START = "start"
    """A worker claims it (or reclaims it after the previous lease expired)."""
    SUBMIT_SUCCESS = "submit_success"
    """The worker reports success."""
    SUBMIT_FAILURE = "submit_failure"
    """The worker reports failure."""
    COMPLETE = "complete"
    """Orchestration accepts the successful result."""
    WAIT_FOR_RETRY = "wait_for_retry"
    """Orchestration schedules another attempt after the backoff."""
    FAIL = "fail"
    """The step fails for good."""
    CANCEL = "cancel"
    """Cancel the step (legal from every non-terminal state)."""
    RESOLVE_MANUALLY = "resolve_manually"
    """An operator declares the step resolved."""
    COMPLETE_MANUALLY = "complete_manually"
    """An operator completes the step with a result of their own."""
    RESET = "reset"
    """An operator resets a failed step so it runs again from attempt 1."""


S = StepState
E = StepEvent

STEP_TERMINAL_STATES: frozenset[StepState] = frozenset(
    {S.COMPLETE, S.ERROR, S.CANCELLED, S.RESOLVED_MANUALLY}
)

_NON_TERMINAL = [state for state in S if state not in STEP_TERMINAL_STATES]

_EXPLICIT: dict[tuple[StepState, StepEvent], StepState] = {
    (S.PENDING, E.ENQUEUE): S.ENQUEUED,
    (S.WAITING_FOR_RETRY, E.ENQUEUE): S.ENQUEUED,
    (S.ENQUEUED, E.START): S.IN_PROGRESS,
    (S.IN_PROGRESS, E.START): S.IN_PROGRESS,
    (S.IN_PROGRESS, E.SUBMIT_SUCCESS): S.ENQUEUED_FOR_ORCHESTRATION,
    (S.IN_PROGRESS, E.SUBMIT_FAILURE): S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION,
    (S.ENQUEUED_FOR_ORCHESTRATION, E.COMPLETE): S.COMPLETE,
    (S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION, E.WAIT_FOR_RETRY): S.WAITING_FOR_RETRY,
    (S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION, E.FAIL): S.ERROR,
    (S.PENDING, E.FAIL): S.ERROR,
    (S.ENQUEUED, E.FAIL): S.ERROR,
    (S.IN_PROGRESS, E.FAIL): S.ERROR,
    (S.ERROR, E.RESET): S.PENDING,
}

STEP_TRANSITIONS: Mapping[tuple[StepState, StepEvent], StepState] = MappingProxyType(
    _EXPLICIT
    | {(state, E.CANCEL): S.CANCELLED for state in _NON_TERMINAL}
    | {(state, E.RESOLVE_MANUALLY): S.RESOLVED_MANUALLY for state in [*_NON_TERMINAL, S.ERROR]}
    | {(state, E.COMPLETE_MANUALLY): S.COMPLETE for state in [*_NON_TERMINAL, S.ERROR]}
)
"""The whole step table: ``(state, event) -> next state``."""

STEP_GUARDS: Mapping[tuple[StepState, StepEvent], str] = MappingProxyType(
    {
        (S.PENDING, E.ENQUEUE): "step_is_ready",
        (S.WAITING_FOR_RETRY, E.ENQUEUE): "step_is_ready",
        (S.ENQUEUED, E.START): "claim_is_allowed",
        (S.IN_PROGRESS, E.START): "reclaim_allowed",
        (S.IN_PROGRESS, E.SUBMIT_SUCCESS): "result_is_current",
        (S.IN_PROGRESS, E.SUBMIT_FAILURE): "result_is_current",
        (S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION, E.WAIT_FOR_RETRY): "retry_allowed",
    }
)
"""Which named guard must hold for a guarded step transition."""

del S, E
