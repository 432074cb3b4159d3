"""Guards: named predicates that must hold, besides the table, for some transitions.

A guard looks only at a frozen snapshot of facts (`StepFacts`, `TaskFacts`), so it is pure and
the same check serves the memory store, the PostgreSQL store and the property tests. Times are
seconds on whatever clock the caller uses (the Trio clock in the engine).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import attrs


@attrs.frozen(kw_only=True)
class StepFacts:
    """What a step guard may look at.

    Attributes:
        parents_satisfied: every parent is complete or resolved manually.
        attempts: attempts made so far (claims, reclaims included).
        max_attempts: the step's ``retry.max_attempts``.
        retryable: the step's ``retry.retryable``.
        now: the current time.
        next_retry_at: when the backoff of the last failure ends, if any.
        lease_expires_at: when the current claim's lease (visibility timeout) ends, if any.
        result_attempt: the attempt number a submitted result carries, if any.
        error_retryable: whether the last failure was retryable (a PermanentError is not).
    """

    parents_satisfied: bool = True
    attempts: int = 0
    max_attempts: int = 3
    retryable: bool = True
    now: float = 0.0
    next_retry_at: float | None = None
    lease_expires_at: float | None = None
    result_attempt: int | None = None
    error_retryable: bool = True


@attrs.frozen(kw_only=True)
class TaskFacts:
    """What a task guard may look at.

    Attributes:
        step_count: how many steps the task has.
    """

    step_count: int = 0


def attempts_left(facts: StepFacts) -> bool:
    """Another attempt may start: none made yet, or retryable with attempts remaining."""
    return facts.attempts == 0 or (facts.retryable and facts.attempts < facts.max_attempts)


def backoff_elapsed(facts: StepFacts) -> bool:
    """No backoff is pending: ``next_retry_at`` is unset or has passed."""
    return facts.next_retry_at is None or facts.next_retry_at <= facts.now


def step_is_ready(facts: StepFacts) -> bool:
    """Readiness (semantics §4): parents satisfied, attempts left, backoff elapsed."""
    return facts.parents_satisfied and attempts_left(facts) and backoff_elapsed(facts)


def claim_is_allowed(facts: StepFacts) -> bool:
    """A claim would not exceed ``max_attempts`` (the claim increments ``attempts``)."""
    return facts.attempts < facts.max_attempts


def reclaim_allowed(facts: StepFacts) -> bool:
    """The previous claim's lease expired and an attempt remains for the reclaim."""
    expired = facts.lease_expires_at is not None and facts.lease_expires_at <= facts.now
    return expired and claim_is_allowed(facts)


def result_is_current(facts: StepFacts) -> bool:
    """Fencing: the result's attempt number is the step's current attempt."""
    return facts.result_attempt is not None and facts.result_attempt == facts.attempts


def retry_allowed(facts: StepFacts) -> bool:
    """The failure may be retried: retryable step, retryable error, attempts remaining."""
    return facts.retryable and facts.error_retryable and facts.attempts < facts.max_attempts


def task_has_no_steps(facts: TaskFacts) -> bool:
    """The task has no steps at all (only then does ``no_steps_found`` complete it)."""
    return facts.step_count == 0


STEP_GUARD_FUNCTIONS: Mapping[str, Callable[[StepFacts], bool]] = MappingProxyType(
    {
        "step_is_ready": step_is_ready,
        "claim_is_allowed": claim_is_allowed,
        "reclaim_allowed": reclaim_allowed,
        "result_is_current": result_is_current,
        "retry_allowed": retry_allowed,
    }
)
"""Step guards by the names used in `STEP_GUARDS`."""

TASK_GUARD_FUNCTIONS: Mapping[str, Callable[[TaskFacts], bool]] = MappingProxyType(
    {"task_has_no_steps": task_has_no_steps}
)
"""Task guards by the names used in `TASK_GUARDS`."""
