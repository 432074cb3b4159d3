"""The `Store` contract: atomic domain operations every backend must implement alike.

Each test runs once per backend (see ``conftest.py``) and uses only the `Store` protocol,
reading through ``backend.broker`` to see the messages a store operation sent. Timing tests
take ``autojump_clock``, so leases and backoffs expire without real time passing.
"""

from __future__ import annotations

import itertools

import pytest
import trio
from trio.testing import MockClock

from tasker_trio.errors import DeadLetterNotFound, InvalidTransition, StepNotFound, TaskNotFound
from tasker_trio.messaging.protocol import QueueMessage
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    DeadLetterStatus,
    StepMessage,
    StepResultMessage,
    Transition,
)
from tasker_trio.state_machine import StepEvent, StepState, TaskEvent, TaskState
from tasker_trio.store.plan import PlanBuilder, TaskView
from tests.contracts._builders import (
    LEASE,
    RESULT_QUEUE,
    START,
    WORKER_QUEUE,
    Backend,
    Graph,
    claim,
    complete_and_enqueue,
    failure,
    make_graph,
    only_start,
    planner,
    read_step_messages,
    record,
    ref,
    run_to_complete,
    success,
)


def assert_audit_trail(trail: list[Transition], *to_states: str) -> None:
    """``trail`` reaches ``to_states`` in order, sort_key 1.., one most_recent (the last)."""
    assert [t.to_state for t in trail] == list(to_states)
    assert [t.sort_key for t in trail] == list(range(1, len(trail) + 1))
    assert [t.most_recent for t in trail] == [False] * (len(trail) - 1) + [True]
    for before, after in itertools.pairwise(trail):
        assert after.from_state == before.to_state
        assert after.at >= before.at


async def started(backend: Backend, graph: Graph) -> None:
    """Create ``graph``'s task with its roots enqueued."""
    _, created = await backend.store.create_task(
        graph.task, graph.steps, graph.edges, planner=START
    )
    assert created


# ------------------------------------------------------------------------------ create_task


async def test_create_task_applies_its_planner_atomically(backend: Backend) -> None:
    store = backend.store
    graph = make_graph(["a", "b", "c"], [("a", "c"), ("b", "c")])

    task, created = await store.create_task(graph.task, graph.steps, graph.edges, planner=START)

    assert created is True
    assert task.task_uuid == graph.task.task_uuid
    assert task.state == TaskState.STEPS_IN_PROCESS
    assert (await store.get_task(task.task_uuid)).state == TaskState.STEPS_IN_PROCESS
    view = await store.get_view(task.task_uuid)
    assert [s.name for s in view.steps] == ["a", "b", "c"]
    assert [s.state for s in view.steps] == [
        StepState.ENQUEUED,
        StepState.ENQUEUED,
        StepState.PENDING,
    ]
    assert set(view.edges) == set(graph.edges)
    assert_audit_trail(
        await store.transitions(task.task_uuid),
        "initializing",
        "enqueuing_steps",
        "steps_in_process",
    )
    assert_audit_trail(await store.transitions(graph.uuid("a")), "enqueued")
    assert await store.transitions(graph.uuid("c")) == []
    messages = await backend.broker.read(WORKER_QUEUE, limit=10, visibility_timeout=30)
    notices = sorted(
        (StepMessage.from_json(m.payload) for m in messages), key=lambda m: m.step_name
    )
    assert [(n.step_name, n.step_uuid, n.attempt) for n in notices] == [
        ("a", graph.uuid("a"), 1),
        ("b", graph.uuid("b"), 1),
    ]
    assert {n.correlation_id for n in notices} == {graph.task.correlation_id}


async def test_create_task_whose_planner_raises_creates_nothing(backend: Backend) -> None:
    store = backend.store
    graph = make_graph(["a", "b"], [("a", "b")])

    def build(builder: PlanBuilder, view: TaskView, now: float) -> None:
        builder.task_event(TaskEvent.START)
        builder.task_event(TaskEvent.ALL_STEPS_SUCCESSFUL)  # illegal from initializing

    with pytest.raises(InvalidTransition):
        await store.create_task(graph.task, graph.steps, graph.edges, planner=planner(build))

    with pytest.raises(TaskNotFound):
        await store.get_task(graph.task.task_uuid)
    with pytest.raises(StepNotFound):
        await store.get_step(graph.uuid("a"))
    assert await store.list_tasks() == []
    assert await store.transitions(graph.task.task_uuid) == []
    assert (await backend.broker.queue_statistics(WORKER_QUEUE)).sent_total == 0
    # The identity is not taken either: the same task can be created afterwards.
    _, created = await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    assert created is True


