"""Queues: poison messages, a worker dying mid-step (visibility timeout), late results.

The engine's broker and store are reached through ``engine._context`` (tests only).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

import tasker_trio.worker.leases as leases_module
from tasker_trio import StepContext, StepState, TaskRequest, TaskState
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    ORCHESTRATION_TASK_REQUESTS,
    TaskRequestMessage,
    worker_queue,
)
from tests.engine._support import NAMESPACE, run_task, running_engine, step, template


async def ok(ctx: StepContext) -> dict[str, Any]:
    return {"step": ctx.step_name}


def simple() -> Any:
    return template("simple", [step("a", "ok"), step("b", "ok", "a")])


@pytest.mark.parametrize(
    "payload",
    [
        {"garbage": True},
        {"task_uuid": 7, "step_uuid": None},
        {
            "task_uuid": "no-such-task",
            "step_uuid": "no-such-step",
            "attempt": 1,
            "success": True,
            "correlation_id": "c",
        },
    ],
    ids=["unknown-fields", "wrong-types", "unknown-task"],
)
async def test_poison_result_message_is_archived_and_engine_keeps_going(
    autojump_clock: trio.abc.Clock, payload: dict[str, Any]
) -> None:
    async with running_engine([simple()], {"ok": ok}) as engine:
        broker = engine._context.broker
        await broker.send(ORCHESTRATION_STEP_RESULTS, payload)
        await trio.sleep(2)
        archived = await broker.archived(ORCHESTRATION_STEP_RESULTS)
        stats = await engine.statistics()
        task = await run_task(engine, "simple")
    assert len(archived) == 1
    assert archived[0].payload == payload
    assert archived[0].reason  # says why
    assert stats.poison_messages.get(ORCHESTRATION_STEP_RESULTS) == 1
    assert stats.result_queue_depth == 0
    assert task.state == TaskState.COMPLETE


async def test_result_naming_an_unknown_step_of_a_known_task_is_archived(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Its neighbour in the same read (a duplicate result) is consumed; it is archived."""
    async with running_engine([simple()], {"ok": ok}) as engine:
        broker = engine._context.broker
        task = await run_task(engine, "simple")
        [first, *_] = await engine.get_steps(task.task_uuid)
        notice = {
            "task_uuid": task.task_uuid,
            "step_uuid": first.step_uuid,
            "attempt": first.attempts,
            "success": True,
            "correlation_id": task.correlation_id,
        }
        unknown = {**notice, "step_uuid": "no-such-step"}
        await broker.send(ORCHESTRATION_STEP_RESULTS, unknown)
        await broker.send(ORCHESTRATION_STEP_RESULTS, notice)  # a duplicate
        await trio.sleep(2)
        archived = await broker.archived(ORCHESTRATION_STEP_RESULTS)
        stats = await engine.statistics()
        after = await engine.get_task(task.task_uuid)
    assert [m.payload for m in archived] == [unknown]
    assert "unknown step" in archived[0].reason
    assert stats.poison_messages.get(ORCHESTRATION_STEP_RESULTS) == 1
    assert stats.result_queue_depth == 0
    assert after.state == TaskState.COMPLETE


async def test_poison_worker_message_is_archived_and_engine_keeps_going(
    autojump_clock: trio.abc.Clock,
) -> None:
    queue = worker_queue(NAMESPACE)
    unknown_step = {
        "task_uuid": "no-such-task",
        "step_uuid": "no-such-step",
        "step_name": "x",
        "namespace": NAMESPACE,
        "attempt": 1,
        "correlation_id": "c",
    }
    async with running_engine([simple()], {"ok": ok}) as engine:
        broker = engine._context.broker
        await broker.send(queue, {"not": "a step message"})
        await broker.send(queue, unknown_step)
        await trio.sleep(2)
        archived = await broker.archived(queue)
        stats = await engine.statistics()
        task = await run_task(engine, "simple")
        depth = (await broker.queue_statistics(queue)).depth
    # Read in one batch and handled concurrently: archived in either order.
    reasons = {json.dumps(m.payload, sort_keys=True): m.reason for m in archived}
    assert set(reasons) == {
        json.dumps(p, sort_keys=True) for p in [{"not": "a step message"}, unknown_step]
    }
    assert all(reasons.values())
    assert "unknown step" in reasons[json.dumps(unknown_step, sort_keys=True)]
    assert sum(stats.poison_messages.values()) == 2
    assert task.state == TaskState.COMPLETE
    assert depth == 0


