"""Running one claimed step: the handler under its timeout and cancel scope, then the result.

The handler runs in its own cancel scope, whose deadline is the step's timeout (a sync
handler in a thread, abandoned on timeout or cancel), while the worker's lease keeper
(`tasker_trio.worker.leases`) extends the claim and the message's visibility. The outcome
becomes a `StepExecutionResult` carrying the attempt number (fencing). Cancellation from
outside (engine shutdown) records nothing: the message stays in its queue and the step is
reclaimed when its visibility timeout expires.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs
import outcome
import trio

from tasker_trio.errors import HandlerResolutionError
from tasker_trio.models import StepError, StepExecutionResult
from tasker_trio.orchestration.support import (
    ErrorClassification,
    classify_exception,
    classify_timeout,
    classify_unserializable_result,
)
from tasker_trio.worker.context import StepContext
from tasker_trio.worker.handlers import HandlerResolver
from tasker_trio.worker.leases import RunningStep


@attrs.frozen(kw_only=True)
class ExecutionSettings:
    """How a worker runs steps."""

    worker_id: str
    visibility_timeout: float = 30.0
    """Seconds a claim (and its message) stays hidden without renewal."""
    clock: Callable[[], float] = trio.current_time
    """The store's clock: stamps ``completed_at`` on the same scale as the audit trail."""


async def execute(
    running: RunningStep, *, resolver: HandlerResolver, settings: ExecutionSettings
) -> StepExecutionResult:
    """Run the claimed step's handler inside its cancel scope and return its result.

    The scope carries the step's timeout as its deadline; an operator cancels it through
    `RunningStep.cancel`, which the result tells apart from a timeout.
    """
    claimed, scope = running.claimed, running.scope
    step = claimed.step
    ctx = StepContext.from_claim(claimed)
    wall = time.perf_counter()
    value: Any = None
    failure: ErrorClassification | None = None
    scope.deadline = trio.current_time() + step.timeout_seconds
    with scope:
        try:
            handler = resolver.resolve(step.handler_callable)
            if handler.is_async:
                value = await handler.call_async(ctx)
            else:
                value = await run_in_thread(handler.fn, ctx)
        except HandlerResolutionError as exc:
            failure = ErrorClassification(
                error_type="HandlerResolutionError", message=str(exc), retryable=False
            )
        except Exception as exc:
            failure = classify_exception(exc)
    if scope.cancelled_caught and running.cancelled_by_operator:
        failure = ErrorClassification(
            error_type="Cancelled", message="the step was cancelled while running", retryable=False
        )
    elif scope.cancelled_caught:
        failure = classify_timeout(step.timeout_seconds)
    elapsed_ms = (time.perf_counter() - wall) * 1000.0
    common: dict[str, Any] = {
        "task_uuid": step.task_uuid,
        "step_uuid": step.step_uuid,
        "execution_time_ms": elapsed_ms,
        "worker_id": settings.worker_id,
        "correlation_id": claimed.task.correlation_id,
        "completed_at": settings.clock(),
    }
    if failure is None:
        result, failure = _as_result(value)
        if failure is None:
            return StepExecutionResult.succeeded(attempt=step.attempts, result=result, **common)
    error = StepError(
        error_type=failure.error_type,
        message=failure.message,
        retryable=failure.retryable,
        retry_after=failure.retry_after,
        traceback=failure.traceback,
        attempt=step.attempts,
        execution_time_ms=elapsed_ms,
    )
    return StepExecutionResult.failed(error=error, **common)


async def run_in_thread(fn: Any, ctx: StepContext) -> Any:
    """Run a sync handler in a worker thread (abandoned if cancelled).

    Under a `trio.testing.MockClock` the Trio side would look idle while the thread works, so
    an autojumping clock would leap past the step's timeout (and ``wait_all_tasks_blocked``
    would return early). There, a companion task keeps the run loop busy until the thread is
    done, so mock time stands still while the handler really runs.
    """
    testing = sys.modules.get("trio.testing")  # never imported: no MockClock can be running
    if testing is None or not isinstance(trio.lowlevel.current_clock(), testing.MockClock):
        return await trio.to_thread.run_sync(fn, ctx, abandon_on_cancel=True)
    captured: outcome.Outcome[Any] | None = None

    async def call() -> None:
        nonlocal captured
        # Captured, not raised: the handler's own exception must reach the caller as itself,
        # not wrapped in the nursery's ExceptionGroup.
        captured = await outcome.acapture(trio.to_thread.run_sync, fn, ctx, abandon_on_cancel=True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        while captured is None:
            await trio.lowlevel.checkpoint()
    return captured.unwrap()


def _as_result(value: Any) -> tuple[dict[str, Any], ErrorClassification | None]:
    """A handler's return value as a JSON object, or the permanent failure it amounts to."""
    if value is None:
        return {}, None
    if not isinstance(value, dict):
        problem = TypeError(f"a handler must return a dict (or None), got {type(value).__name__}")
        return {}, classify_unserializable_result(problem)
    try:
        return json.loads(json.dumps(value, allow_nan=False)), None
    except (TypeError, ValueError) as exc:
        return {}, classify_unserializable_result(exc)
