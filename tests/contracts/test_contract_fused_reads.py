"""Contract: the reads that bring more along — `claim_from_queue` and `read_for_processing`.

Both must behave exactly like their two-step equivalents (`Broker.read` then `claim_step`;
`Broker.read` then `apply` reading the task), on every backend.
"""

from __future__ import annotations

import attrs
import pytest
from trio.testing import MockClock

from tasker_trio.state_machine import StepEvent, StepState, TaskState
from tasker_trio.store.plan import PlanBuilder, TaskView
from tasker_trio.store.protocol import MessageRef, Planner, QueuedClaim
from tests.contracts._builders import (
    LEASE,
    RESULT_QUEUE,
    START,
    WORKER_QUEUE,
    Backend,
    complete_and_enqueue,
    make_graph,
    planner,
    record,
    success,
)


async def test_claim_from_queue_reads_and_claims_each_enqueued_step(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a", "b", "c"])  # three roots, all enqueued
    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)

    claims = await store.claim_from_queue(
        WORKER_QUEUE, limit=2, visibility_timeout=LEASE, lease_seconds=10, worker_id="w9"
    )

    assert len(claims) == 2  # the limit
    assert [c.message.msg_id for c in claims] == sorted(c.message.msg_id for c in claims)
    for c in claims:
        assert c.outcome is not None
        assert c.outcome.claimed is not None
        step = c.outcome.claimed.step
        assert step.step_uuid == c.message.payload["step_uuid"]
        assert (step.state, step.attempts) == (StepState.IN_PROGRESS, 1)
        assert step.lease_expires_at == pytest.approx(backend.now() + 10)
        assert c.outcome.claimed.task.task_uuid == graph.task.task_uuid
        trail = await store.transitions(step.step_uuid)
        assert trail[-1].metadata["worker_id"] == "w9"
    [last] = await store.claim_from_queue(
        WORKER_QUEUE, limit=5, visibility_timeout=LEASE, lease_seconds=10, worker_id="w9"
    )
    assert last.outcome is not None
    assert last.outcome.claimed is not None
    assert {c.message.payload["step_uuid"] for c in [*claims, last]} == {
        graph.uuid(n) for n in "abc"
    }
    # Hidden for the visibility timeout, like any read.
    assert (
        await store.claim_from_queue(
            WORKER_QUEUE, limit=5, visibility_timeout=LEASE, lease_seconds=10, worker_id="w9"
        )
        == []
    )


async def test_claim_from_queue_leaves_a_message_that_is_not_a_step_message_unclaimed(
    backend: Backend, autojump_clock: MockClock
) -> None:
    poison = await backend.broker.send(WORKER_QUEUE, {"step_uuid": 42, "junk": True})

    [claim] = await backend.store.claim_from_queue(
        WORKER_QUEUE, limit=5, visibility_timeout=LEASE, lease_seconds=10, worker_id="w1"
    )

    assert claim.message.msg_id == poison
    assert claim.outcome is None
    assert claim.message.payload == {"step_uuid": 42, "junk": True}


