"""The action determiner: which final action an execution status calls for."""

from __future__ import annotations

import enum

from tasker_trio.orchestration.support import ExecutionStatus


class FinalAction(enum.StrEnum):
    """What finalization does with a task that has nothing ready and nothing in flight."""

    COMPLETE = "complete"
    """Every step is complete or resolved: the task is complete."""
    BLOCK = "block"
    """A step failed for good and nothing else can move: blocked, with a dead letter."""
    PARK_FOR_RETRY = "park_for_retry"
    """Only a backoff is left: wait in ``waiting_for_retry`` until it passes."""


_ACTIONS = {
    ExecutionStatus.ALL_COMPLETE: FinalAction.COMPLETE,
    ExecutionStatus.BLOCKED_BY_FAILURES: FinalAction.BLOCK,
    ExecutionStatus.WAITING_FOR_RETRY: FinalAction.PARK_FOR_RETRY,
}


def determine_action(status: ExecutionStatus) -> FinalAction:
    """The final action for ``status``.

    Raises:
        ValueError: the status still has work to do (ready or in-flight steps).
    """
    try:
        return _ACTIONS[status]
    except KeyError:
        raise ValueError(f"a task with status {status.value} is not ready to finalize") from None
