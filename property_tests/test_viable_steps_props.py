"""Property tests of viable-step discovery and execution status over random DAGs.

A DAG gives each node parents among earlier nodes; steps are listed in a random order. On random
states, discovery, failures, blocked descendants, the retry timer and the status agree with a
plain model of semantics §4 (no proposal has an unsatisfied parent); enqueuing and completing
proposals in any order completes every step, each enqueued once; `DiscoveryMachine` simulates
claims, successes, failures, backoff and time, and its teardown drives the task to rest.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tasker_trio.models.policy import BackoffKind, RetryPolicy
from tasker_trio.orchestration.support import (
    ErrorClassification,
    ExecutionStatus,
    StepSnapshot,
    TaskSnapshot,
    blocked_descendants,
    decide_after_failure,
    earliest_retry_at,
    execution_status,
    failed_steps,
    next_retry_at,
    viable_steps,
)
from tasker_trio.state_machine import StepEvent, StepState

S = StepState
X = ExecutionStatus
SATISFYING = {S.COMPLETE, S.RESOLVED_MANUALLY}
RUNNABLE = {S.PENDING, S.WAITING_FOR_RETRY}
AWAITING = (S.ENQUEUED_FOR_ORCHESTRATION, S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION)
IN_FLIGHT = {S.ENQUEUED, S.IN_PROGRESS, *AWAITING}

Parents = dict[str, list[str]]
Dag = tuple[list[str], Parents]


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 10) -> Dag:
    """Step names in a random order, and each step's parents (all earlier in creation)."""
    n = draw(st.integers(0, max_nodes))
    parents: Parents = {}
    for i in range(n):
        chosen = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        parents[f"s{i}"] = [f"s{j}" for j in sorted(chosen)]
    order = draw(st.permutations(list(parents)))
    return list(order), parents


def edges_of(parents: Parents) -> list[tuple[str, str]]:
    return [(p, child) for child, ps in parents.items() for p in ps]


# ----------------------------------------------------------------------------- plain model


def model_can_run(t: TaskSnapshot, parents: Parents, name: str) -> bool:
    """Runnable state, every parent satisfied, an attempt left (backoff not considered)."""
    s, p = t.step(name), t.step(name).policy
    left = s.attempts == 0 or (p.retryable and s.attempts < p.max_attempts)
    satisfied = all(t.step(q).state in SATISFYING for q in parents[name])
    return s.state in RUNNABLE and left and satisfied


def model_ready(t: TaskSnapshot, parents: Parents, name: str, now: float) -> bool:
    at = t.step(name).next_retry_at
    return model_can_run(t, parents, name) and (at is None or at <= now)


def model_timers(t: TaskSnapshot, parents: Parents) -> list[float]:
    return [
        s.next_retry_at
        for s in t.steps
        if s.next_retry_at is not None and model_can_run(t, parents, s.name)
    ]


def model_failed(step: StepSnapshot) -> bool:
    p = step.policy
    spent = step.attempts > 0 and not (p.retryable and step.attempts < p.max_attempts)
    return step.state in {S.ERROR, S.CANCELLED} or (step.state in RUNNABLE and spent)


def model_blocked(t: TaskSnapshot, parents: Parents, name: str) -> bool:
    s = t.step(name)
    if s.state not in RUNNABLE or model_failed(s):
        return False
    return any(model_failed(t.step(p)) or model_blocked(t, parents, p) for p in parents[name])


def model_status(t: TaskSnapshot, parents: Parents, now: float) -> X:
    if any(model_ready(t, parents, s.name, now) for s in t.steps):
        return X.HAS_READY_STEPS
    if any(s.state in IN_FLIGHT for s in t.steps):
        return X.PROCESSING
    if model_timers(t, parents):
        return X.WAITING_FOR_RETRY
    if any(model_failed(s) for s in t.steps):
        return X.BLOCKED_BY_FAILURES
    if all(s.state in SATISFYING for s in t.steps):
        return X.ALL_COMPLETE
    return X.WAITING_FOR_DEPENDENCIES


random_policies = st.builds(RetryPolicy, retryable=st.booleans(), max_attempts=st.integers(1, 4))


