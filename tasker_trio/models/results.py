"""What a step attempt produced: `StepError` and `StepExecutionResult` (semantics §5)."""

from __future__ import annotations

from typing import Any

import attrs

from tasker_trio.models.base import JsonModel


@attrs.frozen(kw_only=True)
class StepError(JsonModel):
    """A failed attempt, as recorded.

    Attributes:
        error_type: the exception's type name (``Timeout`` for a timeout).
        message: its message.
        retryable: whether this failure may be retried.
        retry_after: seconds the handler asked to wait before the next attempt, if any.
        traceback: the formatted traceback, if there was one.
        attempt: the attempt that failed (1 for the first).
        execution_time_ms: how long the attempt ran.
    """

    error_type: str
    message: str
    retryable: bool = True
    retry_after: float | None = None
    traceback: str | None = None
    attempt: int
    execution_time_ms: float = 0.0


@attrs.frozen(kw_only=True)
class StepExecutionResult(JsonModel):
    """The outcome of one attempt of one step, reported by a worker.

    Attributes:
        task_uuid, step_uuid: the step.
        attempt: the attempt it belongs to (fencing: a superseded attempt is ignored).
        success: whether the handler succeeded.
        result: the handler's result (``{}`` on failure).
        error: the failure, when ``success`` is false.
        execution_time_ms: how long the handler ran.
        worker_id: which worker ran it.
        correlation_id: the task's correlation id.
        completed_at: when the attempt ended (engine clock, seconds).
    """

    task_uuid: str
    step_uuid: str
    attempt: int
    success: bool
    result: dict[str, Any] = attrs.field(factory=dict)
    error: StepError | None = None
    execution_time_ms: float = 0.0
    worker_id: str | None = None
    correlation_id: str | None = None
    completed_at: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.success and self.error is not None:
            raise ValueError("a successful result carries no error")
        if not self.success and self.error is None:
            raise ValueError("a failed result must carry its error")

    @classmethod
    def succeeded(
        cls, *, task_uuid: str, step_uuid: str, attempt: int, result: dict[str, Any], **extra: Any
    ) -> StepExecutionResult:
        """A successful attempt with its ``result``."""
        return cls(
            task_uuid=task_uuid,
            step_uuid=step_uuid,
            attempt=attempt,
            success=True,
            result=result,
            **extra,
        )

    @classmethod
    def failed(
        cls, *, task_uuid: str, step_uuid: str, error: StepError, **extra: Any
    ) -> StepExecutionResult:
        """A failed attempt; the attempt number (and by default the run time) is the error's."""
        extra.setdefault("execution_time_ms", error.execution_time_ms)
        return cls(
            task_uuid=task_uuid,
            step_uuid=step_uuid,
            attempt=error.attempt,
            success=False,
            error=error,
            **extra,
        )