async def test_worker_dying_mid_step_is_recovered_and_late_result_ignored(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempt 1 stops renewing its lease (as if its worker died) and outlives it.

    The message turns visible after the visibility timeout, the step is reclaimed as
    attempt 2, which completes the task; attempt 1's late result is then ignored.
    """
    real_renew = leases_module.renew
    leases: list[tuple[str, int]] = []

    async def renew(store: Any, broker: Any, running: Any, lease: float) -> bool:
        claimed = running.claimed
        leases.append((claimed.step.name, claimed.step.attempts))
        if (claimed.step.name, claimed.step.attempts) == ("only", 1):
            return True  # the "dead" worker renews nothing
        return await real_renew(store, broker, running, lease)

    monkeypatch.setattr(leases_module, "renew", renew)
    calls: list[tuple[int, float]] = []
    late: list[float] = []

    async def slow_first(ctx: StepContext) -> dict[str, Any]:
        calls.append((ctx.attempt, trio.current_time()))
        if ctx.attempt == 1:
            await trio.sleep(10)
            late.append(trio.current_time())
        return {"attempt": ctx.attempt}

    tpl = template("lease", [step("only", "slow_first", timeout=60), step("next", "ok", "only")])
    handlers = {"slow_first": slow_first, "ok": ok}
    async with running_engine([tpl], handlers, visibility_timeout=2) as engine:
        task = await run_task(engine, "lease")
        done_at = trio.current_time()
        assert late == []  # completed by attempt 2 while attempt 1 still ran
        await trio.sleep(30)  # attempt 1 wakes and reports
        assert late
        (only, after) = await engine.get_steps(task.task_uuid)
        trail = await engine.get_transitions(only.step_uuid)
        task_trail = await engine.get_transitions(task.task_uuid)
        reported = await engine._context.store.results_of(only.step_uuid)
        final = await engine.get_task(task.task_uuid)
        queue = await engine._context.broker.queue_statistics(worker_queue(NAMESPACE))

    assert task.state == final.state == TaskState.COMPLETE
    assert [a for a, _ in calls] == [1, 2]
    assert calls[1][1] - calls[0][1] == pytest.approx(2.0, abs=0.6)  # the visibility timeout
    assert done_at < late[0]
    assert ("only", 1) in leases  # the keeper asked; the "dead" worker renewed nothing
    # The step's results are attempt 2's, and stayed so after the late report.
    assert (only.state, only.attempts, only.results) == (StepState.COMPLETE, 2, {"attempt": 2})
    assert after.state == StepState.COMPLETE
    events = [(t.event, t.metadata.get("attempt")) for t in trail]
    assert events == [
        ("enqueue", 1),
        ("start", 1),
        ("start", 2),
        ("submit_success", 2),
        ("complete", 2),
    ]
    assert trail[2].metadata["reclaim"] is True
    assert trail[1].metadata["reclaim"] is False
    # Both reports are kept for the audit; only attempt 2's was accepted.
    assert sorted(r.attempt for r in reported) == [1, 2]
    assert task_trail[-1].to_state == "complete"
    assert all(t.at <= done_at for t in task_trail)  # the late result changed nothing
    assert queue.depth == 0


async def test_worker_dying_on_the_last_attempt_fails_the_step(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_lease(*args: Any) -> bool:
        return True

    monkeypatch.setattr(leases_module, "renew", no_lease)

    async def hang(ctx: StepContext) -> dict[str, Any]:
        await trio.sleep_forever()
        return {}

    tpl = template("dies", [step("only", "hang", retry={"max_attempts": 1}, timeout=3600)])
    async with running_engine([tpl], {"hang": hang}, visibility_timeout=2) as engine:
        task = await run_task(engine, "dies", limit=60)
        (only,) = await engine.get_steps(task.task_uuid)
        entries = await engine.dead_letters()
    assert task.state == TaskState.BLOCKED_BY_FAILURES
    assert (only.state, only.attempts) == (StepState.ERROR, 1)
    assert only.last_error is not None
    assert only.last_error.error_type == "LeaseExpired"
    assert len(entries) == 1


async def test_a_long_handler_keeps_its_lease(autojump_clock: trio.abc.Clock) -> None:
    """A handler running for many visibility timeouts is never reclaimed."""
    calls: list[int] = []

    async def long(ctx: StepContext) -> dict[str, Any]:
        calls.append(ctx.attempt)
        await trio.sleep(50)
        return {"attempt": ctx.attempt}

    tpl = template("long", [step("only", "long", timeout=120)])
    async with running_engine([tpl], {"long": long}, visibility_timeout=3) as engine:
        task = await run_task(engine, "long")
        (only,) = await engine.get_steps(task.task_uuid)
    assert task.state == TaskState.COMPLETE
    assert calls == [1]
    assert (only.attempts, only.results) == (1, {"attempt": 1})


async def test_result_naming_an_unknown_step_of_a_known_task_is_poison(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Semantics §6: a message naming an unknown task *or step* is archived and counted."""
    async with running_engine([simple()], {"ok": ok}) as engine:
        task = await run_task(engine, "simple")
        broker = engine._context.broker
        payload = {
            "task_uuid": task.task_uuid,
            "step_uuid": "no-such-step",
            "attempt": 1,
            "success": True,
            "correlation_id": task.correlation_id,
        }
        await broker.send(ORCHESTRATION_STEP_RESULTS, payload)
        await trio.sleep(2)
        archived = await broker.archived(ORCHESTRATION_STEP_RESULTS)
        stats = await engine.statistics()
    assert [m.payload for m in archived] == [payload]
    assert "no-such-step" in archived[0].reason
    assert stats.poison_messages.get(ORCHESTRATION_STEP_RESULTS) == 1


async def test_queued_request_for_an_unknown_template_is_archived(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A request that can never succeed is archived with its reason, not redelivered forever."""
    async with running_engine([simple()], {"ok": ok}) as engine:
        broker = engine._context.broker
        good = TaskRequestMessage(request=TaskRequest.create(NAMESPACE, "simple", {"x": 1}))
        bad = TaskRequestMessage(request=TaskRequest.create(NAMESPACE, "no_such", {"x": 1}))
        await broker.send(ORCHESTRATION_TASK_REQUESTS, good.to_json())
        await broker.send(ORCHESTRATION_TASK_REQUESTS, bad.to_json())
        await trio.sleep(200)  # several visibility timeouts
        archived = await broker.archived(ORCHESTRATION_TASK_REQUESTS)
        queue = await broker.queue_statistics(ORCHESTRATION_TASK_REQUESTS)
        stats = await engine.statistics()
    assert stats.tasks_by_state == {"complete": 1}  # the good request ran
    assert queue.depth == 0
    assert [m.payload for m in archived] == [bad.to_json()]
    assert "no_such" in archived[0].reason
    assert stats.poison_messages.get(ORCHESTRATION_TASK_REQUESTS) == 1


async def test_queued_requests_are_gone_once_their_task_exists(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A request is deleted with its task's creation; a second one for the same task too."""
    async with running_engine([simple()], {"ok": ok}) as engine:
        broker = engine._context.broker
        request = TaskRequest.create(NAMESPACE, "simple", {"x": 1})
        twin = TaskRequest.create(NAMESPACE, "simple", {"x": 1})  # same identity
        await broker.send(
            ORCHESTRATION_TASK_REQUESTS, TaskRequestMessage(request=request).to_json()
        )
        await broker.send(ORCHESTRATION_TASK_REQUESTS, TaskRequestMessage(request=twin).to_json())
        await trio.sleep(200)  # several visibility timeouts: nothing comes back
        queue = await broker.queue_statistics(ORCHESTRATION_TASK_REQUESTS)
        archived = await broker.archived(ORCHESTRATION_TASK_REQUESTS)
        stats = await engine.statistics()
    assert stats.tasks_by_state == {"complete": 1}
    assert (queue.depth, queue.sent_total) == (0, 2)
    assert archived == []
    assert stats.poison_messages == {}