async def test_create_task_with_a_known_identity_returns_the_existing_task(
    backend: Backend,
) -> None:
    store = backend.store
    first = make_graph(["a"], identity_hash="same-identity")
    twin = make_graph(["a"], identity_hash="same-identity")
    await started(backend, first)

    task, created = await store.create_task(twin.task, twin.steps, twin.edges, planner=START)

    assert created is False
    assert task.task_uuid == first.task.task_uuid
    assert task.state == TaskState.STEPS_IN_PROCESS
    assert [t.task_uuid for t in await store.list_tasks()] == [first.task.task_uuid]
    with pytest.raises(TaskNotFound):
        await store.get_task(twin.task.task_uuid)
    with pytest.raises(StepNotFound):
        await store.get_step(twin.uuid("a"))
    assert (await backend.broker.queue_statistics(WORKER_QUEUE)).sent_total == 1


REQUESTS = "contract_task_requests"


async def test_create_task_deletes_the_request_that_asked_for_it(backend: Backend) -> None:
    store, broker = backend.store, backend.broker
    first = make_graph(["a"], identity_hash="requested")
    twin = make_graph(["a"], identity_hash="requested")
    for _ in range(3):
        await broker.send(REQUESTS, {"request": "first"})
    one, two, three = await broker.read(REQUESTS, limit=10, visibility_timeout=30)

    _, created = await store.create_task(
        first.task, first.steps, first.edges, planner=START, consumed=[ref(one)]
    )
    assert created is True
    # A request for a task that exists already is done with too.
    _, created = await store.create_task(
        twin.task, twin.steps, twin.edges, planner=START, consumed=[ref(two)]
    )
    assert created is False

    assert not await broker.delete(REQUESTS, one.msg_id)  # gone already
    assert not await broker.delete(REQUESTS, two.msg_id)
    assert await broker.delete(REQUESTS, three.msg_id)  # not named: left alone


async def test_create_task_whose_planner_raises_keeps_its_request(backend: Backend) -> None:
    store, broker = backend.store, backend.broker
    graph = make_graph(["a"])
    await broker.send(REQUESTS, {"request": "kept"})
    (message,) = await broker.read(REQUESTS, limit=10, visibility_timeout=30)

    def build(builder: PlanBuilder, view: TaskView, now: float) -> None:
        builder.task_event(TaskEvent.ALL_STEPS_SUCCESSFUL)  # illegal from pending

    with pytest.raises(InvalidTransition):
        await store.create_task(
            graph.task, graph.steps, graph.edges, planner=planner(build), consumed=[ref(message)]
        )

    assert (await broker.queue_statistics(REQUESTS)).depth == 1
    assert await broker.delete(REQUESTS, message.msg_id)


async def test_concurrent_creates_of_one_identity_create_one_task(backend: Backend) -> None:
    store = backend.store
    graphs = [make_graph(["a"], identity_hash="raced-identity") for _ in range(5)]
    outcomes: list[tuple[str, bool]] = []

    async def create(graph: Graph) -> None:
        task, created = await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
        outcomes.append((task.task_uuid, created))

    async with trio.open_nursery() as nursery:
        for graph in graphs:
            nursery.start_soon(create, graph)

    assert sum(created for _, created in outcomes) == 1
    assert len({task_uuid for task_uuid, _ in outcomes}) == 1
    assert len(await store.list_tasks()) == 1
    assert (await backend.broker.queue_statistics(WORKER_QUEUE)).sent_total == 1


# ------------------------------------------------------------------------------------ apply