async def test_claim_from_queue_refuses_a_live_lease_and_an_unknown_step(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a"])
    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    [first] = await store.claim_from_queue(
        WORKER_QUEUE, limit=1, visibility_timeout=5, lease_seconds=60, worker_id="w1"
    )
    stray = dict(first.message.payload, step_uuid="no-such-step")
    await backend.broker.send(WORKER_QUEUE, stray)
    await backend.let_time_pass(5)  # the message shows again; the lease is alive

    claims = await store.claim_from_queue(
        WORKER_QUEUE, limit=5, visibility_timeout=5, lease_seconds=60, worker_id="w2"
    )

    reasons = {c.message.payload["step_uuid"]: c.outcome and c.outcome.reason for c in claims}
    assert reasons == {graph.uuid("a"): "lease_alive", "no-such-step": "unknown_step"}
    step = await store.get_step(graph.uuid("a"))
    assert (step.state, step.attempts) == (StepState.IN_PROGRESS, 1)


async def test_read_for_processing_reads_like_the_broker(
    backend: Backend, autojump_clock: MockClock
) -> None:
    ids = [await backend.broker.send(RESULT_QUEUE, {"task_uuid": "t", "i": i}) for i in range(3)]
    await backend.broker.send(RESULT_QUEUE, {"no_task": True})

    messages = await backend.store.read_for_processing(RESULT_QUEUE, limit=3, visibility_timeout=7)

    assert [m.msg_id for m in messages] == ids
    assert [m.payload["i"] for m in messages] == [0, 1, 2]
    assert all(m.read_ct == 1 for m in messages)
    [rest] = await backend.store.read_for_processing(RESULT_QUEUE, limit=9, visibility_timeout=7)
    assert rest.payload == {"no_task": True}
    await backend.let_time_pass(7)
    again = await backend.broker.read(RESULT_QUEUE, limit=9, visibility_timeout=7)
    assert [m.msg_id for m in again] == [*ids, rest.msg_id]


async def test_apply_after_read_for_processing_plans_on_the_state_the_message_reports(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a", "b"], [("a", "b")])
    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    [claim] = await _claim(backend, limit=1)
    await record(store, success(graph, "a", 1, step="a"), claim.message)
    [notice] = await store.read_for_processing(RESULT_QUEUE, limit=5, visibility_timeout=LEASE)
    seen = _observer(graph.uuid("a"))

    consumed = (MessageRef(queue=RESULT_QUEUE, msg_id=notice.msg_id),)
    await store.apply(graph.task.task_uuid, seen.planner, consumed=consumed)

    assert seen.states == [StepState.ENQUEUED_FOR_ORCHESTRATION]  # the recorded result
    await store.apply(graph.task.task_uuid, complete_and_enqueue(graph, "a", "b"))
    assert (await store.get_task(graph.task.task_uuid)).state == TaskState.STEPS_IN_PROCESS


async def test_a_task_read_with_a_message_is_not_the_view_of_any_other_apply(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a", "c"])
    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    claims = {c.message.payload["step_uuid"]: c for c in await _claim(backend, limit=2)}
    await record(store, success(graph, "a", 1, step="a"), claims[graph.uuid("a")].message)
    await store.read_for_processing(RESULT_QUEUE, limit=5, visibility_timeout=LEASE)
    await record(store, success(graph, "c", 1, step="c"), claims[graph.uuid("c")].message)
    seen = _observer(graph.uuid("c"))

    await store.apply(graph.task.task_uuid, seen.planner)  # consumes nothing

    assert seen.states == [StepState.ENQUEUED_FOR_ORCHESTRATION]  # c's result, read now


async def _claim(backend: Backend, *, limit: int) -> list[QueuedClaim]:
    claims = await backend.store.claim_from_queue(
        WORKER_QUEUE, limit=limit, visibility_timeout=LEASE, lease_seconds=LEASE, worker_id="w1"
    )
    for c in claims:
        assert c.outcome is not None
        assert c.outcome.claimed is not None
    return claims


@attrs.define
class _Observer:
    step_uuid: str
    states: list[StepState] = attrs.field(factory=list)

    @property
    def planner(self) -> Planner:
        def observe(builder: PlanBuilder, view: TaskView, now: float) -> None:
            self.states.append(view.step(self.step_uuid).state)

        return planner(observe)


def _observer(step_uuid: str) -> _Observer:
    """A planner that plans nothing and notes the step's state in each view it is given."""
    return _Observer(step_uuid)


async def test_a_plan_on_a_view_a_worker_has_since_changed_is_made_again(
    backend: Backend, autojump_clock: MockClock
) -> None:
    # Workers move steps without touching the task: a plan that rewrites a step a worker
    # moved after the plan's view was read must be re-planned on the step as it is.
    store = backend.store
    graph = make_graph(["a", "b"])
    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    claims = {c.message.payload["step_uuid"]: c for c in await _claim(backend, limit=1)}
    [(a_uuid, a_claim)] = claims.items()
    name_a = "a" if a_uuid == graph.uuid("a") else "b"
    other = graph.uuid("b" if name_a == "a" else "a")
    await record(store, success(graph, name_a, 1, step=name_a), a_claim.message)
    [notice] = await store.read_for_processing(RESULT_QUEUE, limit=5, visibility_timeout=LEASE)
    await _claim(backend, limit=1)  # the other step: enqueued -> in_progress, after the read
    seen: list[StepState] = []

    def cancel_other(builder: PlanBuilder, view: TaskView, now: float) -> None:
        seen.append(view.step(other).state)
        builder.step_event(other, StepEvent.CANCEL)

    consumed = (MessageRef(queue=RESULT_QUEUE, msg_id=notice.msg_id),)
    await store.apply(graph.task.task_uuid, planner(cancel_other), consumed=consumed)

    assert seen[-1] == StepState.IN_PROGRESS  # the plan that landed saw the claim
    trail = await store.transitions(other)
    assert [(t.from_state, t.to_state) for t in trail][-2:] == [
        ("enqueued", "in_progress"),
        ("in_progress", "cancelled"),
    ]


async def test_a_plan_that_changes_steps_only_leaves_the_task_as_it_was(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a", "b"])
    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    before = await store.get_task(graph.task.task_uuid)

    def cancel_b(builder: PlanBuilder, view: TaskView, now: float) -> None:
        builder.step_event(graph.uuid("b"), StepEvent.CANCEL)

    plan, _ = await store.apply(graph.task.task_uuid, planner(cancel_b))

    assert not plan.task_changes
    assert await store.get_task(graph.task.task_uuid) == before
    assert (await store.get_step(graph.uuid("b"))).state == StepState.CANCELLED
    claims = await store.claim_from_queue(
        WORKER_QUEUE, limit=5, visibility_timeout=LEASE, lease_seconds=LEASE, worker_id="w1"
    )
    outcomes = {c.message.payload["step_uuid"]: c.outcome for c in claims}
    assert outcomes[graph.uuid("b")] is not None
    assert outcomes[graph.uuid("b")].reason == "not_enqueued"
    a = outcomes[graph.uuid("a")]  # still claimable, with its task
    assert a is not None
    assert a.claimed is not None
    assert a.claimed.task == before