@given(dag=dags(), data=st.data(), now=st.floats(0.0, 10.0))
def test_discovery_matches_the_model_on_random_states(
    dag: Dag, data: st.DataObject, now: float
) -> None:
    order, parents = dag
    steps = [
        StepSnapshot(
            name=n,
            state=data.draw(st.sampled_from(StepState)),
            attempts=data.draw(st.integers(0, 5)),
            policy=data.draw(random_policies),
            next_retry_at=data.draw(st.none() | st.floats(0.0, 10.0)),
        )
        for n in order
    ]
    t = TaskSnapshot(steps=steps, edges=edges_of(parents))
    proposed = [s.name for s in viable_steps(t, now)]
    for name in proposed:
        assert all(t.step(p).state in SATISFYING for p in parents[name]), name
    assert proposed == [n for n in order if model_ready(t, parents, n, now)]
    assert [s.name for s in failed_steps(t)] == [n for n in order if model_failed(t.step(n))]
    assert [s.name for s in blocked_descendants(t)] == [
        n for n in order if model_blocked(t, parents, n)
    ]
    assert earliest_retry_at(t) == min(model_timers(t, parents), default=None)
    assert execution_status(t, now) is model_status(t, parents, now)
    position = {n: i for i, n in enumerate(t.topological_order)}
    assert all(position[p] < position[c] for p, c in t.edges)  # parents first


@given(dag=dags(max_nodes=12), data=st.data())
def test_executing_proposals_in_any_order_completes_the_graph(
    dag: Dag, data: st.DataObject
) -> None:
    order, parents = dag
    t = TaskSnapshot(steps=[StepSnapshot(name=n) for n in order], edges=edges_of(parents))
    enqueued: list[str] = []
    while True:
        proposals = [s.name for s in viable_steps(t, 0.0)]
        assert not set(proposals) & set(enqueued), "an enqueued step was proposed again"
        in_flight = [s.name for s in t.steps if s.state is S.ENQUEUED]
        if not proposals + in_flight:
            break
        name = data.draw(st.sampled_from(proposals + in_flight))
        done = name in in_flight
        t = t.with_step(StepSnapshot(name=name, state=S.COMPLETE if done else S.ENQUEUED))
        enqueued += [] if done else [name]
    assert sorted(enqueued) == sorted(order)
    assert all(s.state is S.COMPLETE for s in t.steps)
    assert execution_status(t, 0.0) is X.ALL_COMPLETE


# ----------------------------------------------------------------------------- simulation

PERMANENT = ErrorClassification(error_type="PermanentError", message="no", retryable=False)
RETRYABLE = ErrorClassification(error_type="RetryableError", message="again", retryable=True)


