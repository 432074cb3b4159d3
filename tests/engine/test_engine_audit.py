"""The audit trail: every task and step history is numbered, has one head, and replays legally."""

from __future__ import annotations

from typing import Any

import trio

from tasker_trio import Engine, PermanentError, RetryableError, StepContext, TaskState
from tests.engine._support import NAMESPACE, check_trail, running_engine, step, template


async def check_task_audit(engine: Engine, task_uuid: str) -> int:
    """Check the task's and its steps' trails; return how many records there were."""
    task = await engine.get_task(task_uuid)
    trail = await engine.get_transitions(task_uuid)
    check_trail(trail, kind="task")
    assert trail[-1].to_state == task.state.value
    assert all(t.entity_kind == "task" and t.entity_id == task_uuid for t in trail)
    assert [t.at for t in trail] == sorted(t.at for t in trail)
    count = len(trail)
    for s in await engine.get_steps(task_uuid):
        steps_trail = await engine.get_transitions(s.step_uuid)
        if s.state == "pending" and not steps_trail:
            continue  # never moved
        check_trail(steps_trail, kind="step")
        assert steps_trail[-1].to_state == s.state.value
        assert all(t.entity_kind == "step" for t in steps_trail)
        count += len(steps_trail)
    return count


async def test_every_trail_replays_legally(autojump_clock: trio.abc.Clock) -> None:
    broken = {"fix": True}
    started = trio.Event()

    async def work(ctx: StepContext) -> dict[str, Any]:
        mode = ctx.get_config("mode", "ok")
        if mode == "flaky" and ctx.attempt < 3:
            raise RetryableError("try again")
        if mode == "fix" and (broken["fix"] or ctx.get_input("n") == 2):
            raise PermanentError("broken until fixed")
        if mode == "hang":
            started.set()
            await trio.sleep_forever()
        if mode == "slow" and ctx.attempt == 1:
            await trio.sleep(10)  # past its timeout
        return {"step": ctx.step_name}

    def flow(name: str, mode: str) -> Any:
        return template(
            name,
            [
                step("a", "work"),
                step("b", "work", "a", config={"mode": mode}, timeout=5),
                step("c", "work", "a"),
                step("d", "work", "b", "c"),
            ],
        )

    templates = [flow(name, name) for name in ("ok", "flaky", "fix", "hang", "slow")]
    async with running_engine(templates, {"work": work}) as engine:
        uuids = {}
        for name in ("ok", "flaky", "slow"):
            uuids[name] = (await engine.submit(NAMESPACE, name, {})).task_uuid
        uuids["fix"] = (await engine.submit(NAMESPACE, "fix", {})).task_uuid
        uuids["hang"] = (await engine.submit(NAMESPACE, "hang", {})).task_uuid
        await started.wait()
        await engine.cancel_task(uuids["hang"])
        blocked = await engine.wait_for_task(uuids["fix"], timeout=60)
        assert blocked.state == TaskState.BLOCKED_BY_FAILURES
        broken["fix"] = False
        await engine.reset_step(uuids["fix"], "b")
        # A second blocked task (n=2 always fails), completed by hand.
        uuids["fix_resolved"] = (await engine.submit(NAMESPACE, "fix", {"n": 2})).task_uuid
        await engine.wait_for_task(uuids["fix_resolved"], timeout=60)
        await engine.complete_step(uuids["fix_resolved"], "b", {"by": "hand"})

        final = {}
        for name, uuid in uuids.items():
            final[name] = (await engine.wait_for_task(uuid, timeout=120)).state
        await trio.sleep(30)  # late reports, if any, change no trail legality
        counts = [await check_task_audit(engine, uuid) for uuid in uuids.values()]
    assert final == {
        "ok": TaskState.COMPLETE,
        "flaky": TaskState.COMPLETE,
        "slow": TaskState.COMPLETE,
        "fix": TaskState.COMPLETE,
        "hang": TaskState.CANCELLED,
        "fix_resolved": TaskState.COMPLETE,
    }
    assert all(counts)


async def test_trail_of_a_simple_task_tells_its_story(autojump_clock: trio.abc.Clock) -> None:
    async def ok(ctx: StepContext) -> dict[str, Any]:
        return {}

    tpl = template("story", [step("only", "ok")])
    async with running_engine([tpl], {"ok": ok}) as engine:
        submission = await engine.submit(NAMESPACE, "story", {})
        await engine.wait_for_task(submission.task_uuid, timeout=10)
        task_trail = await engine.get_transitions(submission.task_uuid)
        (only,) = await engine.get_steps(submission.task_uuid)
        step_trail = await engine.get_transitions(only.step_uuid)
    assert (task_trail[0].from_state, task_trail[0].to_state) == ("pending", "initializing")
    assert task_trail[-1].to_state == "complete"
    assert [t.event for t in step_trail] == ["enqueue", "start", "submit_success", "complete"]
    assert all(t.processor_id for t in [*task_trail, *step_trail])
