"""The state transitioner: apply a final action to a plan (with the dead-letter entry)."""

from __future__ import annotations

from typing import Any

from tasker_trio.orchestration.services.task_finalization.action_determiner import FinalAction
from tasker_trio.orchestration.support import TaskSnapshot, blocked_descendants, failed_steps
from tasker_trio.state_machine import TaskEvent
from tasker_trio.store.plan import PlanBuilder


def apply_final_action(builder: PlanBuilder, action: FinalAction, snapshot: TaskSnapshot) -> None:
    """Move an ``evaluating_results`` task to its end state for ``action``."""
    if action == FinalAction.COMPLETE:
        builder.task_event(TaskEvent.ALL_STEPS_SUCCESSFUL)
    elif action == FinalAction.BLOCK:
        details = failure_details(builder, snapshot)
        builder.task_event(TaskEvent.PERMANENT_FAILURE, **details)
        builder.dead_letter("permanent_failure", **details)
    else:
        builder.task_event(TaskEvent.RETRY_PENDING)


def failure_details(builder: PlanBuilder, snapshot: TaskSnapshot) -> dict[str, Any]:
    """Which steps failed (with their last errors) and which are blocked behind them."""
    by_name = {s.name: s for s in builder.steps.values()}
    failed = []
    for step in failed_steps(snapshot):
        error = by_name[step.name].last_error
        failed.append(
            {
                "step": step.name,
                "state": step.state.value,
                "attempts": step.attempts,
                "error": error.to_json() if error is not None else None,
            }
        )
    return {
        "failed_steps": failed,
        "blocked_steps": [s.name for s in blocked_descendants(snapshot)],
    }
