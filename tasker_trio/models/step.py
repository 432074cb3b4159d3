"""Workflow steps and the edges between them."""

from __future__ import annotations

from typing import Any

import attrs

from tasker_trio.models.base import JsonModel
from tasker_trio.models.policy import RetryPolicy, StepType
from tasker_trio.models.results import StepError
from tasker_trio.state_machine import StepState


@attrs.frozen(kw_only=True)
class WorkflowStep(JsonModel):
    """One step of one task, as the store knows it.

    Attributes:
        step_uuid, task_uuid: identifiers.
        name: the step's name in its template.
        namespace: the task's namespace (selects the worker queue).
        handler_callable: the template's ``handler.callable``.
        step_config: the template's ``handler.initialization``.
        step_type: the step's kind.
        retry: its retry policy.
        timeout_seconds: the per-attempt timeout.
        state: its current state.
        attempts: attempts made so far (claims and reclaims).
        next_retry_at: when its backoff ends, while waiting for a retry.
        lease_expires_at: when the current claim's lease ends, while in progress.
        results: the successful result, once there is one.
        last_error: the most recent failure, if any.
        created_at, updated_at: seconds on the engine's clock.
    """

    step_uuid: str
    task_uuid: str
    name: str
    namespace: str
    handler_callable: str
    step_config: dict[str, Any] = attrs.field(factory=dict)
    step_type: StepType = StepType.STANDARD
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    timeout_seconds: float = 30.0
    state: StepState = StepState.PENDING
    attempts: int = 0
    next_retry_at: float | None = None
    lease_expires_at: float | None = None
    results: dict[str, Any] | None = None
    last_error: StepError | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def attempts_left(self) -> int:
        """How many more attempts the retry policy allows."""
        return max(self.retry.max_attempts - self.attempts, 0)

    @property
    def is_terminal(self) -> bool:
        """Whether the engine will never move this step again."""
        return self.state.is_terminal


@attrs.frozen(kw_only=True)
class StepEdge(JsonModel):
    """A dependency: ``to_step_uuid`` runs only after ``from_step_uuid`` is satisfied."""

    task_uuid: str
    from_step_uuid: str
    to_step_uuid: str
    name: str = "provides"
