"""The staleness sweeper applies lifecycle limits (semantics §8) through legal transitions."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tasker_trio import StepContext, TaskState, TaskTemplate, open_engine
from tasker_trio.models import Task
from tasker_trio.orchestration.services.staleness import LifecycleDefaults, staleness_reason
from tasker_trio.templates import LifecycleConfig


def stuck_template(action: str, limit_minutes: int = 1) -> TaskTemplate:
    return TaskTemplate.from_yaml(
        f"""
name: stuck
namespace_name: ops
version: 1.0.0
lifecycle:
  max_steps_in_process_minutes: {limit_minutes}
  staleness_action: {action}
steps:
  - name: hang
    handler: {{callable: hang}}
    timeout_seconds: 3600
  - name: after
    handler: {{callable: noop}}
    dependencies: [hang]
"""
    )


async def hang(ctx: StepContext) -> dict[str, Any]:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def noop(ctx: StepContext) -> dict[str, Any]:
    return {}


HANDLERS = {"hang": hang, "noop": noop}


async def test_stale_task_is_dead_lettered_and_can_be_resumed(autojump_clock: Any) -> None:
    async with open_engine(
        stuck_template("dlq"), handlers=HANDLERS, staleness_interval=30
    ) as engine:
        sub = await engine.submit("ops", "stuck", {})
        task = await engine.wait_for_task(sub.task_uuid, timeout=600)
        assert task.state == TaskState.BLOCKED_BY_FAILURES
        assert trio.current_time() >= 60  # not before the one-minute limit
        entries = await engine.dead_letters()
        assert [e.reason for e in entries] == ["stale"]
        assert "max_steps_in_process_minutes" in entries[0].details["detail"]
        hang_step = await engine.get_step(sub.task_uuid, "hang")
        assert hang_step.state.value == "error"
        assert hang_step.last_error is not None
        assert hang_step.last_error.error_type == "Stale"
        # An operator completes the stuck step by hand: the rest of the task runs.
        await engine.complete_step(sub.task_uuid, "hang", {"done": "by hand"})
        done = await engine.wait_for_task(sub.task_uuid, timeout=60)
        assert done.state == TaskState.COMPLETE


async def test_error_action_gives_the_task_up(autojump_clock: Any) -> None:
    async with open_engine(
        stuck_template("error"), handlers=HANDLERS, staleness_interval=30
    ) as engine:
        sub = await engine.submit("ops", "stuck", {})
        task = await engine.wait_for_task(sub.task_uuid, timeout=600)
        assert task.state == TaskState.ERROR
        trail = [t.event for t in await engine.get_transitions(sub.task_uuid)]
        assert trail[-2:] == ["permanent_failure", "give_up"]


async def test_none_action_changes_nothing(autojump_clock: Any) -> None:
    async with open_engine(
        stuck_template("none"), handlers=HANDLERS, staleness_interval=30
    ) as engine:
        sub = await engine.submit("ops", "stuck", {})
        await trio.sleep(300)
        assert (await engine.get_task(sub.task_uuid)).state == TaskState.STEPS_IN_PROCESS
        assert await engine.dead_letters() == []


def _task(state: TaskState, created: float, updated: float) -> Task:
    return Task(
        task_uuid="t",
        namespace="ns",
        name="n",
        version="1.0.0",
        identity_hash="h",
        state=state,
        correlation_id="c",
        created_at=created,
        updated_at=updated,
    )


@pytest.mark.parametrize(
    ("state", "created", "updated", "lifecycle", "stale"),
    [
        (TaskState.STEPS_IN_PROCESS, 0, 0, None, True),  # default 60 minutes passed
        (TaskState.STEPS_IN_PROCESS, 0, 3000, None, False),
        (
            TaskState.WAITING_FOR_DEPENDENCIES,
            0,
            0,
            LifecycleConfig(max_waiting_for_dependencies_minutes=120),
            False,
        ),
        (TaskState.WAITING_FOR_RETRY, 0, 0, None, False),  # never swept for a backoff
        (TaskState.EVALUATING_RESULTS, 0, 0, LifecycleConfig(max_duration_minutes=30), True),
    ],
)
def test_staleness_reason(
    state: TaskState,
    created: float,
    updated: float,
    lifecycle: LifecycleConfig | None,
    stale: bool,
) -> None:
    reason = staleness_reason(_task(state, created, updated), lifecycle, LifecycleDefaults(), 3700)
    assert (reason is not None) == stale
