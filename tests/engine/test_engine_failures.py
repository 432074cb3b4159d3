"""Permanent failures: the task blocks with one dead letter; other branches still finish."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tasker_trio import PermanentError, StepContext, StepState, TaskState
from tests.engine._support import Recorder, run_task, running_engine, step, template


async def test_permanent_error_blocks_only_its_descendants(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    """Semantics §4 [better]: the independent branch runs to completion after the failure."""

    async def work(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        if ctx.step_name == "bad":
            raise PermanentError("the card was declined")
        await trio.sleep(ctx.get_config("seconds", 0))
        return {"done": ctx.step_name}

    tpl = template(
        "branches",
        [
            step("start", "work"),
            step("bad", "work", "start", retry={"max_attempts": 3}),
            step("after_bad", "work", "bad"),
            step("slow", "work", "start", config={"seconds": 5}),
            step("after_slow", "work", "slow", config={"seconds": 5}),
        ],
    )
    async with running_engine([tpl], {"work": work}) as engine:
        task = await run_task(engine, "branches")
        steps = {s.name: s for s in await engine.get_steps(task.task_uuid)}
        entries = await engine.dead_letters()
        task_trail = await engine.get_transitions(task.task_uuid)

    assert task.state == TaskState.BLOCKED_BY_FAILURES  # wait_for_task returned on blocked
    assert {n: s.state for n, s in steps.items()} == {
        "start": StepState.COMPLETE,
        "bad": StepState.ERROR,
        "after_bad": StepState.PENDING,
        "slow": StepState.COMPLETE,
        "after_slow": StepState.COMPLETE,
    }
    assert steps["bad"].attempts == 1  # a permanent error is not retried
    assert "after_bad" not in recorder.names()
    # The independent branch finished well after the failure, and only then did the task block.
    bad_at = recorder.of("bad")[0].at
    assert recorder.of("after_slow")[0].at >= bad_at + 5
    blocked = [t for t in task_trail if t.to_state == "blocked_by_failures"]
    assert len(blocked) == 1
    assert blocked[0].at >= bad_at + 10
    # Exactly one dead-letter entry naming the failed step and its error.
    assert len(entries) == 1
    (entry,) = entries
    assert entry.task_uuid == task.task_uuid
    assert entry.reason
    (failed,) = entry.details["failed_steps"]
    assert failed["step"] == "bad"
    assert failed["error"]["error_type"] == "PermanentError"
    assert "the card was declined" in failed["error"]["message"]
    assert entry.details["blocked_steps"] == ["after_bad"]
    assert {s["name"] for s in entry.snapshot["steps"]} == set(steps)


@pytest.mark.parametrize(
    ("value", "mentions"),
    [
        ({"x": object()}, "object"),
        ({"ratio": float("nan")}, "float"),
        ([1, 2, 3], "dict"),
        ("done", "dict"),
    ],
    ids=["object", "nan", "list", "str"],
)
async def test_unserializable_result_is_a_permanent_failure(
    autojump_clock: trio.abc.Clock, value: Any, mentions: str
) -> None:
    calls: list[int] = []

    async def returns_junk(ctx: StepContext) -> Any:
        calls.append(ctx.attempt)
        return value

    tpl = template("junk", [step("only", "returns_junk", retry={"max_attempts": 3})])
    async with running_engine([tpl], {"returns_junk": returns_junk}) as engine:
        task = await run_task(engine, "junk")
        (only,) = await engine.get_steps(task.task_uuid)
        entries = await engine.dead_letters()
    assert task.state == TaskState.BLOCKED_BY_FAILURES
    assert calls == [1]  # not retried
    assert (only.state, only.results) == (StepState.ERROR, None)
    assert only.last_error is not None
    assert only.last_error.error_type == "UnserializableResult"
    assert only.last_error.retryable is False
    assert mentions.lower() in only.last_error.message.lower()
    assert len(entries) == 1


async def test_none_result_means_empty_dict(autojump_clock: trio.abc.Clock) -> None:
    async def nothing(ctx: StepContext) -> None:
        return None

    tpl = template("nothing", [step("only", "nothing")])
    async with running_engine([tpl], {"nothing": nothing}) as engine:
        task = await run_task(engine, "nothing")
        results = await engine.get_results(task.task_uuid)
    assert (task.state, results) == (TaskState.COMPLETE, {"only": {}})


async def test_unknown_handler_is_a_permanent_failure_naming_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    tpl = template(
        "unresolved",
        [step("only", "no_such_handler_anywhere", retry={"max_attempts": 3})],
    )
    async with running_engine([tpl], {}) as engine:
        task = await run_task(engine, "unresolved")
        (only,) = await engine.get_steps(task.task_uuid)
        entries = await engine.dead_letters()
    assert task.state == TaskState.BLOCKED_BY_FAILURES
    assert (only.state, only.attempts) == (StepState.ERROR, 1)
    assert only.last_error is not None
    assert only.last_error.error_type == "HandlerResolutionError"
    assert only.last_error.retryable is False
    assert "no_such_handler_anywhere" in only.last_error.message
    assert len(entries) == 1


async def test_unimportable_handler_path_names_the_module(
    autojump_clock: trio.abc.Clock,
) -> None:
    tpl = template("unimportable", [step("only", "no_such_pkg.handlers:run")])
    async with running_engine([tpl], {}) as engine:
        task = await run_task(engine, "unimportable")
        (only,) = await engine.get_steps(task.task_uuid)
    assert task.state == TaskState.BLOCKED_BY_FAILURES
    assert only.last_error is not None
    assert "no_such_pkg" in only.last_error.message
