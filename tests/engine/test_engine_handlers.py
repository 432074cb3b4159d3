"""Handler resolution (import paths, classes, registered names) and sync handlers' limits."""

from __future__ import annotations

import threading
import time
from typing import Any

import trio

from tasker_trio import StepContext, StepState, TaskState
from tests.engine import _support
from tests.engine._support import NAMESPACE, run_task, running_engine, step, template


async def test_every_kind_of_handler_reference_resolves(autojump_clock: trio.abc.Clock) -> None:
    _support.ClassHandler.instances = 0
    tpl = template(
        "refs",
        [
            step("by_path", "tests.engine._support:import_path_handler"),
            step("by_class_1", "tests.engine._support.ClassHandler"),
            step("by_class_2", "tests.engine._support.ClassHandler", "by_class_1"),
            step("by_registry", "tests_engine_registered"),
        ],
    )
    async with running_engine([tpl], {}) as engine:
        task = await run_task(engine, "refs", {"n": 3})
        results = await engine.get_results(task.task_uuid)
    assert task.state == TaskState.COMPLETE
    assert results == {
        "by_path": {"how": "function", "n": 3},
        "by_class_1": {"how": "class", "calls": 1},
        "by_class_2": {"how": "class", "calls": 2},
        "by_registry": {"how": "registered"},
    }
    assert _support.ClassHandler.instances == 1


async def test_handlers_given_to_the_engine_win_over_the_registry(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def explicit(ctx: StepContext) -> dict[str, Any]:
        return {"from": "engine"}

    tpl = template("shadow", [step("only", "tests_engine_shadowed")])
    async with running_engine([tpl], {"tests_engine_shadowed": explicit}) as engine:
        task = await run_task(engine, "shadow")
        results = await engine.get_results(task.task_uuid)
    assert results == {"only": {"from": "engine"}}


async def test_sync_handler_past_its_timeout_is_abandoned_and_retried() -> None:
    """Real clock. Attempt 1 blocks its thread until released; the step moves on without it."""
    release = threading.Event()
    attempts: list[int] = []

    def blocking(ctx: StepContext) -> dict[str, Any]:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            release.wait(10)
        return {"attempt": ctx.attempt}

    retry = {"max_attempts": 2, "backoff": "none"}
    tpl = template("blocking", [step("only", "blocking", retry=retry, timeout=0.2)])
    try:
        async with running_engine([tpl], {"blocking": blocking}) as engine:
            started = time.monotonic()
            with trio.fail_after(5):
                task = await run_task(engine, "blocking")
            elapsed = time.monotonic() - started
            (only,) = await engine.get_steps(task.task_uuid)
            trail = await engine.get_transitions(only.step_uuid)
    finally:
        release.set()
    assert task.state == TaskState.COMPLETE
    assert (only.state, only.attempts, only.results) == (StepState.COMPLETE, 2, {"attempt": 2})
    assert attempts == [1, 2]
    assert elapsed < 2
    (failure,) = [t for t in trail if t.event == "submit_failure"]
    assert failure.metadata["error"]["error_type"] == "Timeout"


async def test_cancel_abandons_a_running_sync_handler() -> None:
    """Real clock: cancelling a task does not wait for a sync handler's thread."""
    entered = threading.Event()
    release = threading.Event()

    def blocking(ctx: StepContext) -> dict[str, Any]:
        entered.set()
        release.wait(10)
        return {}

    tpl = template("blocking", [step("only", "blocking", timeout=60)])
    try:
        async with running_engine([tpl], {"blocking": blocking}) as engine:
            submission = await engine.submit(NAMESPACE, "blocking", {})
            with trio.fail_after(5):
                assert await trio.to_thread.run_sync(entered.wait, 5)
                await engine.cancel_task(submission.task_uuid)
                task = await engine.wait_for_task(submission.task_uuid, timeout=5)
                (only,) = await engine.get_steps(submission.task_uuid)
    finally:
        release.set()
    assert task.state == TaskState.CANCELLED
    assert only.state == StepState.CANCELLED


async def test_a_handler_mutating_its_context_does_not_change_the_stored_task(
    autojump_clock: trio.abc.Clock,
) -> None:
    """What a handler does to its StepContext's data stays in that handler: the stored
    task context, step configuration and parent results are unchanged (as with a database)."""
    seen: dict[str, Any] = {}

    async def vandal(ctx: StepContext) -> dict[str, Any]:
        ctx.input_data["n"] = 999  # type: ignore[index]
        ctx.input_data["nested"]["k"] = "changed"
        ctx.step_config["c"] = "changed"  # type: ignore[index]
        return {"deep": {"v": 1}}

    async def child(ctx: StepContext) -> dict[str, Any]:
        seen["input"] = dict(ctx.input_data)
        ctx.dependency_results["vandal"]["deep"]["v"] = 2
        return {}

    tpl = template(
        "mut", [step("vandal", "vandal", config={"c": 1}), step("child", "child", "vandal")]
    )
    context = {"n": 1, "nested": {"k": "orig"}}
    async with running_engine([tpl], {"vandal": vandal, "child": child}) as engine:
        task = await run_task(engine, "mut", context)
        stored = await engine.get_task(task.task_uuid)
        results = await engine.get_results(task.task_uuid)
        vandal_step = await engine.get_step(task.task_uuid, "vandal")
    assert seen["input"] == {"n": 1, "nested": {"k": "orig"}}
    assert stored.context == {"n": 1, "nested": {"k": "orig"}}
    assert vandal_step.step_config == {"c": 1}
    assert results["vandal"] == {"deep": {"v": 1}}
