"""Operator actions on a blocked task: reset, resolve, complete, give up, resolve; dead letters."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tasker_trio import (
    DeadLetterNotFound,
    Engine,
    InvalidTransition,
    PermanentError,
    StepContext,
    StepNotFound,
    StepState,
    TaskerError,
    TaskState,
)
from tests.engine._support import NAMESPACE, Recorder, run_task, running_engine, step, template


def pipeline(recorder: Recorder, broken: dict[str, bool]) -> tuple[Any, dict[str, Any]]:
    """fetch -> charge (fails permanently while ``broken["charge"]``) -> ship; audit alone."""

    async def work(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        if broken.get(ctx.step_name):
            raise PermanentError(f"{ctx.step_name} is broken")
        return {"by": ctx.step_name, "saw": sorted(ctx.dependency_results)}

    tpl = template(
        "pipeline",
        [
            step("fetch", "work"),
            step("charge", "work", "fetch"),
            step("ship", "work", "charge"),
            step("audit", "work"),
        ],
    )
    return tpl, {"work": work}


async def blocked_task(engine: Engine) -> Any:
    task = await run_task(engine, "pipeline")
    assert task.state == TaskState.BLOCKED_BY_FAILURES
    return task


async def test_reset_of_the_failed_step_resumes_only_its_part(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    broken = {"charge": True}
    tpl, handlers = pipeline(recorder, broken)
    async with running_engine([tpl], handlers) as engine:
        task = await blocked_task(engine)
        assert sorted(recorder.names()) == ["audit", "charge", "fetch"]
        broken["charge"] = False  # the operator fixed the cause
        await engine.reset_step(task.task_uuid, "charge", note="card updated")
        task = await engine.wait_for_task(task.task_uuid, timeout=60)
        steps = {s.name: s for s in await engine.get_steps(task.task_uuid)}
        trail = await engine.get_transitions(task.task_uuid)
        charge_trail = await engine.get_transitions(steps["charge"].step_uuid)
    assert task.state == TaskState.COMPLETE
    assert all(s.state == StepState.COMPLETE for s in steps.values())
    # Only the failed part ran again: charge (from attempt 1) and its dependant.
    assert sorted(recorder.names()) == ["audit", "charge", "charge", "fetch", "ship"]
    assert [c.attempt for c in recorder.of("charge")] == [1, 1]
    assert steps["charge"].attempts == 1
    assert recorder.of("ship")[0].ctx.dependency_results["charge"] == {
        "by": "charge",
        "saw": ["fetch"],
    }
    assert "steps_reset" in [t.event for t in trail]
    reset = [t for t in charge_trail if t.event == "reset"]
    assert len(reset) == 1
    assert reset[0].metadata.get("note") == "card updated"


async def test_resolve_step_unblocks_dependants(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    tpl, handlers = pipeline(recorder, {"charge": True})
    async with running_engine([tpl], handlers) as engine:
        task = await blocked_task(engine)
        await engine.resolve_step(task.task_uuid, "charge", note="charged by phone")
        task = await engine.wait_for_task(task.task_uuid, timeout=60)
        states = {s.name: s.state for s in await engine.get_steps(task.task_uuid)}
    assert task.state == TaskState.COMPLETE
    assert states["charge"] == StepState.RESOLVED_MANUALLY
    assert states["ship"] == StepState.COMPLETE
    ship = recorder.of("ship")[0].ctx
    assert set(ship.dependency_results) == {"fetch", "charge"}


async def test_complete_step_gives_dependants_the_operators_result(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    tpl, handlers = pipeline(recorder, {"charge": True})
    async with running_engine([tpl], handlers) as engine:
        task = await blocked_task(engine)
        await engine.complete_step(task.task_uuid, "charge", {"receipt": "R-17"})
        task = await engine.wait_for_task(task.task_uuid, timeout=60)
        steps = {s.name: s for s in await engine.get_steps(task.task_uuid)}
    assert task.state == TaskState.COMPLETE
    assert (steps["charge"].state, steps["charge"].results) == (
        StepState.COMPLETE,
        {"receipt": "R-17"},
    )
    assert recorder.of("ship")[0].ctx.get_dependency_result("charge") == {"receipt": "R-17"}
    assert len(recorder.of("charge")) == 1  # the handler did not run again


@pytest.mark.parametrize(
    ("action", "final"),
    [("give_up_task", TaskState.ERROR), ("resolve_task", TaskState.RESOLVED_MANUALLY)],
)
async def test_finishing_a_blocked_task(
    autojump_clock: trio.abc.Clock, recorder: Recorder, action: str, final: TaskState
) -> None:
    tpl, handlers = pipeline(recorder, {"charge": True})
    async with running_engine([tpl], handlers) as engine:
        task = await blocked_task(engine)
        returned = await getattr(engine, action)(task.task_uuid, note="operator")
        task = await engine.wait_for_task(task.task_uuid, timeout=1)
        trail = await engine.get_transitions(task.task_uuid)
        await trio.sleep(60)
        calls_later = len(recorder.calls)
        assert (await engine.get_task(task.task_uuid)).state == final
    assert returned.state == task.state == final
    assert task.completed_at is not None
    assert trail[-1].from_state == "blocked_by_failures"
    assert trail[-1].to_state == final.value
    assert calls_later == 3  # nothing ran afterwards


async def test_resolve_dead_letter_marks_the_entry_resolved(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    tpl, handlers = pipeline(recorder, {"charge": True})
    async with running_engine([tpl], handlers) as engine:
        task = await blocked_task(engine)
        (entry,) = await engine.dead_letters()
        assert entry.task_uuid == task.task_uuid
        assert entry.status == "pending"
        resolved = await engine.resolve_dead_letter(entry.entry_id, resolution="refunded")
        assert await engine.dead_letters() == []
        everything = await engine.dead_letters(include_resolved=True)
    assert resolved.entry_id == entry.entry_id
    assert resolved.status == "resolved"
    assert resolved.resolution == "refunded"
    assert resolved.resolved_at is not None
    assert everything == [resolved]


async def test_unknown_dead_letter_and_step_are_errors(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    tpl, handlers = pipeline(recorder, {"charge": True})
    async with running_engine([tpl], handlers) as engine:
        task = await blocked_task(engine)
        with pytest.raises(DeadLetterNotFound):
            await engine.resolve_dead_letter("dlq-nope", resolution="x")
        with pytest.raises(StepNotFound):
            await engine.reset_step(task.task_uuid, "no_such_step")


async def test_reset_of_a_step_that_did_not_fail_is_refused(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    tpl, handlers = pipeline(recorder, {"charge": True})
    async with running_engine([tpl], handlers) as engine:
        task = await blocked_task(engine)
        with pytest.raises(InvalidTransition):
            await engine.reset_step(task.task_uuid, "fetch")
        after = await engine.get_task(task.task_uuid)
        fetch = await engine.get_step(task.task_uuid, "fetch")
    assert after.state == TaskState.BLOCKED_BY_FAILURES
    assert (fetch.state, fetch.attempts) == (StepState.COMPLETE, 1)


async def test_complete_step_while_it_runs_cancels_the_handler(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    started = trio.Event()
    outcome: list[str] = []

    async def work(ctx: StepContext) -> dict[str, Any]:
        recorder.record(ctx)
        if ctx.step_name == "stuck":
            started.set()
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                outcome.append("cancelled")
                raise
        return {"by": ctx.step_name}

    tpl = template("stuck", [step("stuck", "work", timeout=3600), step("next", "work", "stuck")])
    async with running_engine([tpl], {"work": work}) as engine:
        submission = await engine.submit(NAMESPACE, "stuck", {})
        await started.wait()
        await engine.complete_step(submission.task_uuid, "stuck", {"by": "operator"})
        task = await engine.wait_for_task(submission.task_uuid, timeout=60)
        await trio.sleep(60)
        stuck = await engine.get_step(submission.task_uuid, "stuck")
    assert task.state == TaskState.COMPLETE
    assert outcome == ["cancelled"]
    assert (stuck.state, stuck.results) == (StepState.COMPLETE, {"by": "operator"})
    assert recorder.of("next")[0].ctx.get_dependency_result("stuck") == {"by": "operator"}
    assert recorder.names() == ["stuck", "next"]


async def test_reset_in_a_task_that_was_given_up_is_refused(
    autojump_clock: trio.abc.Clock, recorder: Recorder
) -> None:
    """A terminal task never moves again, so resetting one of its steps must not be accepted
    (it would leave an ``error`` task with a ``pending`` step that never runs)."""
    tpl, handlers = pipeline(recorder, {"charge": True})
    async with running_engine([tpl], handlers) as engine:
        task = await blocked_task(engine)
        await engine.give_up_task(task.task_uuid)
        with pytest.raises(TaskerError):
            await engine.reset_step(task.task_uuid, "charge")
        charge = await engine.get_step(task.task_uuid, "charge")
        final = await engine.get_task(task.task_uuid)
    assert final.state == TaskState.ERROR
    assert charge.state == StepState.ERROR
