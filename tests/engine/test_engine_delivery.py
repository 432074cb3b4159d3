"""At-least-once delivery and scheduling: duplicates are dropped, limits and wake-ups hold."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tasker_trio import RetryableError, StepContext, StepState, TaskState
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    StepMessage,
    StepResultMessage,
    worker_queue,
)
from tests.engine._support import (
    NAMESPACE,
    Recorder,
    run_task,
    running_engine,
    step,
    template,
)


async def test_duplicate_step_and_result_messages_are_dropped(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    async def ok(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        return {"n": len(recorder.calls)}

    tpl = template("dup", [step("a", "ok"), step("b", "ok", "a")])
    async with running_engine([tpl], {"ok": ok}) as engine:
        task = await run_task(engine, "dup")
        a, _ = await engine.get_steps(task.task_uuid)
        broker = engine._context.broker
        step_message = StepMessage(
            task_uuid=task.task_uuid,
            step_uuid=a.step_uuid,
            step_name="a",
            namespace=NAMESPACE,
            attempt=1,
            correlation_id=task.correlation_id,
        )
        result_message = StepResultMessage(
            task_uuid=task.task_uuid,
            step_uuid=a.step_uuid,
            attempt=1,
            success=True,
            correlation_id=task.correlation_id,
        )
        trail_before = await engine.get_transitions(a.step_uuid)
        await broker.send(worker_queue(NAMESPACE), step_message.to_json())
        await broker.send(ORCHESTRATION_STEP_RESULTS, result_message.to_json())
        await trio.sleep(60)
        stats = await engine.statistics()
        worker_depth = (await broker.queue_statistics(worker_queue(NAMESPACE))).depth
        trail_after = await engine.get_transitions(a.step_uuid)
        final = await engine.get_task(task.task_uuid)
        results = await engine.get_results(task.task_uuid)
    assert recorder.names() == ["a", "b"]  # nothing ran twice
    assert results == {"a": {"n": 1}, "b": {"n": 2}}
    assert trail_after == trail_before
    assert final.state == TaskState.COMPLETE
    assert worker_depth == 0
    assert stats.result_queue_depth == 0
    assert stats.poison_messages == {}  # a duplicate is not poison


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_worker_concurrency_is_a_limit(
    autojump_clock: trio.abc.Clock, concurrency: int
) -> None:
    running = 0
    peak = 0

    async def busy(ctx: StepContext) -> dict[str, Any]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await trio.sleep(1)
        finally:
            running -= 1
        return {}

    tpl = template("wide", [step(f"s{i}", "busy") for i in range(7)])
    async with running_engine([tpl], {"busy": busy}, worker_concurrency=concurrency) as engine:
        start = trio.current_time()
        task = await run_task(engine, "wide")
        elapsed = trio.current_time() - start
        executed = (await engine.statistics()).steps_executed
    assert task.state == TaskState.COMPLETE
    assert peak == concurrency
    assert elapsed >= -(-7 // concurrency) - 1e-9  # ceil(7 / concurrency) rounds of 1 s
    assert executed == 7


async def test_a_worker_starts_its_next_step_while_a_result_is_being_recorded(
    autojump_clock: trio.abc.Clock,
) -> None:
    # One slot, and the first result's recording held up: the slot is a handler running,
    # so the other step runs meanwhile; both results are recorded once it goes on.
    started: list[str] = []
    recorded: list[str] = []
    go_on = trio.Event()
    both_started = trio.Event()

    async def ok(ctx: StepContext) -> dict[str, Any]:
        started.append(ctx.step_name)
        if len(started) == 2:
            both_started.set()
        return {}

    tpl = template("pair", [step("a", "ok"), step("b", "ok")])
    async with running_engine([tpl], {"ok": ok}, worker_concurrency=1) as engine:
        store = engine._context.store
        record_result = store.record_result

        async def held_up(result: Any, **kwargs: Any) -> Any:
            if not recorded:
                recorded.append(result.step_uuid)
                await go_on.wait()
            return await record_result(result, **kwargs)

        store.record_result = held_up  # type: ignore[method-assign]
        submitted = await engine.submit(NAMESPACE, "pair", {})
        with trio.fail_after(5):
            await both_started.wait()
        assert len(recorded) == 1  # the first result is still held up
        go_on.set()
        task = await engine.wait_for_task(submitted.task_uuid, timeout=30)
    assert task.state == TaskState.COMPLETE
    assert sorted(started) == ["a", "b"]


async def test_retry_and_dispatch_do_not_wait_for_the_poll_interval(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    """Wake-ups come from sends and scheduled retries, not from a 60 s polling fallback."""

    async def flaky(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        if ctx.step_name == "a" and ctx.attempt == 1:
            raise RetryableError("once")
        return {}

    tpl = template("prompt", [step("a", "flaky"), step("b", "flaky", "a")])
    async with running_engine([tpl], {"flaky": flaky}, poll_interval=60) as engine:
        start = trio.current_time()
        task = await run_task(engine, "prompt")
    assert task.state == TaskState.COMPLETE
    a1, a2, b = recorder.calls
    assert a1.at - start < 0.01
    assert 0.9 <= a2.at - a1.at <= 1.1 + 0.01
    assert b.at - a2.at < 0.01


async def test_backoff_of_one_branch_does_not_delay_another(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    """Semantics §4: independent branches never wait for another branch's backoff."""

    async def work(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        if ctx.step_name == "flaky" and ctx.attempt == 1:
            raise RetryableError("later")
        await trio.sleep(ctx.get_config("seconds", 0))
        return {}

    retry = {"backoff_base_ms": 20000, "max_backoff_ms": 20000}
    tpl = template(
        "branches",
        [
            step("flaky", "work", retry=retry),
            step("slow", "work", config={"seconds": 1}),
            step("after_slow", "work", "slow", config={"seconds": 1}),
            step("last", "work", "after_slow"),
        ],
    )
    async with running_engine([tpl], {"work": work}) as engine:
        submission = await engine.submit(NAMESPACE, "branches", {})
        await trio.sleep(5)
        mid = await engine.get_task(submission.task_uuid)
        task = await engine.wait_for_task(submission.task_uuid, timeout=120)
        trail = await engine.get_transitions(submission.task_uuid)
        states = {s.name: s.state for s in await engine.get_steps(submission.task_uuid)}
    assert task.state == TaskState.COMPLETE
    assert set(states.values()) == {StepState.COMPLETE}
    assert recorder.of("last")[0].at == pytest.approx(2.0, abs=0.05)
    assert mid.state == TaskState.WAITING_FOR_RETRY  # only the backoff was left
    assert recorder.of("flaky")[1].at >= 18.0
    assert "waiting_for_retry" in [t.to_state for t in trail]


async def test_retry_is_not_held_back_by_another_branch_in_flight(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    """A retry runs when its backoff ends, even while an unrelated step is still running."""

    async def work(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        if ctx.step_name == "flaky" and ctx.attempt == 1:
            raise RetryableError("later")
        await trio.sleep(ctx.get_config("seconds", 0))
        return {}

    tpl = template(
        "held",
        [step("flaky", "work"), step("slow", "work", config={"seconds": 100}, timeout=300)],
    )
    async with running_engine([tpl], {"work": work}) as engine:
        task = await run_task(engine, "held")
    assert task.state == TaskState.COMPLETE
    first, second = recorder.of("flaky")
    assert 0.9 <= second.at - first.at <= 1.1 + 0.05  # not when "slow" ends (t = 100)


async def test_one_process_on_postgres_hands_steps_and_results_over_in_process(
    autojump_clock: trio.abc.Clock, engine_backend: str
) -> None:
    # A fan-out wider than the worker: the plan claims what fits, the queue carries the rest.
    async def ok(ctx: StepContext) -> dict[str, Any]:
        await trio.sleep(1)
        return {"step": ctx.step_name, "seen": sorted(ctx.dependency_results)}

    branches = [step(f"b{i}", "ok", "root") for i in range(6)]
    tpl = template(
        "wide", [step("root", "ok"), *branches, step("join", "ok", *(s["name"] for s in branches))]
    )
    async with running_engine([tpl], {"ok": ok}, worker_concurrency=4) as engine:
        task = await run_task(engine, "wide")
        stats = await engine.statistics()
        results = await engine.get_results(task.task_uuid)

    assert task.state == TaskState.COMPLETE
    assert results["join"] == {"step": "join", "seen": [*(f"b{i}" for i in range(6)), "root"]}
    assert stats.steps_executed == 8
    if engine_backend == "postgres":
        # root and join by the plans that enqueued them, and as many branches as the worker
        # had free slots for; the other branches were read from the queue.
        assert 2 < stats.steps_handed_over < 8
        assert stats.results_handed_over == 8
    else:  # memory has no handoffs; "postgres-queues" turns them off
        assert (stats.steps_handed_over, stats.results_handed_over) == (0, 0)
