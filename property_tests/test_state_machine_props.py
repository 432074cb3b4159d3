"""Stateful tests of the task and step state machines: the real log against a plain model.

The model is written independently of the tables in ``tasker_trio/state_machine/``: the
transitions are spelled out below as text, the way semantics §2-3 gives them, so a wrong
table entry and a wrong model would have to agree by accident for a bug to slip through.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from tasker_trio.errors import InvalidTransition
from tasker_trio.models import EntityKind, TransitionLog
from tasker_trio.state_machine import (
    StepEvent,
    StepFacts,
    StepState,
    TaskEvent,
    TaskState,
    transition,
)

TASK_SPEC = """
pending start initializing
initializing ready_steps_found enqueuing_steps
initializing no_steps_found complete
initializing no_dependencies_ready waiting_for_dependencies
enqueuing_steps steps_enqueued steps_in_process
enqueuing_steps enqueue_failed error
steps_in_process step_completed evaluating_results
steps_in_process all_steps_completed evaluating_results
steps_in_process step_failed waiting_for_retry
evaluating_results all_steps_successful complete
evaluating_results ready_steps_found enqueuing_steps
evaluating_results no_dependencies_ready waiting_for_dependencies
evaluating_results permanent_failure blocked_by_failures
evaluating_results retry_pending waiting_for_retry
waiting_for_dependencies dependencies_ready evaluating_results
waiting_for_retry retry_ready enqueuing_steps
waiting_for_retry dependencies_ready evaluating_results
blocked_by_failures give_up error
blocked_by_failures manual_resolution resolved_manually
blocked_by_failures steps_reset evaluating_results
"""
TASK_TERMINAL = {"complete", "error", "cancelled", "resolved_manually"}

STEP_SPEC = """
pending enqueue enqueued
waiting_for_retry enqueue enqueued
enqueued start in_progress
in_progress start in_progress
in_progress submit_success enqueued_for_orchestration
in_progress submit_failure enqueued_as_error_for_orchestration
enqueued_for_orchestration complete complete
enqueued_as_error_for_orchestration wait_for_retry waiting_for_retry
enqueued_as_error_for_orchestration fail error
pending fail error
enqueued fail error
in_progress fail error
error reset pending
"""
STEP_TERMINAL = {"complete", "error", "cancelled", "resolved_manually"}
STEP_OPERATOR_FROM_ERROR = {"reset", "resolve_manually", "complete_manually"}


def _parse(spec: str) -> dict[tuple[str, str], str]:
    rows = (line.split() for line in spec.strip().splitlines())
    return {(src, event): dst for src, event, dst in rows}


def task_model(state: str, event: str) -> str | None:
    """What semantics §2 says ``event`` does in ``state`` (``None``: illegal)."""
    if event == "cancel":
        return None if state in TASK_TERMINAL else "cancelled"
    return _parse(TASK_SPEC).get((state, event))


def step_model(state: str, event: str, facts: StepFacts) -> str | None:
    """What semantics §3 says ``event`` does in ``state`` given ``facts`` (``None``: illegal)."""
    if event == "cancel":
        return None if state in STEP_TERMINAL else "cancelled"
    if event in ("resolve_manually", "complete_manually"):
        if state in STEP_TERMINAL and state != "error":
            return None
        return "resolved_manually" if event == "resolve_manually" else "complete"
    target = _parse(STEP_SPEC).get((state, event))
    if target is None:
        return None
    f = facts
    allowed = {
        ("pending", "enqueue"): _ready(f),
        ("waiting_for_retry", "enqueue"): _ready(f),
        ("enqueued", "start"): f.attempts < f.max_attempts,
        ("in_progress", "start"): f.lease_expires_at is not None
        and f.lease_expires_at <= f.now
        and f.attempts < f.max_attempts,
        ("in_progress", "submit_success"): f.result_attempt == f.attempts,
        ("in_progress", "submit_failure"): f.result_attempt == f.attempts,
        ("enqueued_as_error_for_orchestration", "wait_for_retry"): f.retryable
        and f.error_retryable
        and f.attempts < f.max_attempts,
    }.get((state, event), True)
    return target if allowed else None


def _ready(f: StepFacts) -> bool:
    attempts_ok = f.attempts == 0 or (f.retryable and f.attempts < f.max_attempts)
    backoff_ok = f.next_retry_at is None or f.next_retry_at <= f.now
    return f.parents_satisfied and attempts_ok and backoff_ok


step_facts = st.builds(
    StepFacts,
    parents_satisfied=st.booleans(),
    attempts=st.integers(0, 5),
    max_attempts=st.integers(1, 5),
    retryable=st.booleans(),
    now=st.floats(0, 100),
    next_retry_at=st.none() | st.floats(0, 100),
    lease_expires_at=st.none() | st.floats(0, 100),
    result_attempt=st.none() | st.integers(0, 5),
    error_retryable=st.booleans(),
)


@st.composite
def boundary_facts(draw: st.DrawFn) -> StepFacts:
    """Facts at the edges of every guard: attempts beside the limit, deadlines equal to now."""
    max_attempts = draw(st.integers(1, 4))
    attempts = draw(st.sampled_from([0, max_attempts - 1, max_attempts, max_attempts + 1]))
    now = 10.0
    return StepFacts(
        parents_satisfied=draw(st.booleans()),
        attempts=max(attempts, 0),
        max_attempts=max_attempts,
        retryable=draw(st.booleans()),
        now=now,
        next_retry_at=draw(st.sampled_from([None, now, now + 0.001])),
        lease_expires_at=draw(st.sampled_from([None, now, now + 0.001])),
        result_attempt=draw(st.sampled_from([None, attempts - 1, attempts, attempts + 1])),
        error_retryable=draw(st.booleans()),
    )


class _LogInvariants(RuleBasedStateMachine):
    """Invariants every transition log keeps, whatever the machine."""

    kind: EntityKind

    def __init__(self) -> None:
        super().__init__()
        self.log = TransitionLog()
        self.model_states: dict[str, str] = {}
        self.clock = 0.0

    def tick(self) -> float:
        self.clock += 1.0
        return self.clock

    @invariant()
    def sort_keys_count_up_and_one_is_most_recent(self) -> None:
        for entity_id in self.model_states:
            history = self.log.history(entity_id, self.kind)
            assert [r.sort_key for r in history] == list(range(1, len(history) + 1))
            if history:
                assert [r.most_recent for r in history].count(True) == 1
                assert history[-1].most_recent
                for before, after in itertools.pairwise(history):
                    assert before.to_state == after.from_state

    @invariant()
    def real_state_matches_model(self) -> None:
        for entity_id, expected in self.model_states.items():
            assert str(self.state_of(entity_id)) == expected

    def state_of(self, entity_id: str) -> object:
        raise NotImplementedError


class TaskMachineComparison(_LogInvariants):
    """Random legal and illegal task events against the model of semantics §2."""

    kind = EntityKind.TASK
    tasks = Bundle("tasks")

    def state_of(self, entity_id: str) -> object:
        return self.log.state_of_task(entity_id)

    @rule(target=tasks)
    def new_task(self) -> str:
        task_uuid = f"task-{len(self.model_states)}"
        self.model_states[task_uuid] = "pending"
        return task_uuid

    @rule(task=tasks, event=st.sampled_from(TaskEvent))
    def fire(self, task: str, event: TaskEvent) -> None:
        before = self.model_states[task]
        expected = task_model(before, event.value)
        records_before = len(self.log.records())
        if expected is None:
            with pytest.raises(InvalidTransition) as info:
                self.log.apply_task(task, event, at=self.tick())
            assert info.value.state == before
            assert info.value.event == event.value
            assert len(self.log.records()) == records_before
        else:
            record = self.log.apply_task(task, event, at=self.tick())
            assert (record.from_state, record.event, record.to_state) == (before, event, expected)
            self.model_states[task] = expected

    @precondition(lambda self: any(s not in TASK_TERMINAL for s in self.model_states.values()))
    @rule(data=st.data())
    def cancel_any_live_task(self, data: st.DataObject) -> None:
        live = sorted(t for t, s in self.model_states.items() if s not in TASK_TERMINAL)
        task = data.draw(st.sampled_from(live))
        assert self.log.apply_task(task, TaskEvent.CANCEL, at=self.tick()).to_state == "cancelled"
        self.model_states[task] = "cancelled"

    @invariant()
    def nothing_leaves_a_terminal_state(self) -> None:
        for record in self.log.records():
            assert record.from_state not in TASK_TERMINAL


class StepMachineComparison(_LogInvariants):
    """Random legal and illegal step events, with random guard facts, against §3's model."""

    kind = EntityKind.STEP
    steps = Bundle("steps")

    def state_of(self, entity_id: str) -> object:
        return self.log.state_of_step(entity_id)

    @rule(target=steps)
    def new_step(self) -> str:
        step_uuid = f"step-{len(self.model_states)}"
        self.model_states[step_uuid] = "pending"
        return step_uuid

    @rule(step=steps, event=st.sampled_from(StepEvent), facts=st.none() | step_facts)
    def fire(self, step: str, event: StepEvent, facts: StepFacts | None) -> None:
        before = self.model_states[step]
        # Without facts, guards are the caller's business: the model allows what the table does.
        model_facts = facts if facts is not None else _always_pass(before, event)
        expected = step_model(before, event.value, model_facts)
        records_before = len(self.log.records())
        if expected is None:
            with pytest.raises(InvalidTransition):
                self.log.apply_step(step, event, at=self.tick(), facts=facts)
            assert len(self.log.records()) == records_before
            assert self.log.state_of_step(step) == StepState(before)
        else:
            record = self.log.apply_step(step, event, at=self.tick(), facts=facts)
            assert record.to_state == expected
            self.model_states[step] = expected

    @rule(step=steps, data=st.data(), facts=boundary_facts())
    def fire_a_listed_event_at_a_boundary(
        self, step: str, data: st.DataObject, facts: StepFacts
    ) -> None:
        """Walk deep into the machine with events the model lists for the current state, under
        facts at the edges of every guard (where guards are most often wrong)."""
        state = self.model_states[step]
        listed = sorted(e for (src, e) in _parse(STEP_SPEC) if src == state)
        if not listed:
            return
        event = data.draw(st.sampled_from(listed))
        self.fire(step, StepEvent(event), facts)

    @precondition(lambda self: any(s not in STEP_TERMINAL for s in self.model_states.values()))
    @rule(data=st.data())
    def cancel_any_live_step(self, data: st.DataObject) -> None:
        live = sorted(t for t, s in self.model_states.items() if s not in STEP_TERMINAL)
        step = data.draw(st.sampled_from(live))
        assert self.log.apply_step(step, StepEvent.CANCEL, at=self.tick()).to_state == "cancelled"
        self.model_states[step] = "cancelled"

    @invariant()
    def only_operators_leave_error_and_nothing_leaves_other_terminals(self) -> None:
        for record in self.log.records():
            if record.from_state == "error":
                assert record.event in STEP_OPERATOR_FROM_ERROR
            else:
                assert record.from_state not in STEP_TERMINAL


