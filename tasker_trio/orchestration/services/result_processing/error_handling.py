"""Error handling for a failed attempt: retry after a backoff, or fail for good."""

from __future__ import annotations

import random

from tasker_trio.models import WorkflowStep
from tasker_trio.orchestration.support import BackoffCalculator
from tasker_trio.state_machine import StepEvent, StepFacts
from tasker_trio.state_machine.guards import retry_allowed
from tasker_trio.store.plan import PlanBuilder


def handle_failure(
    builder: PlanBuilder, step: WorkflowStep, now: float, *, rng: random.Random | None
) -> bool:
    """Move a step awaiting orchestration as an error to ``waiting_for_retry`` or ``error``.

    The retry waits ``retry_after`` (when the handler gave one, capped) or the step's backoff,
    with jitter from ``rng``. Returns True when a retry was scheduled.
    """
    error = step.last_error
    facts = StepFacts(
        attempts=step.attempts,
        max_attempts=step.retry.max_attempts,
        retryable=step.retry.retryable,
        error_retryable=error.retryable if error is not None else True,
        now=now,
    )
    if retry_allowed(facts):
        at = BackoffCalculator(rng=rng).next_retry_at(
            now,
            step.retry,
            step.attempts,
            retry_after_s=error.retry_after if error is not None else None,
        )
        builder.step_event(
            step.step_uuid,
            StepEvent.WAIT_FOR_RETRY,
            facts=facts,
            updates={"next_retry_at": at},
            metadata={"next_retry_at": at, "attempt": step.attempts},
        )
        return True
    reason = "attempts exhausted" if error is None or error.retryable else "permanent error"
    builder.step_event(
        step.step_uuid, StepEvent.FAIL, metadata={"reason": reason, "attempt": step.attempts}
    )
    return False
