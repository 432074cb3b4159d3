"""Every shape of workflow runs to completion, each step computed from its parents' results."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
import trio

from tasker_trio import StepContext, StepState, TaskState
from tests.engine._support import (
    NAMESPACE,
    Recorder,
    run_task,
    running_engine,
    step,
    template,
)


def compute_handler(recorder: Recorder) -> Any:
    """``value`` from the parents named in ``of`` (or the input ``n``), by ``op``."""

    async def compute(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        await trio.sleep(0.1)  # steps overlap in time, as real work would
        names = ctx.get_config("of", [])
        values = [ctx.get_dependency_result(n)["value"] for n in names] or [ctx.get_input("n")]
        op = ctx.get_config("op", "sum")
        if op == "square":
            value = values[0] ** 2
        elif op == "times":
            value = values[0] * ctx.get_config("k")
        elif op == "product":
            value = math.prod(values)
        else:
            value = sum(values)
        return {"value": value}

    return compute


def calc(name: str, op: str, *parents: str, **config: Any) -> dict[str, Any]:
    return step(name, "compute", *parents, config={"op": op, "of": list(parents), **config})


def assert_parents_finished_first(recorder: Recorder, steps: list[dict[str, Any]]) -> None:
    """Every step ran after each of its parents, and saw all of its completed ancestors."""
    parents = {s["name"]: s.get("dependencies", []) for s in steps}

    def ancestors(name: str) -> set[str]:
        found: set[str] = set()
        for parent in parents[name]:
            found |= {parent, *ancestors(parent)}
        return found

    order = recorder.names()
    for call in recorder.calls:
        for parent in parents[call.step]:
            assert order.index(parent) < order.index(call.step)
        assert set(call.ctx.dependency_results) == ancestors(call.step), call.step


async def run_shape(recorder: Recorder, steps: list[dict[str, Any]], n: int) -> dict[str, Any]:
    tpl = template("shape", steps)
    async with running_engine([tpl], {"compute": compute_handler(recorder)}) as engine:
        task = await run_task(engine, "shape", {"n": n})
        assert task.state == TaskState.COMPLETE
        assert task.completed_at is not None
        for s in await engine.get_steps(task.task_uuid):
            assert (s.state, s.attempts) == (StepState.COMPLETE, 1), s.name
        results = await engine.get_results(task.task_uuid)
    assert sorted(recorder.names()) == sorted(s["name"] for s in steps)  # each ran once
    assert_parents_finished_first(recorder, steps)
    return {name: r["value"] for name, r in results.items() if r is not None}


async def test_linear_chain_squares_through_four_steps(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    steps = [
        calc("s1", "square"),
        calc("s2", "square", "s1"),
        calc("s3", "square", "s2"),
        calc("s4", "square", "s3"),
    ]
    values = await run_shape(recorder, steps, n=2)
    assert values == {"s1": 4, "s2": 16, "s3": 256, "s4": 65536}
    # The chain runs one step after the other.
    times = [c.at for c in recorder.calls]
    assert times == sorted(times)
    assert times[-1] - times[0] >= 0.3


async def test_diamond_joins_both_branches(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    steps = [
        calc("top", "square"),
        calc("left", "square", "top"),
        calc("right", "times", "top", k=2),
        calc("bottom", "sum", "left", "right"),
    ]
    values = await run_shape(recorder, steps, n=3)
    assert values == {"top": 9, "left": 81, "right": 18, "bottom": 99}
    # The two branches run side by side.
    assert recorder.of("left")[0].at == recorder.of("right")[0].at


async def test_fan_out_fan_in(autojump_clock: trio.abc.Clock, recorder: Recorder) -> None:
    width = 12
    steps = [
        calc("root", "sum"),
        *(calc(f"branch_{k}", "times", "root", k=k) for k in range(1, width + 1)),
        calc("join", "sum", *(f"branch_{k}" for k in range(1, width + 1))),
    ]
    values = await run_shape(recorder, steps, n=5)
    assert values["join"] == 5 * sum(range(1, width + 1))
    # The branches run side by side, at most worker_concurrency (8) at a time.
    starts = sorted(c.at for c in recorder.calls if c.step.startswith("branch_"))
    assert starts.count(starts[0]) == 8
    assert starts[-1] - starts[0] < 0.2 + 1e-9
    assert recorder.of("join")[0].ctx.dependency_results.keys() == {
        "root",
        *(f"branch_{k}" for k in range(1, width + 1)),
    }


async def test_seven_step_dag(autojump_clock: trio.abc.Clock, recorder: Recorder) -> None:
    steps = [
        calc("init", "square"),
        calc("left", "square", "init"),
        calc("right", "times", "init", k=3),
        calc("validate", "product", "left", "right"),
        calc("transform", "times", "left", k=2),
        calc("analyze", "sum", "right"),
        calc("finalize", "sum", "validate", "transform", "analyze"),
    ]
    values = await run_shape(recorder, steps, n=2)
    init = 4
    left, right = init**2, init * 3
    validate, transform, analyze = left * right, left * 2, right
    assert values == {
        "init": init,
        "left": left,
        "right": right,
        "validate": validate,
        "transform": transform,
        "analyze": analyze,
        "finalize": validate + transform + analyze,
    }
    # An ancestor that is not a direct parent is visible too; a sibling branch is not.
    transform_deps = recorder.of("transform")[0].ctx.dependency_results
    assert transform_deps == {"init": {"value": init}, "left": {"value": left}}


async def test_step_context_carries_what_the_handler_needs(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    async def look(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        return {"seen": ctx.step_name}

    tpl = template(
        "ctx",
        [
            step("first", "look", config={"greeting": "hi", "n": 3}, retry={"max_attempts": 4}),
            step("second", "look", "first", timeout=12),
        ],
    )
    context = {"customer": {"id": 42}, "items": [1, 2]}
    async with running_engine([tpl], {"look": look}) as engine:
        submission = await engine.submit(NAMESPACE, "ctx", context)
        task = await engine.wait_for_task(submission.task_uuid, timeout=60)
        steps = {s.name: s for s in await engine.get_steps(task.task_uuid)}
    assert task.state == TaskState.COMPLETE
    first, second = recorder.of("first")[0].ctx, recorder.of("second")[0].ctx
    assert first.task_uuid == second.task_uuid == task.task_uuid
    assert first.step_uuid == steps["first"].step_uuid
    assert first.correlation_id == task.correlation_id
    assert first.namespace == NAMESPACE
    assert dict(first.input_data) == context
    assert first.get_input("customer") == {"id": 42}
    assert first.get_input("missing", "dflt") == "dflt"
    assert dict(first.step_config) == {"greeting": "hi", "n": 3}
    assert first.get_config("greeting") == "hi"
    assert dict(second.step_config) == {}
    assert (first.attempt, first.max_attempts, first.is_retry) == (1, 4, False)
    assert not first.is_last_attempt
    assert second.timeout_seconds == 12
    assert dict(first.dependency_results) == {}
    assert second.get_dependency_result("first") == {"seen": "first"}
    with pytest.raises(KeyError, match="first"):
        first.get_dependency_result("second")


async def test_sync_handlers_run_in_a_thread_and_async_ones_in_trio() -> None:
    """Real clock: a thread's work would look idle to the autojump clock."""
    main = threading.get_ident()
    seen: dict[str, Any] = {}

    def sync_step(ctx: StepContext) -> dict[str, Any]:
        seen["sync_thread"] = threading.get_ident()
        return {"value": ctx.get_input("n") + 1}

    async def async_step(ctx: StepContext) -> dict[str, Any]:
        seen["async_thread"] = threading.get_ident()
        seen["trio_task"] = trio.lowlevel.current_task().name
        await trio.lowlevel.checkpoint()
        return {"value": ctx.get_dependency_result("sync")["value"] * 10}

    tpl = template("mixed", [step("sync", "sync_step"), step("async", "async_step", "sync")])
    handlers = {"sync_step": sync_step, "async_step": async_step}
    async with running_engine([tpl], handlers) as engine:
        with trio.fail_after(10):
            task = await run_task(engine, "mixed", {"n": 4})
        results = await engine.get_results(task.task_uuid)
    assert task.state == TaskState.COMPLETE
    assert results == {"sync": {"value": 5}, "async": {"value": 50}}
    assert seen["sync_thread"] != main
    assert seen["async_thread"] == main
    assert seen["trio_task"]
