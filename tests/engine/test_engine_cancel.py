"""Cancelling a task mid-flight, and shutting the engine down with work in flight."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tasker_trio import RetryableError, StepContext, StepState, TaskState, WaitTimeout
from tasker_trio.models import worker_queue
from tests.engine._support import NAMESPACE, running_engine, step, template

IN_FLIGHT = {StepState.ENQUEUED, StepState.IN_PROGRESS}


def hanging(started: dict[str, trio.Event], finished: dict[str, str]) -> Any:
    """A handler that hangs forever and reports how it ended."""

    async def hang(ctx: StepContext) -> dict[str, Any]:
        started.setdefault(ctx.step_name, trio.Event()).set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            finished[ctx.step_name] = "cancelled"
            raise
        finally:
            finished.setdefault(ctx.step_name, "ended otherwise")
        return {}

    return hang


async def test_cancel_mid_flight_cancels_running_handlers(
    autojump_clock: trio.abc.Clock,
) -> None:
    started = {"left": trio.Event(), "right": trio.Event()}
    finished: dict[str, str] = {}
    tpl = template(
        "hangs",
        [
            step("left", "hang", timeout=3600),
            step("right", "hang", timeout=3600),
            step("after", "hang", "left", "right"),
        ],
    )
    async with running_engine([tpl], {"hang": hanging(started, finished)}) as engine:
        submission = await engine.submit(NAMESPACE, "hangs", {})
        await started["left"].wait()
        await started["right"].wait()
        cancelled_at = trio.current_time()
        task = await engine.cancel_task(submission.task_uuid, reason="customer asked")
        assert task.state == TaskState.CANCELLED
        settled = await engine.wait_for_task(submission.task_uuid, timeout=1)
        await trio.sleep(5)  # let the cancelled handlers unwind and record
        steps = await engine.get_steps(submission.task_uuid)
        trail = await engine.get_transitions(submission.task_uuid)
        queue = await engine._context.broker.queue_statistics(worker_queue(NAMESPACE))
        results_queue_left = (await engine.statistics()).result_queue_depth
    assert settled.state == TaskState.CANCELLED
    assert finished == {"left": "cancelled", "right": "cancelled"}
    assert trio.current_time() >= cancelled_at
    assert {s.name: s.state for s in steps} == {
        "left": StepState.CANCELLED,
        "right": StepState.CANCELLED,
        "after": StepState.CANCELLED,
    }
    assert not [s for s in steps if s.state in IN_FLIGHT]
    assert trail[-1].event == "cancel"
    assert trail[-1].metadata.get("reason") == "customer asked"
    assert queue.depth == 0  # the cancelled steps' messages are gone
    assert results_queue_left == 0


async def test_cancelled_task_stays_cancelled(autojump_clock: trio.abc.Clock) -> None:
    started = {"only": trio.Event()}
    finished: dict[str, str] = {}
    tpl = template("one", [step("only", "hang", timeout=3600)])
    async with running_engine([tpl], {"hang": hanging(started, finished)}) as engine:
        submission = await engine.submit(NAMESPACE, "one", {})
        await started["only"].wait()
        await engine.cancel_task(submission.task_uuid)
        await trio.sleep(120)  # well past every visibility timeout
        task = await engine.get_task(submission.task_uuid)
        (only,) = await engine.get_steps(submission.task_uuid)
        again = await engine.cancel_task(submission.task_uuid)  # idempotent
    assert task.state == again.state == TaskState.CANCELLED
    assert (only.state, only.attempts) == (StepState.CANCELLED, 1)


async def test_shutdown_with_work_in_flight_keeps_the_step_message(
    autojump_clock: trio.abc.Clock,
) -> None:
    started = {"only": trio.Event()}
    finished: dict[str, str] = {}
    tpl = template("one", [step("only", "hang", timeout=3600)])
    async with running_engine([tpl], {"hang": hanging(started, finished)}) as engine:
        submission = await engine.submit(NAMESPACE, "one", {})
        await started["only"].wait()
        store, broker = engine._context.store, engine._context.broker
    # Leaving the block did not raise; the handler was cancelled by the shutdown.
    assert finished == {"only": "cancelled"}
    task = await store.get_task(submission.task_uuid)
    (only,) = (await store.get_view(submission.task_uuid)).steps
    assert task.state == TaskState.STEPS_IN_PROCESS
    assert (only.state, only.attempts) == (StepState.IN_PROGRESS, 1)
    # Nothing was recorded for the interrupted attempt, and its message is still queued,
    # to be reclaimed after its visibility timeout.
    assert await store.results_of(only.step_uuid) == []
    queue = await broker.queue_statistics(worker_queue(NAMESPACE))
    assert queue.depth == 1


async def test_cancel_while_waiting_for_a_retry(autojump_clock: trio.abc.Clock) -> None:
    calls: list[float] = []

    async def fails(ctx: StepContext) -> dict[str, Any]:
        calls.append(trio.current_time())
        raise RetryableError("later")

    tpl = template("retrying", [step("only", "fails", retry={"backoff_base_ms": 10000})])
    async with running_engine([tpl], {"fails": fails}) as engine:
        submission = await engine.submit(NAMESPACE, "retrying", {})
        await trio.sleep(1)
        assert (await engine.get_task(submission.task_uuid)).state == TaskState.WAITING_FOR_RETRY
        await engine.cancel_task(submission.task_uuid)
        await trio.sleep(120)
        task = await engine.get_task(submission.task_uuid)
        (only,) = await engine.get_steps(submission.task_uuid)
    assert len(calls) == 1  # the retry never ran
    assert task.state == TaskState.CANCELLED
    assert only.state == StepState.CANCELLED


async def test_wait_for_task_times_out_on_a_running_task(autojump_clock: trio.abc.Clock) -> None:
    started = {"only": trio.Event()}
    tpl = template("one", [step("only", "hang", timeout=3600)])
    async with running_engine([tpl], {"hang": hanging(started, {})}) as engine:
        submission = await engine.submit(NAMESPACE, "one", {})
        before = trio.current_time()
        with pytest.raises(WaitTimeout):
            await engine.wait_for_task(submission.task_uuid, timeout=5)
        waited = trio.current_time() - before
        await engine.cancel_task(submission.task_uuid)
    assert waited == pytest.approx(5, abs=1.01)
