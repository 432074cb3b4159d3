"""Retries: attempts, backoff waits (on the Trio clock), max_attempts, retry_after, timeouts.

The engine runs with ``rng=random.Random(SEED)``; its only use of the rng is the backoff
jitter, so the expected delays are computed here from the same seed, independently of the
engine's backoff code: exponential = base·2^(n-1), linear = base·n, each * (1 + U(-0.1, 0.1)).
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import trio

from tasker_trio import PermanentError, RetryableError, StepContext, StepState, TaskState
from tests.engine._support import Recorder, run_task, running_engine, step, template

SEED = 1234
SLACK = 0.05
"""How late after its backoff a retry may start (the retry timer sleeps until it is due)."""


def flaky(recorder: Recorder, failures: int, error: Exception | None = None) -> Any:
    """A handler failing (retryably by default) on its first ``failures`` attempts."""

    async def handler(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        if ctx.attempt <= failures:
            raise error or RetryableError(f"attempt {ctx.attempt} failed")
        return {"succeeded_on": ctx.attempt}

    return handler


def gaps(recorder: Recorder) -> list[float]:
    times = [c.at for c in recorder.calls]
    return [b - a for a, b in itertools.pairwise(times)]


def jittered(delays_s: list[float], seed: int = SEED) -> list[float]:
    rng = random.Random(seed)
    return [d * (1.0 + rng.uniform(-0.1, 0.1)) for d in delays_s]


async def run_flaky(
    recorder: Recorder, failures: int, retry: dict[str, Any], **kwargs: Any
) -> tuple[Any, Any]:
    tpl = template("flaky", [step("only", "flaky", retry=retry)])
    handler = flaky(recorder, failures, kwargs.pop("error", None))
    async with running_engine([tpl], {"flaky": handler}, seed=SEED) as engine:
        task = await run_task(engine, "flaky")
        (only,) = await engine.get_steps(task.task_uuid)
        return task, only


async def test_exponential_backoff_waits_between_attempts(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    task, only = await run_flaky(recorder, failures=2, retry={"max_attempts": 3})
    assert task.state == TaskState.COMPLETE
    assert (only.state, only.attempts) == (StepState.COMPLETE, 3)
    assert only.results == {"succeeded_on": 3}
    assert [c.attempt for c in recorder.calls] == [1, 2, 3]
    observed = gaps(recorder)
    # At least the backoff (1 s then 2 s, within the default ±10 % jitter)...
    assert observed[0] >= 0.9
    assert observed[1] >= 1.8
    # ...and precisely the seeded backoff, not much later.
    for seen, expected in zip(observed, jittered([1.0, 2.0]), strict=True):
        assert expected - 1e-6 <= seen <= expected + SLACK


async def test_linear_backoff(autojump_clock: trio.abc.Clock, recorder: Recorder) -> None:
    retry = {"max_attempts": 4, "backoff": "linear", "backoff_base_ms": 500}
    task, only = await run_flaky(recorder, failures=3, retry=retry)
    assert (task.state, only.attempts) == (TaskState.COMPLETE, 4)
    for seen, expected in zip(gaps(recorder), jittered([0.5, 1.0, 1.5]), strict=True):
        assert expected - 1e-6 <= seen <= expected + SLACK


async def test_no_backoff_retries_at_once(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    task, only = await run_flaky(recorder, failures=2, retry={"backoff": "none"})
    assert (task.state, only.attempts) == (TaskState.COMPLETE, 3)
    assert all(gap <= SLACK for gap in gaps(recorder))


async def test_any_other_exception_is_retried(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    task, only = await run_flaky(
        recorder, failures=1, retry={"backoff": "none"}, error=ValueError("flaky backend")
    )
    assert (task.state, only.attempts) == (TaskState.COMPLETE, 2)
    assert only.last_error is not None
    assert (only.last_error.error_type, only.last_error.retryable) == ("ValueError", True)
    assert "flaky backend" in only.last_error.message
    assert only.last_error.traceback
    assert "ValueError" in only.last_error.traceback


async def test_retries_stop_at_max_attempts(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    tpl = template("doomed", [step("only", "flaky", retry={"max_attempts": 3})])
    async with running_engine([tpl], {"flaky": flaky(recorder, failures=99)}) as engine:
        task = await run_task(engine, "doomed")
        (only,) = await engine.get_steps(task.task_uuid)
        entries = await engine.dead_letters()
        # Nothing more happens however long we wait.
        await trio.sleep(120)
        assert (await engine.get_task(task.task_uuid)).state == TaskState.BLOCKED_BY_FAILURES
    assert task.state == TaskState.BLOCKED_BY_FAILURES
    assert [c.attempt for c in recorder.calls] == [1, 2, 3]
    assert (only.state, only.attempts) == (StepState.ERROR, 3)
    assert only.last_error is not None
    assert only.last_error.error_type == "RetryableError"
    assert only.last_error.attempt == 3
    assert len(entries) == 1
    assert entries[0].task_uuid == task.task_uuid
    assert [f["step"] for f in entries[0].details["failed_steps"]] == ["only"]


async def test_step_not_retryable_runs_once(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    retry = {"retryable": False, "max_attempts": 5}
    tpl = template("once", [step("only", "flaky", retry=retry)])
    async with running_engine([tpl], {"flaky": flaky(recorder, failures=99)}) as engine:
        task = await run_task(engine, "once")
        (only,) = await engine.get_steps(task.task_uuid)
    assert task.state == TaskState.BLOCKED_BY_FAILURES
    assert (only.state, only.attempts, len(recorder.calls)) == (StepState.ERROR, 1, 1)


async def test_permanent_error_is_never_retried(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    task, only = await run_flaky(
        recorder, failures=1, retry={"max_attempts": 5}, error=PermanentError("bad input")
    )
    assert task.state == TaskState.BLOCKED_BY_FAILURES
    assert (only.state, only.attempts, len(recorder.calls)) == (StepState.ERROR, 1, 1)
    assert only.last_error is not None
    assert (only.last_error.error_type, only.last_error.retryable) == ("PermanentError", False)


@pytest.mark.parametrize(
    ("retry_after", "max_backoff_ms", "expected"),
    [(5, 30000, 5.0), (60, 3000, 3.0)],
    ids=["honoured", "capped"],
)
async def test_retry_after_is_honoured_and_capped(
    autojump_clock: trio.abc.Clock,
    recorder: Recorder,
    retry_after: float,
    max_backoff_ms: int,
    expected: float,
) -> None:
    retry = {"max_attempts": 2, "max_backoff_ms": max_backoff_ms}
    task, only = await run_flaky(
        recorder, failures=1, retry=retry, error=RetryableError("busy", retry_after=retry_after)
    )
    assert (task.state, only.attempts) == (TaskState.COMPLETE, 2)
    (gap,) = gaps(recorder)
    assert expected - 1e-6 <= gap <= expected + SLACK


async def test_timeout_is_a_retryable_failure(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    ended: list[tuple[int, float]] = []

    async def slow_first(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        try:
            if ctx.attempt == 1:
                await trio.sleep(100)
            return {"attempt": ctx.attempt}
        finally:
            ended.append((ctx.attempt, trio.current_time()))

    retry = {"max_attempts": 2, "backoff": "none"}
    tpl = template("slow", [step("only", "slow_first", retry=retry, timeout=2)])
    async with running_engine([tpl], {"slow_first": slow_first}) as engine:
        task = await run_task(engine, "slow")
        (only,) = await engine.get_steps(task.task_uuid)
        trail = await engine.get_transitions(only.step_uuid)
    assert (task.state, only.attempts, only.results) == (TaskState.COMPLETE, 2, {"attempt": 2})
    start = recorder.calls[0].at
    assert ended[0][0] == 1
    assert ended[0][1] - start == pytest.approx(2.0)  # cancelled at its timeout
    failures = [t for t in trail if t.event == "submit_failure"]
    assert len(failures) == 1
    error = failures[0].metadata["error"]
    assert (error["error_type"], error["retryable"], error["attempt"]) == ("Timeout", True, 1)
    assert [t.event for t in trail].count("wait_for_retry") == 1
