"""The task and step machines: tables, guards and the errors they raise."""

from __future__ import annotations

import ast
import enum
import inspect
import itertools
import textwrap

import pytest

from tasker_trio.errors import InvalidTransition
from tasker_trio.state_machine import (
    STEP_MACHINE,
    TASK_MACHINE,
    StepEvent,
    StepFacts,
    StepState,
    TaskEvent,
    TaskFacts,
    TaskState,
    transition,
)


def test_the_machines_have_the_documented_sizes() -> None:
    assert len(TaskState) == 12
    assert len(StepState) == 10
    assert {s.value for s in TASK_MACHINE.terminal} == {
        "complete",
        "error",
        "cancelled",
        "resolved_manually",
    }


def documented_members(enum_type: type) -> set[str]:
    """Names of the members followed by a docstring in the enum's source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(enum_type)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    names = set()
    for assign, doc in itertools.pairwise(body):
        if (
            isinstance(assign, ast.Assign)
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
            and doc.value.value.strip()
        ):
            names.add(assign.targets[0].id)  # type: ignore[attr-defined]
    return names


@pytest.mark.parametrize("enum_type", [TaskState, TaskEvent, StepState, StepEvent])
def test_every_state_and_event_has_a_docstring(enum_type: type[enum.Enum]) -> None:
    assert documented_members(enum_type) == {member.name for member in enum_type}


def test_happy_path_of_a_task() -> None:
    path = [
        (TaskEvent.START, TaskState.INITIALIZING),
        (TaskEvent.READY_STEPS_FOUND, TaskState.ENQUEUING_STEPS),
        (TaskEvent.STEPS_ENQUEUED, TaskState.STEPS_IN_PROCESS),
        (TaskEvent.ALL_STEPS_COMPLETED, TaskState.EVALUATING_RESULTS),
        (TaskEvent.ALL_STEPS_SUCCESSFUL, TaskState.COMPLETE),
    ]
    state = TaskState.PENDING
    for event, expected in path:
        state = transition(state, event)
        assert state == expected
    assert state.is_terminal


def test_illegal_event_names_machine_state_and_event() -> None:
    with pytest.raises(InvalidTransition) as info:
        transition(TaskState.COMPLETE, TaskEvent.CANCEL)
    assert (info.value.machine, info.value.state, info.value.event) == (
        "task",
        "complete",
        "cancel",
    )
    assert "'cancel' is not allowed in state 'complete'" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_cancel_is_legal_from_every_non_terminal_state() -> None:
    for state in TaskState:
        if not state.is_terminal:
            assert transition(state, TaskEvent.CANCEL) == TaskState.CANCELLED
    for step_state in StepState:
        if not step_state.is_terminal:
            assert transition(step_state, StepEvent.CANCEL) == StepState.CANCELLED


def test_no_steps_found_completes_only_an_empty_task() -> None:
    assert (
        transition(TaskState.INITIALIZING, TaskEvent.NO_STEPS_FOUND, facts=TaskFacts(step_count=0))
        == TaskState.COMPLETE
    )
    with pytest.raises(InvalidTransition, match="task_has_no_steps"):
        transition(TaskState.INITIALIZING, TaskEvent.NO_STEPS_FOUND, facts=TaskFacts(step_count=2))


def test_mixing_machines_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="different state machines"):
        transition(TaskState.PENDING, StepEvent.ENQUEUE)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("facts", "ready"),
    [
        (StepFacts(parents_satisfied=True), True),
        (StepFacts(parents_satisfied=False), False),
        (StepFacts(attempts=1, max_attempts=3, retryable=True), True),
        (StepFacts(attempts=1, max_attempts=3, retryable=False), False),
        (StepFacts(attempts=3, max_attempts=3), False),
        (StepFacts(attempts=1, next_retry_at=5.0, now=4.9), False),
        (StepFacts(attempts=1, next_retry_at=5.0, now=5.0), True),
    ],
)
def test_enqueue_guard_is_readiness(facts: StepFacts, ready: bool) -> None:
    if ready:
        assert transition(StepState.WAITING_FOR_RETRY, StepEvent.ENQUEUE, facts=facts) == (
            StepState.ENQUEUED
        )
    else:
        with pytest.raises(InvalidTransition, match="step_is_ready"):
            transition(StepState.WAITING_FOR_RETRY, StepEvent.ENQUEUE, facts=facts)


def test_reclaim_needs_an_expired_lease_and_an_attempt_left() -> None:
    expired = StepFacts(attempts=1, max_attempts=3, lease_expires_at=10.0, now=10.0)
    assert transition(StepState.IN_PROGRESS, StepEvent.START, facts=expired) == (
        StepState.IN_PROGRESS
    )
    alive = StepFacts(attempts=1, max_attempts=3, lease_expires_at=10.0, now=9.0)
    with pytest.raises(InvalidTransition, match="reclaim_allowed"):
        transition(StepState.IN_PROGRESS, StepEvent.START, facts=alive)
    exhausted = StepFacts(attempts=3, max_attempts=3, lease_expires_at=1.0, now=9.0)
    with pytest.raises(InvalidTransition):
        transition(StepState.IN_PROGRESS, StepEvent.START, facts=exhausted)
    # ...and then the step can only fail.
    assert transition(StepState.IN_PROGRESS, StepEvent.FAIL) == StepState.ERROR


def test_results_are_fenced_by_attempt() -> None:
    current = StepFacts(attempts=2, result_attempt=2)
    assert transition(StepState.IN_PROGRESS, StepEvent.SUBMIT_SUCCESS, facts=current) == (
        StepState.ENQUEUED_FOR_ORCHESTRATION
    )
    stale = StepFacts(attempts=2, result_attempt=1)
    with pytest.raises(InvalidTransition, match="result_is_current"):
        transition(StepState.IN_PROGRESS, StepEvent.SUBMIT_FAILURE, facts=stale)


def test_failure_retries_only_when_allowed() -> None:
    state = StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION
    ok = StepFacts(attempts=1, max_attempts=3)
    assert transition(state, StepEvent.WAIT_FOR_RETRY, facts=ok) == StepState.WAITING_FOR_RETRY
    for facts in (
        StepFacts(attempts=3, max_attempts=3),
        StepFacts(attempts=1, retryable=False),
        StepFacts(attempts=1, error_retryable=False),
    ):
        with pytest.raises(InvalidTransition, match="retry_allowed"):
            transition(state, StepEvent.WAIT_FOR_RETRY, facts=facts)
    assert transition(state, StepEvent.FAIL) == StepState.ERROR


def test_operator_moves_from_error() -> None:
    assert transition(StepState.ERROR, StepEvent.RESET) == StepState.PENDING
    assert transition(StepState.ERROR, StepEvent.RESOLVE_MANUALLY) == StepState.RESOLVED_MANUALLY
    assert transition(StepState.ERROR, StepEvent.COMPLETE_MANUALLY) == StepState.COMPLETE
    with pytest.raises(InvalidTransition):
        transition(StepState.COMPLETE, StepEvent.RESET)


def test_parents_satisfy_children_only_when_complete_or_resolved() -> None:
    assert {s for s in StepState if s.satisfies_children} == {
        StepState.COMPLETE,
        StepState.RESOLVED_MANUALLY,
    }


def test_allowed_events_follow_the_table() -> None:
    assert set(STEP_MACHINE.allowed_events(StepState.ERROR)) == {
        StepEvent.RESET,
        StepEvent.RESOLVE_MANUALLY,
        StepEvent.COMPLETE_MANUALLY,
    }
    assert TASK_MACHINE.allowed_events(TaskState.COMPLETE) == []
