"""Error classification: what a handler's failure means for its step (semantics §5).

A worker turns whatever its handler raised (or its timeout) into an `ErrorClassification`;
orchestration then calls `decide_after_failure` to choose between another attempt
(``wait_for_retry``) and giving up (``fail``):

- `RetryableError` (and subclasses): retryable, with its ``retry_after``;
- `PermanentError` (and subclasses): never retried;
- a timeout (``trio.TooSlowError``, ``TimeoutError``, the ``timeout`` flag, or
  `classify_timeout`): retryable, ``error_type`` ``"Timeout"``, no traceback (it would only
  show the worker's cancel scope);
- any other exception: retryable, with its type name, message and formatted traceback;
- a result that is not JSON-serializable (`classify_unserializable_result`): permanent.

``trio.Cancelled``, ``KeyboardInterrupt`` and other non-``Exception`` errors are never
classified: they must propagate, so `classify_exception` refuses them with ``TypeError``.
"""

from __future__ import annotations

import traceback as traceback_module

import attrs
import trio

from tasker_trio.errors import PermanentError, RetryableError
from tasker_trio.models.policy import RetryPolicy
from tasker_trio.state_machine.guards import StepFacts, retry_allowed
from tasker_trio.state_machine.step import StepEvent

TIMEOUT_ERROR_TYPE = "Timeout"
"""The ``error_type`` of every timed-out attempt."""

UNSERIALIZABLE_RESULT_ERROR_TYPE = "UnserializableResult"
"""The ``error_type`` of a handler result that cannot be serialized to JSON."""


@attrs.frozen(kw_only=True)
class ErrorClassification:
    """How one failed attempt is recorded and treated.

    Attributes:
        error_type: the exception's type name, or ``"Timeout"`` / ``"UnserializableResult"``.
        message: what went wrong, for people.
        retryable: whether this failure may be retried (the step's policy decides too).
        retry_after: seconds the handler asked to wait before the next attempt, if any.
        traceback: the formatted traceback, when there is one worth keeping.
    """

    error_type: str
    message: str
    retryable: bool
    retry_after: float | None = None
    traceback: str | None = None

    def to_json(self) -> dict[str, object]:
        """The classification as JSON (for a step's error metadata)."""
        return {
            "error_type": self.error_type,
            "message": self.message,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "traceback": self.traceback,
        }


def _format_traceback(exc: BaseException) -> str:
    return "".join(traceback_module.format_exception(exc))


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def classify_timeout(timeout_seconds: float | None = None) -> ErrorClassification:
    """The classification of an attempt that ran out of time: retryable, ``"Timeout"``.

    Args:
        timeout_seconds: the step's ``timeout_seconds``, named in the message when given.
    """
    after = f" after {timeout_seconds:g}s" if timeout_seconds is not None else ""
    return ErrorClassification(
        error_type=TIMEOUT_ERROR_TYPE,
        message=f"step handler timed out{after}",
        retryable=True,
    )


def classify_exception(
    exc: BaseException, *, timeout: bool = False, timeout_seconds: float | None = None
) -> ErrorClassification:
    """Classify what a step handler raised (see the module docstring for the rules).

    Args:
        exc: the exception the handler raised (or the timeout the worker caught).
        timeout: the worker knows the attempt timed out, whatever ``exc`` is.
        timeout_seconds: the step's timeout, named in a timeout's message when given.

    Returns:
        The classification to record with the failed attempt.

    Raises:
        TypeError: ``exc`` is not an ``Exception`` (e.g. ``trio.Cancelled``,
            ``KeyboardInterrupt``): such errors must propagate, never be recorded as a failure.
    """
    if not isinstance(exc, Exception):
        raise TypeError(
            f"{type(exc).__name__} is not a handler failure and must propagate, not be classified"
        )
    if timeout:
        return classify_timeout(timeout_seconds)
    # The handler's own verdict wins, even for an error type that is also a TimeoutError.
    if isinstance(exc, PermanentError):
        retryable, retry_after = False, None
    elif isinstance(exc, RetryableError):
        retryable, retry_after = True, exc.retry_after
    elif isinstance(exc, trio.TooSlowError | TimeoutError):
        return classify_timeout(timeout_seconds)
    else:
        retryable, retry_after = True, None
    return ErrorClassification(
        error_type=type(exc).__name__,
        message=_message(exc),
        retryable=retryable,
        retry_after=retry_after,
        traceback=_format_traceback(exc),
    )


def classify_unserializable_result(exc: Exception) -> ErrorClassification:
    """The classification of a handler result that cannot be serialized: permanent.

    Retrying would run the handler again for a result that can never be stored, so the step
    fails for good, with a message that says why (the result is not lost silently).

    Args:
        exc: the error the serializer raised (``TypeError``, ``ValueError``, ...).
    """
    return ErrorClassification(
        error_type=UNSERIALIZABLE_RESULT_ERROR_TYPE,
        message=(
            "the step handler's result cannot be serialized to JSON "
            f"({type(exc).__name__}: {_message(exc)}); return a dict of JSON values"
        ),
        retryable=False,
        traceback=_format_traceback(exc),
    )


def decide_after_failure(
    policy: RetryPolicy, attempts: int, classification: ErrorClassification
) -> StepEvent:
    """The step event orchestration fires for a failed attempt.

    Args:
        policy: the step's retry policy.
        attempts: the attempts made so far, the failed one included.
        classification: how the failure was classified.

    Returns:
        `StepEvent.WAIT_FOR_RETRY` when the step is retryable, the error is retryable and
        attempts remain (guard ``retry_allowed``); else `StepEvent.FAIL`.
    """
    facts = StepFacts(
        attempts=attempts,
        max_attempts=policy.max_attempts,
        retryable=policy.retryable,
        error_retryable=classification.retryable,
    )
    return StepEvent.WAIT_FOR_RETRY if retry_allowed(facts) else StepEvent.FAIL