class DiscoveryMachine(RuleBasedStateMachine):
    """Runs one task by discovery alone: enqueue proposals, claim, succeed or fail, wait."""

    def __init__(self) -> None:
        super().__init__()
        self.parents: Parents = {}
        self.task = TaskSnapshot(steps=[])
        self.now = 0.0
        self.enqueues: dict[str, int] = {}
        self.pending_error: dict[str, ErrorClassification] = {}

    def _names(self, *states: StepState) -> list[str]:
        return [s.name for s in self.task.steps if s.state in states]

    def _set(self, name: str, **changes: Any) -> None:
        self.task = self.task.with_step(attrs.evolve(self.task.step(name), **changes))

    def _enqueue(self, name: str) -> None:
        assert model_ready(self.task, self.parents, name, self.now)
        self.enqueues[name] += 1
        self._set(name, state=S.ENQUEUED)

    def _orchestrate(self, name: str) -> None:
        step = self.task.step(name)
        if step.state is S.ENQUEUED_FOR_ORCHESTRATION:
            self._set(name, state=S.COMPLETE)
            return
        event = decide_after_failure(step.policy, step.attempts, self.pending_error.pop(name))
        if event is StepEvent.FAIL:
            self._set(name, state=S.ERROR)
        else:
            at = next_retry_at(self.now, step.policy, step.attempts)
            self._set(name, state=S.WAITING_FOR_RETRY, next_retry_at=at)

    @initialize(dag=dags(), data=st.data())
    def build(self, dag: Dag, data: st.DataObject) -> None:
        order, self.parents = dag
        policy = st.builds(
            RetryPolicy,
            max_attempts=st.integers(1, 3),
            backoff=st.sampled_from(BackoffKind),
            backoff_base_ms=st.integers(0, 2000),
            max_backoff_ms=st.integers(0, 5000),
        )
        steps = [StepSnapshot(name=n, policy=data.draw(policy, label=n)) for n in order]
        self.task = TaskSnapshot(steps=steps, edges=edges_of(self.parents))
        self.enqueues = dict.fromkeys(order, 0)

    @precondition(lambda self: bool(viable_steps(self.task, self.now)))
    @rule(data=st.data())
    def enqueue_one(self, data: st.DataObject) -> None:
        proposals = [s.name for s in viable_steps(self.task, self.now)]
        self._enqueue(data.draw(st.sampled_from(proposals)))

    @precondition(lambda self: self._names(S.ENQUEUED))
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self._names(S.ENQUEUED)))
        self._set(name, state=S.IN_PROGRESS, attempts=self.task.step(name).attempts + 1)

    @precondition(lambda self: self._names(S.IN_PROGRESS))
    @rule(data=st.data(), outcome=st.sampled_from(["success", "retryable", "permanent"]))
    def finish(self, data: st.DataObject, outcome: str) -> None:
        name = data.draw(st.sampled_from(self._names(S.IN_PROGRESS)))
        if outcome == "success":
            self._set(name, state=S.ENQUEUED_FOR_ORCHESTRATION)
            return
        self.pending_error[name] = RETRYABLE if outcome == "retryable" else PERMANENT
        self._set(name, state=S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION)

    @precondition(lambda self: self._names(*AWAITING))
    @rule(data=st.data())
    def orchestrate(self, data: st.DataObject) -> None:
        self._orchestrate(data.draw(st.sampled_from(self._names(*AWAITING))))

    @rule(dt=st.floats(0.0, 3.0))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @invariant()
    def proposals_are_ready_and_not_in_flight(self) -> None:
        for step in viable_steps(self.task, self.now):
            assert step.state in RUNNABLE, "an enqueued (or finished) step was proposed"
            assert all(self.task.step(p).state in SATISFYING for p in self.parents[step.name])
            assert model_ready(self.task, self.parents, step.name, self.now)

    @invariant()
    def each_step_enqueued_at_most_max_attempts_times(self) -> None:
        for step in self.task.steps:
            assert self.enqueues[step.name] <= step.policy.max_attempts
            assert step.attempts <= step.policy.max_attempts

    @invariant()
    def status_agrees_with_the_model_and_is_never_stuck(self) -> None:
        status = execution_status(self.task, self.now)
        assert status is model_status(self.task, self.parents, self.now)
        # From a real execution some rule can always move the task, unless it is at rest.
        assert status is not X.WAITING_FOR_DEPENDENCIES
        if status is X.BLOCKED_BY_FAILURES:
            assert self._names(S.ERROR)

    def teardown(self) -> None:
        """Drive the task to rest with successes only; it must end complete or blocked."""
        for _ in range(10 * len(self.task.steps) + 10):
            for step in viable_steps(self.task, self.now):
                self._enqueue(step.name)
            for name in self._names(S.ENQUEUED):
                self._set(name, state=S.IN_PROGRESS, attempts=self.task.step(name).attempts + 1)
            for name in self._names(S.IN_PROGRESS):
                self._set(name, state=S.ENQUEUED_FOR_ORCHESTRATION)
            for name in self._names(*AWAITING):
                self._orchestrate(name)
            status = execution_status(self.task, self.now)
            if status in (X.ALL_COMPLETE, X.BLOCKED_BY_FAILURES):
                break
            if status is X.WAITING_FOR_RETRY:  # sleep until the earliest timer
                self.now = max(self.now, earliest_retry_at(self.task) or 0.0)
        status, errored = execution_status(self.task, self.now), set(self._names(S.ERROR))
        blocked = {s.name for s in blocked_descendants(self.task)}
        unfinished = {s.name for s in self.task.steps if s.state is not S.COMPLETE}
        assert unfinished == errored | blocked
        assert status is (X.BLOCKED_BY_FAILURES if errored else X.ALL_COMPLETE)


TestDiscoveryMachine = DiscoveryMachine.TestCase