def _always_pass(state: str, event: StepEvent) -> StepFacts:
    """Facts under which every guard holds (used when the caller passes none)."""
    del state
    return StepFacts(
        parents_satisfied=True,
        attempts=1 if event != StepEvent.ENQUEUE else 0,
        max_attempts=5,
        retryable=True,
        now=10.0,
        lease_expires_at=0.0,
        result_attempt=1,
    )


TestTaskMachine = TaskMachineComparison.TestCase
TestStepMachine = StepMachineComparison.TestCase


@pytest.mark.parametrize("state", list(StepState))
@given(event=st.sampled_from(StepEvent), facts=boundary_facts() | step_facts)
def test_every_step_transition_and_guard_matches_the_model(
    state: StepState, event: StepEvent, facts: StepFacts
) -> None:
    """Each (state, event) pair with guard facts at and around their edges, one at a time."""
    expected = step_model(state.value, event.value, facts)
    if expected is None:
        with pytest.raises(InvalidTransition):
            transition(state, event, facts=facts)
    else:
        assert transition(state, event, facts=facts) == StepState(expected)


@pytest.mark.parametrize("state", list(TaskState))
@pytest.mark.parametrize("event", list(TaskEvent))
def test_every_task_transition_matches_the_model(state: TaskState, event: TaskEvent) -> None:
    """Each (state, event) pair of the task machine, exhaustively."""
    expected = task_model(state.value, event.value)
    if expected is None:
        with pytest.raises(InvalidTransition):
            transition(state, event)
    else:
        assert transition(state, event) == TaskState(expected)