async def test_apply_runs_the_planner_on_the_current_view_and_commits(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a", "b"], [("a", "b")])
    await store.create_task(graph.task, graph.steps, graph.edges, planner=planner(only_start))
    await backend.let_time_pass(3)
    seen: list[tuple[TaskState, float]] = []

    def build(builder: PlanBuilder, view: TaskView, now: float) -> None:
        seen.append((view.task.state, now))
        builder.task_event(TaskEvent.READY_STEPS_FOUND)
        builder.step_event(graph.uuid("a"), StepEvent.ENQUEUE)
        builder.send(WORKER_QUEUE, {"step_uuid": graph.uuid("a")})
        builder.task_event(TaskEvent.STEPS_ENQUEUED)

    plan, view = await store.apply(graph.task.task_uuid, planner(build))

    [(state_seen, now_seen)] = seen
    assert state_seen == TaskState.INITIALIZING
    assert now_seen == pytest.approx(backend.now())
    assert [c.to_state for c in plan.task_changes] == [
        TaskState.ENQUEUING_STEPS,
        TaskState.STEPS_IN_PROCESS,
    ]
    assert view.task.state == TaskState.STEPS_IN_PROCESS
    assert view.step(graph.uuid("a")).state == StepState.ENQUEUED
    assert (await store.get_step(graph.uuid("a"))).state == StepState.ENQUEUED
    assert (await store.get_task(graph.task.task_uuid)).updated_at == pytest.approx(backend.now())
    trail = await store.transitions(graph.task.task_uuid)
    assert_audit_trail(trail, "initializing", "enqueuing_steps", "steps_in_process")
    assert trail[-1].at == pytest.approx(backend.now())
    assert trail[-1].event == "steps_enqueued"
    [message] = await backend.broker.read(WORKER_QUEUE, limit=10, visibility_timeout=30)
    assert message.payload == {"step_uuid": graph.uuid("a")}


async def test_apply_whose_planner_raises_changes_nothing(backend: Backend) -> None:
    store = backend.store
    graph = make_graph(["a", "b"], [("a", "b")])
    await started(backend, graph)
    before = await store.get_view(graph.task.task_uuid)

    def build(builder: PlanBuilder, view: TaskView, now: float) -> None:
        builder.step_event(graph.uuid("a"), StepEvent.START)  # legal on its own
        builder.send(WORKER_QUEUE, {"never": "sent"})
        builder.step_event(graph.uuid("b"), StepEvent.COMPLETE)  # illegal from pending

    with pytest.raises(InvalidTransition):
        await store.apply(graph.task.task_uuid, planner(build))

    assert await store.get_view(graph.task.task_uuid) == before
    assert len(await store.transitions(graph.uuid("a"))) == 1
    assert await store.transitions(graph.uuid("b")) == []
    assert (await backend.broker.queue_statistics(WORKER_QUEUE)).sent_total == 1


async def test_apply_to_an_unknown_task_raises_task_not_found(backend: Backend) -> None:
    with pytest.raises(TaskNotFound):
        await backend.store.apply("no-such-task", START)


async def _a_result_message(backend: Backend, graph: Graph) -> QueueMessage:
    """Run step ``a`` of a started ``graph`` and read its result notice (now hidden)."""
    store = backend.store
    await started(backend, graph)
    message = (await read_step_messages(backend.broker))[graph.uuid("a")]
    outcome = await claim(store, message)
    assert outcome.claimed is not None
    await record(store, success(graph, "a", outcome.claimed.step.attempts), message)
    [notice] = await backend.broker.read(RESULT_QUEUE, limit=10, visibility_timeout=30)
    return notice


async def _depth(backend: Backend, queue: str) -> int:
    return (await backend.broker.queue_statistics(queue)).depth


async def test_apply_deletes_the_messages_it_consumed_with_the_plan(backend: Backend) -> None:
    graph = make_graph(["a", "b"], [("a", "b")])
    notice = await _a_result_message(backend, graph)
    assert await _depth(backend, RESULT_QUEUE) == 1

    plan, view = await backend.store.apply(
        graph.task.task_uuid, complete_and_enqueue(graph, "a", "b"), consumed=[ref(notice)]
    )

    assert view.step(graph.uuid("b")).state == StepState.ENQUEUED
    assert [m.queue for m in plan.messages] == [WORKER_QUEUE]
    assert await _depth(backend, RESULT_QUEUE) == 0
    assert not await backend.broker.delete(RESULT_QUEUE, notice.msg_id)  # already gone
    assert graph.uuid("b") in await read_step_messages(backend.broker)


async def test_apply_deletes_consumed_messages_when_the_plan_changes_nothing(
    backend: Backend,
) -> None:
    graph = make_graph(["a", "b"], [("a", "b")])
    notice = await _a_result_message(backend, graph)
    before = await backend.store.get_view(graph.task.task_uuid)

    plan, view = await backend.store.apply(
        graph.task.task_uuid, planner(lambda builder, view, now: None), consumed=[ref(notice)]
    )

    assert plan.is_empty
    assert view == before
    assert await _depth(backend, RESULT_QUEUE) == 0


async def test_apply_whose_planner_raises_keeps_the_consumed_messages(
    backend: Backend,
) -> None:
    graph = make_graph(["a", "b"], [("a", "b")])
    notice = await _a_result_message(backend, graph)

    def build(builder: PlanBuilder, view: TaskView, now: float) -> None:
        builder.step_event(graph.uuid("a"), StepEvent.COMPLETE)
        builder.step_event(graph.uuid("b"), StepEvent.COMPLETE)  # illegal from pending

    with pytest.raises(InvalidTransition):
        await backend.store.apply(graph.task.task_uuid, planner(build), consumed=[ref(notice)])
    with pytest.raises(TaskNotFound):
        await backend.store.apply("no-such-task", START, consumed=[ref(notice)])

    assert await _depth(backend, RESULT_QUEUE) == 1
    assert (await backend.store.get_step(graph.uuid("a"))).state == (
        StepState.ENQUEUED_FOR_ORCHESTRATION
    )
    assert await backend.broker.delete(RESULT_QUEUE, notice.msg_id)  # still there


# -------------------------------------------------------------------------------- claim_step


async def test_claim_moves_an_enqueued_step_to_in_progress_with_a_lease(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a"])
    await started(backend, graph)
    await backend.let_time_pass(2)
    [message] = (await read_step_messages(backend.broker)).values()

    outcome = await claim(store, message, lease=10, worker_id="worker-7")

    assert outcome.reason is None
    assert outcome.claimed is not None
    claimed = outcome.claimed
    assert claimed.step.state == StepState.IN_PROGRESS
    assert claimed.step.attempts == 1
    assert claimed.step.lease_expires_at == pytest.approx(backend.now() + 10)
    assert claimed.task.task_uuid == graph.task.task_uuid
    assert claimed.task.context == graph.task.context
    assert claimed.dependency_results == {}
    assert await store.get_step(graph.uuid("a")) == claimed.step
    trail = await store.transitions(graph.uuid("a"))
    assert_audit_trail(trail, "enqueued", "in_progress")
    assert trail[-1].event == "start"
    assert trail[-1].metadata["worker_id"] == "worker-7"
    assert trail[-1].metadata["attempt"] == 1
    assert not trail[-1].metadata.get("reclaim")


async def test_claim_gives_the_results_of_every_completed_ancestor(backend: Backend) -> None:
    store = backend.store
    # a -> b -> d, and x unrelated: d sees a and b (its grandparent too), never x.
    graph = make_graph(["a", "x", "b", "d"], [("a", "b"), ("b", "d")])
    await started(backend, graph)
    await run_to_complete(store, backend.broker, graph, ["x", "a", "b"], then_enqueue=["d"])
    messages = await read_step_messages(backend.broker)

    outcome = await claim(store, messages[graph.uuid("d")])

    assert outcome.claimed is not None
    assert outcome.claimed.dependency_results == {"a": {"step": "a"}, "b": {"step": "b"}}


async def test_claim_with_a_live_lease_is_refused_and_keeps_the_message(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a"])
    await started(backend, graph)
    [message] = (await read_step_messages(backend.broker, visibility_timeout=5)).values()
    await claim(store, message, lease=60)
    await backend.let_time_pass(5)  # the message shows again, the lease is still alive
    [duplicate] = (await read_step_messages(backend.broker)).values()

    outcome = await claim(store, duplicate, lease=60, worker_id="w2")

    assert outcome.claimed is None
    assert outcome.reason == "lease_alive"
    step = await store.get_step(graph.uuid("a"))
    assert (step.state, step.attempts) == (StepState.IN_PROGRESS, 1)
    assert len(await store.transitions(graph.uuid("a"))) == 2
    # The message still belongs to the first worker's attempt.
    assert await backend.broker.extend_visibility(
        WORKER_QUEUE, message.msg_id, visibility_timeout=30
    )


async def test_concurrent_claims_of_one_step_let_exactly_one_worker_run(
    backend: Backend,
) -> None:
    store = backend.store
    graph = make_graph(["a"])
    await started(backend, graph)
    [message] = (await read_step_messages(backend.broker)).values()
    outcomes = []

    async def compete(worker_id: str) -> None:
        outcomes.append(await claim(store, message, worker_id=worker_id))

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(compete, f"w{i}")

    assert sum(o.claimed is not None for o in outcomes) == 1
    assert sorted(str(o.reason) for o in outcomes if o.claimed is None) == ["lease_alive"] * 4
    step = await store.get_step(graph.uuid("a"))
    assert (step.state, step.attempts) == (StepState.IN_PROGRESS, 1)


async def test_claim_after_the_lease_expired_reclaims_with_the_next_attempt(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a"], max_attempts=3)
    await started(backend, graph)
    [message] = (await read_step_messages(backend.broker, visibility_timeout=10)).values()
    await claim(store, message, lease=10, worker_id="w1")
    await backend.let_time_pass(10)
    [again] = (await read_step_messages(backend.broker, visibility_timeout=10)).values()

    outcome = await claim(store, again, lease=10, worker_id="w2")

    assert outcome.claimed is not None
    assert outcome.claimed.step.state == StepState.IN_PROGRESS
    assert outcome.claimed.step.attempts == 2
    assert outcome.claimed.step.lease_expires_at == pytest.approx(backend.now() + 10)
    trail = await store.transitions(graph.uuid("a"))
    assert_audit_trail(trail, "enqueued", "in_progress", "in_progress")
    assert trail[-1].metadata["reclaim"] is True
    assert trail[-1].metadata["attempt"] == 2
    assert trail[-1].metadata["worker_id"] == "w2"
    # The first attempt is fenced off.
    assert await store.extend_lease(graph.uuid("a"), 1, lease_seconds=10) is False


async def test_expired_lease_on_the_last_attempt_records_a_lease_expired_failure(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store, broker = backend.store, backend.broker
    graph = make_graph(["a"], max_attempts=1)
    await started(backend, graph)
    [message] = (await read_step_messages(broker, visibility_timeout=10)).values()
    await claim(store, message, lease=10)
    await backend.let_time_pass(10)
    [again] = (await read_step_messages(broker, visibility_timeout=10)).values()

    outcome = await claim(store, again, lease=10, worker_id="w2")

    assert outcome.claimed is None
    assert outcome.reason == "exhausted"
    step = await store.get_step(graph.uuid("a"))
    assert step.state == StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION
    assert step.attempts == 1
    assert step.last_error is not None
    assert step.last_error.error_type == "LeaseExpired"
    assert step.last_error.attempt == 1
    trail = await store.transitions(graph.uuid("a"))
    assert_audit_trail(trail, "enqueued", "in_progress", "enqueued_as_error_for_orchestration")
    # Orchestration hears of it on the step-results queue, and the step message is consumed.
    [notice] = await broker.read(ORCHESTRATION_STEP_RESULTS, limit=10, visibility_timeout=30)
    result = StepResultMessage.from_json(notice.payload)
    assert (result.step_uuid, result.attempt, result.success) == (graph.uuid("a"), 1, False)
    assert await broker.delete(WORKER_QUEUE, again.msg_id) is False


async def test_claim_of_a_step_not_enqueued_is_refused_and_its_message_deleted(
    backend: Backend,
) -> None:
    store, broker = backend.store, backend.broker
    graph = make_graph(["a", "b"], [("a", "b")])
    await started(backend, graph)
    stray_id = await broker.send(WORKER_QUEUE, {"step_uuid": graph.uuid("b")})
    [stray] = [m for m in (await read_step_messages(broker)).values() if m.msg_id == stray_id]

    outcome = await claim(store, stray)

    assert outcome.claimed is None
    assert outcome.reason == "not_enqueued"
    assert (await store.get_step(graph.uuid("b"))).state == StepState.PENDING
    assert await store.transitions(graph.uuid("b")) == []
    assert await broker.delete(WORKER_QUEUE, stray_id) is False


async def test_duplicate_message_of_a_finished_attempt_is_refused_and_deleted(
    backend: Backend,
) -> None:
    store, broker = backend.store, backend.broker
    graph = make_graph(["a"])
    await started(backend, graph)
    [message] = (await read_step_messages(broker)).values()
    await claim(store, message)
    await record(store, success(graph, "a", 1, v=1), message)
    duplicate_id = await broker.send(WORKER_QUEUE, message.payload)
    [duplicate] = (await read_step_messages(broker)).values()

    outcome = await claim(store, duplicate)

    assert outcome.reason == "not_enqueued"
    assert (await store.get_step(graph.uuid("a"))).state == StepState.ENQUEUED_FOR_ORCHESTRATION
    assert await broker.delete(WORKER_QUEUE, duplicate_id) is False


async def test_claim_of_an_unknown_step_says_so(backend: Backend) -> None:
    msg_id = await backend.broker.send(WORKER_QUEUE, {"step_uuid": "no-such-step"})
    [message] = await backend.broker.read(WORKER_QUEUE, limit=1, visibility_timeout=30)
    assert message.msg_id == msg_id

    outcome = await claim(backend.store, message)

    assert outcome.claimed is None
    assert outcome.reason == "unknown_step"


# ------------------------------------------------------------------------------ extend_lease


async def test_extend_lease_pushes_the_current_attempts_lease_only(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a", "b"], [("a", "b")])
    await started(backend, graph)
    [message] = (await read_step_messages(backend.broker, visibility_timeout=10)).values()
    await claim(store, message, lease=10)
    await backend.let_time_pass(8)

    assert await store.extend_lease(graph.uuid("a"), 1, lease_seconds=10) is True
    assert (await store.get_step(graph.uuid("a"))).lease_expires_at == pytest.approx(
        backend.now() + 10
    )
    assert await store.extend_lease(graph.uuid("a"), 2, lease_seconds=10) is False
    assert await store.extend_lease(graph.uuid("b"), 0, lease_seconds=10) is False
    assert await store.extend_lease("no-such-step", 1, lease_seconds=10) is False
    # Past the first lease (10) but within the extended one (18): still held.
    await backend.let_time_pass(4)
    [again] = (await read_step_messages(backend.broker, visibility_timeout=10)).values()
    assert (await claim(store, again, worker_id="w2")).reason == "lease_alive"


# ----------------------------------------------------------------------------- record_result


async def test_record_result_of_the_current_attempt_commits_everything_together(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store, broker = backend.store, backend.broker
    graph = make_graph(["a"])
    await started(backend, graph)
    [message] = (await read_step_messages(broker)).values()
    await claim(store, message)
    await backend.let_time_pass(1)
    result = success(graph, "a", 1, squared=36)

    outcome = await record(store, result, message)

    assert outcome.accepted is True
    step = await store.get_step(graph.uuid("a"))
    assert step.state == StepState.ENQUEUED_FOR_ORCHESTRATION
    assert step.results == {"squared": 36}
    assert step.lease_expires_at is None
    assert await store.results_of(graph.uuid("a")) == [result]
    trail = await store.transitions(graph.uuid("a"))
    assert_audit_trail(trail, "enqueued", "in_progress", "enqueued_for_orchestration")
    assert trail[-1].event == "submit_success"
    assert trail[-1].metadata["attempt"] == 1
    [notice] = await broker.read(RESULT_QUEUE, limit=10, visibility_timeout=30)
    assert StepResultMessage.from_json(notice.payload) == StepResultMessage(
        task_uuid=graph.task.task_uuid,
        step_uuid=graph.uuid("a"),
        attempt=1,
        success=True,
        correlation_id=graph.task.correlation_id,
    )
    assert await broker.delete(WORKER_QUEUE, message.msg_id) is False


async def test_record_failure_of_the_current_attempt_keeps_the_error(backend: Backend) -> None:
    store, broker = backend.store, backend.broker
    graph = make_graph(["a"])
    await started(backend, graph)
    [message] = (await read_step_messages(broker)).values()
    await claim(store, message)
    result = failure(graph, "a", 1, retryable=False)

    outcome = await record(store, result, message)

    assert outcome.accepted is True
    step = await store.get_step(graph.uuid("a"))
    assert step.state == StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION
    assert step.last_error == result.error
    assert step.results is None
    [notice] = await broker.read(RESULT_QUEUE, limit=10, visibility_timeout=30)
    assert notice.payload["success"] is False
    assert await broker.delete(WORKER_QUEUE, message.msg_id) is False


async def test_result_of_a_superseded_attempt_is_kept_but_not_accepted(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store, broker = backend.store, backend.broker
    graph = make_graph(["a"], max_attempts=3)
    await started(backend, graph)
    [message] = (await read_step_messages(broker, visibility_timeout=10)).values()
    await claim(store, message, lease=10, worker_id="w1")
    await backend.let_time_pass(10)
    [again] = (await read_step_messages(broker, visibility_timeout=10)).values()
    await claim(store, again, lease=10, worker_id="w2")  # attempt 2 runs now
    late = success(graph, "a", 1, late=True)

    outcome = await record(store, late, message)

    assert outcome.accepted is False
    step = await store.get_step(graph.uuid("a"))
    assert (step.state, step.attempts, step.results) == (StepState.IN_PROGRESS, 2, None)
    assert await store.results_of(graph.uuid("a")) == [late]
    assert len(await store.transitions(graph.uuid("a"))) == 3
    assert (await broker.queue_statistics(RESULT_QUEUE)).sent_total == 0
    # Attempt 2 still owns the message, and its own result is accepted afterwards.
    assert await broker.extend_visibility(WORKER_QUEUE, again.msg_id, visibility_timeout=10)
    current = success(graph, "a", 2, on_time=True)
    assert (await record(store, current, again)).accepted is True
    assert (await store.get_step(graph.uuid("a"))).results == {"on_time": True}
    assert await store.results_of(graph.uuid("a")) == [late, current]


async def test_result_for_a_cancelled_step_is_not_accepted_and_its_message_deleted(
    backend: Backend,
) -> None:
    store, broker = backend.store, backend.broker
    graph = make_graph(["a"])
    await started(backend, graph)
    [message] = (await read_step_messages(broker)).values()
    await claim(store, message)

    def cancel(builder: PlanBuilder, view: TaskView, now: float) -> None:
        builder.step_event(graph.uuid("a"), StepEvent.CANCEL)
        builder.task_event(TaskEvent.CANCEL)

    await store.apply(graph.task.task_uuid, planner(cancel))

    outcome = await record(store, success(graph, "a", 1, too="late"), message)

    assert outcome.accepted is False
    step = await store.get_step(graph.uuid("a"))
    assert (step.state, step.results) == (StepState.CANCELLED, None)
    assert (await broker.queue_statistics(RESULT_QUEUE)).sent_total == 0
    # Nobody else works on that message any more: it is consumed, not redelivered.
    assert await broker.delete(WORKER_QUEUE, message.msg_id) is False
    assert len(await store.results_of(graph.uuid("a"))) == 1


async def test_duplicate_result_is_not_accepted_twice(backend: Backend) -> None:
    store, broker = backend.store, backend.broker
    graph = make_graph(["a"])
    await started(backend, graph)
    [message] = (await read_step_messages(broker)).values()
    await claim(store, message)
    await record(store, success(graph, "a", 1, v=1), message)

    outcome = await record(store, success(graph, "a", 1, v=2), None)

    assert outcome.accepted is False
    assert (await store.get_step(graph.uuid("a"))).results == {"v": 1}
    assert (await broker.queue_statistics(RESULT_QUEUE)).sent_total == 1
    assert len(await store.results_of(graph.uuid("a"))) == 2


async def test_a_result_recorded_again_unchanged_is_kept_once(backend: Backend) -> None:
    """A record run again after its commit's answer was lost changes nothing."""
    store, broker = backend.store, backend.broker
    graph = make_graph(["a"])
    await started(backend, graph)
    [message] = (await read_step_messages(broker)).values()
    await claim(store, message)
    result = success(graph, "a", 1, v=1)
    assert (await record(store, result, message)).accepted is True

    again = await record(store, result, message)

    assert (again.accepted, again.reason) == (False, "superseded")
    assert (await store.get_step(graph.uuid("a"))).results == {"v": 1}
    assert (await broker.queue_statistics(RESULT_QUEUE)).sent_total == 1
    assert await store.results_of(graph.uuid("a")) == [result]


# ---------------------------------------------------------------------------------- queries


async def test_task_and_step_trails_follow_every_change(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a", "b"], [("a", "b")])
    await started(backend, graph)
    await backend.let_time_pass(1)
    await run_to_complete(store, backend.broker, graph, ["a", "b"])

    task_trail = await store.transitions(graph.task.task_uuid)
    assert_audit_trail(
        task_trail,
        "initializing",
        "enqueuing_steps",
        "steps_in_process",
        "evaluating_results",
        "enqueuing_steps",
        "steps_in_process",
        "evaluating_results",
        "complete",
    )
    assert {t.entity_id for t in task_trail} == {graph.task.task_uuid}
    assert task_trail[0].from_state == "pending"
    for name in ("a", "b"):
        assert_audit_trail(
            await store.transitions(graph.uuid(name)),
            "enqueued",
            "in_progress",
            "enqueued_for_orchestration",
            "complete",
        )
    task = await store.get_task(graph.task.task_uuid)
    assert task.state == TaskState.COMPLETE
    assert task.completed_at == pytest.approx(backend.now())
    assert await store.transitions("no-such-entity") == []


async def test_list_tasks_filters_by_state_oldest_first(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    noop = planner(lambda builder, view, now: None)
    pending = make_graph(["a"], now=backend.now())
    await store.create_task(pending.task, pending.steps, pending.edges, planner=noop)
    await backend.let_time_pass(1)
    running = make_graph(["a"], now=backend.now())
    await started(backend, running)
    await backend.let_time_pass(1)
    initializing = make_graph(["a"], now=backend.now())
    await store.create_task(
        initializing.task, initializing.steps, initializing.edges, planner=planner(only_start)
    )

    everything = await store.list_tasks()
    some = await store.list_tasks([TaskState.PENDING, TaskState.INITIALIZING])
    none = await store.list_tasks([TaskState.COMPLETE])

    assert [t.task_uuid for t in everything] == [
        pending.task.task_uuid,
        running.task.task_uuid,
        initializing.task.task_uuid,
    ]
    assert [t.task_uuid for t in some] == [pending.task.task_uuid, initializing.task.task_uuid]
    assert none == []
    assert await store.transitions(pending.task.task_uuid) == []  # an empty plan records nothing


async def _fail_into_retry(backend: Backend, graph: Graph, name: str, delay: float) -> None:
    """Run ``name`` to a failure and move it (and the task) to waiting_for_retry."""
    store = backend.store
    message = (await read_step_messages(backend.broker))[graph.uuid(name)]
    await claim(store, message)
    await record(store, failure(graph, name, 1), message)

    def build(builder: PlanBuilder, view: TaskView, now: float) -> None:
        builder.step_event(
            graph.uuid(name), StepEvent.WAIT_FOR_RETRY, updates={"next_retry_at": now + delay}
        )
        builder.task_event(TaskEvent.STEP_FAILED)

    await store.apply(graph.task.task_uuid, planner(build))


async def test_tasks_due_for_retry_once_their_earliest_backoff_passed(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    assert await store.earliest_retry_at() is None
    soon, later, busy = make_graph(["a"]), make_graph(["a"]), make_graph(["a"])
    t0 = backend.now()
    await started(backend, later)
    await _fail_into_retry(backend, later, "a", delay=20)
    await started(backend, soon)
    await _fail_into_retry(backend, soon, "a", delay=5)
    await started(backend, busy)  # running, not waiting: never due

    assert await store.earliest_retry_at() == pytest.approx(t0 + 5)
    assert await store.tasks_due_for_retry(t0 + 4.9) == []
    assert await store.tasks_due_for_retry(t0 + 5) == [soon.task.task_uuid]
    assert sorted(await store.tasks_due_for_retry(t0 + 20)) == sorted(
        [soon.task.task_uuid, later.task.task_uuid]
    )

    def retry(builder: PlanBuilder, view: TaskView, now: float) -> None:
        builder.task_event(TaskEvent.RETRY_READY)
        builder.step_event(soon.uuid("a"), StepEvent.ENQUEUE, updates={"next_retry_at": None})
        builder.task_event(TaskEvent.STEPS_ENQUEUED)

    await store.apply(soon.task.task_uuid, planner(retry))

    assert await store.earliest_retry_at() == pytest.approx(t0 + 20)
    assert await store.tasks_due_for_retry(t0 + 100) == [later.task.task_uuid]


async def _block(backend: Backend, graph: Graph) -> None:
    """Fail ``a`` for good and block the task with a dead-letter entry."""
    store = backend.store
    [message] = (await read_step_messages(backend.broker)).values()
    await claim(store, message)
    await record(store, failure(graph, "a", 1, retryable=False), message)

    def build(builder: PlanBuilder, view: TaskView, now: float) -> None:
        builder.step_event(graph.uuid("a"), StepEvent.FAIL)
        builder.task_event(TaskEvent.STEP_COMPLETED)
        builder.task_event(TaskEvent.PERMANENT_FAILURE)
        builder.dead_letter("permanent_failure", failed_steps=["a"])

    await store.apply(graph.task.task_uuid, planner(build))


async def test_dead_letter_made_by_a_plan_is_listed_with_a_snapshot(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a", "b"], [("a", "b")])
    await started(backend, graph)
    assert await store.dead_letters() == []
    await backend.let_time_pass(2)

    await _block(backend, graph)

    [entry] = await store.dead_letters()
    assert entry.task_uuid == graph.task.task_uuid
    assert entry.reason == "permanent_failure"
    assert entry.details == {"failed_steps": ["a"]}
    assert entry.status == DeadLetterStatus.PENDING
    assert entry.created_at == pytest.approx(backend.now())
    assert entry.snapshot["task"]["task_uuid"] == graph.task.task_uuid
    assert entry.snapshot["task"]["state"] == "blocked_by_failures"
    assert {s["name"]: s["state"] for s in entry.snapshot["steps"]} == {
        "a": "error",
        "b": "pending",
    }


async def test_resolve_dead_letter_marks_it_resolved(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    blocked, other = make_graph(["a"]), make_graph(["a"])
    for graph in (blocked, other):
        await started(backend, graph)
        await _block(backend, graph)
    [first, second] = await store.dead_letters()
    assert first.task_uuid == blocked.task.task_uuid
    await backend.let_time_pass(3)

    resolved = await store.resolve_dead_letter(first.entry_id, resolution="fixed by hand")

    assert resolved.entry_id == first.entry_id
    assert resolved.status == DeadLetterStatus.RESOLVED
    assert resolved.resolution == "fixed by hand"
    assert resolved.resolved_at == pytest.approx(backend.now())
    assert await store.dead_letters() == [second]
    assert await store.dead_letters(include_resolved=True) == [resolved, second]


async def test_resolve_unknown_dead_letter_raises(backend: Backend) -> None:
    with pytest.raises(DeadLetterNotFound):
        await backend.store.resolve_dead_letter("no-such-entry", resolution="?")


async def test_unknown_ids_raise_not_found(backend: Backend) -> None:
    store = backend.store
    with pytest.raises(TaskNotFound):
        await store.get_task("no-such-task")
    with pytest.raises(TaskNotFound):
        await store.get_view("no-such-task")
    with pytest.raises(StepNotFound):
        await store.get_step("no-such-step")


# --------------------------------------------------------------------------- wait_for_change


async def test_wait_for_change_wakes_on_a_change_of_the_tasks_state(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a", "b"], [("a", "b")])
    await started(backend, graph)
    [message] = (await read_step_messages(backend.broker)).values()
    woke_at: list[float] = []

    async def waiter() -> None:
        await store.wait_for_change(graph.task.task_uuid, timeout=60)
        woke_at.append(backend.now())

    start = backend.now()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await backend.let_time_pass(2)
        await claim(store, message)  # step-level changes alone do not wake it...
        await backend.let_time_pass(3)
        await record(store, success(graph, "a", 1), message)
        await backend.let_time_pass(4)
        # ...a task transition to another state does (steps_in_process -> waiting).
        await store.apply(graph.task.task_uuid, complete_and_enqueue(graph, "a"))

    assert woke_at == [pytest.approx(start + 9)]


async def test_a_change_between_reading_the_task_and_waiting_still_wakes_the_waiter(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    graph = make_graph(["a"])
    await started(backend, graph)
    [message] = (await read_step_messages(backend.broker)).values()
    await claim(store, message)
    await record(store, success(graph, "a", 1), message)
    changed = store.change_event(graph.task.task_uuid)  # taken before the read...
    task = await store.get_task(graph.task.task_uuid)
    assert task.state == TaskState.STEPS_IN_PROCESS
    # ...and the task moves before the waiter waits.
    await store.apply(graph.task.task_uuid, complete_and_enqueue(graph, "a"))
    start = backend.now()

    seen = await store.wait_for_change(graph.task.task_uuid, timeout=60, event=changed)

    assert backend.now() == pytest.approx(start)
    # The change was made here: the store hands the task over as the change left it.
    assert seen == await store.get_task(graph.task.task_uuid)
    assert seen is not None
    assert seen.state != TaskState.STEPS_IN_PROCESS


async def test_wait_for_change_times_out_when_the_task_does_not_change(
    backend: Backend, autojump_clock: MockClock
) -> None:
    store = backend.store
    quiet, busy = make_graph(["a"]), make_graph(["a"])
    await started(backend, quiet)
    start = backend.now()

    async def change_another_task() -> None:
        await backend.let_time_pass(1)
        await started(backend, busy)
        message = (await read_step_messages(backend.broker))[busy.uuid("a")]
        await claim(store, message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(change_another_task)
        seen = await store.wait_for_change(quiet.task.task_uuid, timeout=LEASE)

    assert backend.now() == pytest.approx(start + LEASE)
    assert seen is None
