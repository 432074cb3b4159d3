"""Unit tests of error classification and the retry decision (semantics §5)."""

from __future__ import annotations

import json

import pytest
import trio

from tasker_trio.errors import PermanentError, RetryableError, StepHandlerError
from tasker_trio.models.policy import RetryPolicy
from tasker_trio.orchestration.support import (
    TIMEOUT_ERROR_TYPE,
    UNSERIALIZABLE_RESULT_ERROR_TYPE,
    ErrorClassification,
    classify_exception,
    classify_timeout,
    classify_unserializable_result,
    decide_after_failure,
)
from tasker_trio.state_machine import StepEvent


def raised(exc: BaseException) -> BaseException:
    """``exc`` after being raised and caught, so it carries a traceback."""
    try:
        raise exc
    except BaseException as caught:
        return caught


class RateLimited(RetryableError):
    pass


class BadInput(PermanentError):
    pass


class RetryableTimeout(RetryableError, TimeoutError):
    pass


def test_retryable_error_keeps_retry_after() -> None:
    c = classify_exception(raised(RetryableError("busy", retry_after=2.5)))
    assert c.retryable is True
    assert c.retry_after == 2.5
    assert c.error_type == "RetryableError"
    assert c.message == "busy"
    assert c.traceback is not None
    assert "RetryableError: busy" in c.traceback


def test_retryable_without_retry_after() -> None:
    assert classify_exception(RetryableError("busy")).retry_after is None


def test_subclasses_keep_their_type_name_and_verdict() -> None:
    assert classify_exception(RateLimited("slow down", retry_after=1)).error_type == "RateLimited"
    c = classify_exception(BadInput("no such order"))
    assert (c.error_type, c.retryable) == ("BadInput", False)


def test_permanent_error_is_not_retryable() -> None:
    c = classify_exception(raised(PermanentError("invalid card")))
    assert c.retryable is False
    assert c.retry_after is None
    assert c.message == "invalid card"
    assert c.error_type == "PermanentError"


@pytest.mark.parametrize("exc", [trio.TooSlowError(), TimeoutError("read timed out")])
def test_timeouts_are_retryable(exc: Exception) -> None:
    c = classify_exception(exc, timeout_seconds=30)
    assert c.error_type == TIMEOUT_ERROR_TYPE
    assert c.retryable is True
    assert "30s" in c.message
    assert c.traceback is None


def test_timeout_flag_wins_over_the_exception() -> None:
    c = classify_exception(PermanentError("x"), timeout=True)
    assert (c.error_type, c.retryable) == (TIMEOUT_ERROR_TYPE, True)


def test_handler_verdict_wins_over_timeout_base_class() -> None:
    c = classify_exception(RetryableTimeout("upstream", retry_after=3))
    assert (c.error_type, c.retry_after) == ("RetryableTimeout", 3)


def test_classify_timeout_alone() -> None:
    assert classify_timeout() == ErrorClassification(
        error_type="Timeout", message="step handler timed out", retryable=True
    )
    assert classify_timeout(1.5).message == "step handler timed out after 1.5s"


@pytest.mark.parametrize(
    ("exc", "error_type"),
    [
        (ValueError("bad value"), "ValueError"),
        (KeyError("missing"), "KeyError"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError"),
        (StepHandlerError("base"), "StepHandlerError"),
    ],
)
def test_other_exceptions_are_retryable_with_traceback(exc: Exception, error_type: str) -> None:
    c = classify_exception(raised(exc))
    assert c.error_type == error_type
    assert c.retryable is True
    assert c.retry_after is None
    assert c.message == str(exc)
    assert c.traceback is not None
    assert "Traceback (most recent call last)" in c.traceback
    assert error_type in c.traceback


def test_empty_message_falls_back_to_type_name() -> None:
    assert classify_exception(RuntimeError()).message == "RuntimeError"


def test_exception_never_raised_still_has_a_formatted_traceback() -> None:
    c = classify_exception(ValueError("never raised"))
    assert c.traceback == "ValueError: never raised\n"


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()])
def test_base_exceptions_are_refused(exc: BaseException) -> None:
    with pytest.raises(TypeError, match="must propagate"):
        classify_exception(exc)


async def test_trio_cancelled_is_refused() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.sleep(1)
        except trio.Cancelled as cancelled:
            with pytest.raises(TypeError, match="Cancelled"):
                classify_exception(cancelled)
            raise


def test_unserializable_result_is_permanent_with_clear_message() -> None:
    try:
        json.dumps({"when": object()})
    except TypeError as exc:
        c = classify_unserializable_result(exc)
    assert c.error_type == UNSERIALIZABLE_RESULT_ERROR_TYPE
    assert c.retryable is False
    assert "cannot be serialized to JSON" in c.message
    assert "TypeError" in c.message
    assert c.traceback is not None


def test_to_json_round_trips_through_json() -> None:
    c = classify_exception(RetryableError("busy", retry_after=1.0))
    data = json.loads(json.dumps(c.to_json()))
    assert ErrorClassification(**data) == c


RETRYABLE = ErrorClassification(error_type="X", message="x", retryable=True)
PERMANENT = ErrorClassification(error_type="X", message="x", retryable=False)


@pytest.mark.parametrize(
    ("policy", "attempts", "classification", "event"),
    [
        (RetryPolicy(max_attempts=3), 1, RETRYABLE, StepEvent.WAIT_FOR_RETRY),
        (RetryPolicy(max_attempts=3), 2, RETRYABLE, StepEvent.WAIT_FOR_RETRY),
        (RetryPolicy(max_attempts=3), 3, RETRYABLE, StepEvent.FAIL),
        (RetryPolicy(max_attempts=1), 1, RETRYABLE, StepEvent.FAIL),
        (RetryPolicy(max_attempts=3), 1, PERMANENT, StepEvent.FAIL),
        (RetryPolicy(retryable=False, max_attempts=3), 1, RETRYABLE, StepEvent.FAIL),
        (RetryPolicy(max_attempts=100), 99, RETRYABLE, StepEvent.WAIT_FOR_RETRY),
        (RetryPolicy(max_attempts=100), 100, RETRYABLE, StepEvent.FAIL),
    ],
)
def test_decide_after_failure(
    policy: RetryPolicy, attempts: int, classification: ErrorClassification, event: StepEvent
) -> None:
    assert decide_after_failure(policy, attempts, classification) is event


def test_timeout_is_retried_while_attempts_remain() -> None:
    assert decide_after_failure(RetryPolicy(), 1, classify_timeout(5)) is StepEvent.WAIT_FOR_RETRY
