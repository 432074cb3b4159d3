"""Unit tests of the task execution status and its task event (semantics §4)."""

from __future__ import annotations

import pytest

from tasker_trio.models.policy import RetryPolicy
from tasker_trio.orchestration.support import (
    ExecutionStatus,
    StepSnapshot,
    TaskSnapshot,
    execution_status,
    task_event_for,
)
from tasker_trio.state_machine import TASK_TRANSITIONS, StepState, TaskEvent, TaskState

S = StepState
X = ExecutionStatus


def step(name: str, state: StepState = S.PENDING, **kw: object) -> StepSnapshot:
    return StepSnapshot(name=name, state=state, **kw)  # type: ignore[arg-type]


def status(steps: list[StepSnapshot], edges: list[tuple[str, str]], now: float = 0.0) -> X:
    return execution_status(TaskSnapshot(steps=steps, edges=edges), now)


def retrying(name: str, at: float) -> StepSnapshot:
    return step(name, S.WAITING_FOR_RETRY, attempts=1, next_retry_at=at)


def test_zero_steps_is_all_complete() -> None:
    assert status([], []) is X.ALL_COMPLETE


def test_all_complete_or_resolved() -> None:
    assert status([step("a", S.COMPLETE), step("b", S.RESOLVED_MANUALLY)], []) is X.ALL_COMPLETE


def test_fresh_task_has_ready_steps() -> None:
    assert status([step("a"), step("b")], [("a", "b")]) is X.HAS_READY_STEPS


@pytest.mark.parametrize(
    "state",
    [
        S.ENQUEUED,
        S.IN_PROGRESS,
        S.ENQUEUED_FOR_ORCHESTRATION,
        S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION,
    ],
)
def test_in_flight_step_is_processing(state: StepState) -> None:
    assert status([step("a", state), step("b")], [("a", "b")]) is X.PROCESSING


def test_ready_beats_processing() -> None:
    assert status([step("a", S.IN_PROGRESS), step("b")], []) is X.HAS_READY_STEPS


def test_backoff_pending_is_waiting_for_retry() -> None:
    assert status([retrying("a", 10.0), step("b")], [("a", "b")], now=5.0) is X.WAITING_FOR_RETRY


def test_elapsed_backoff_is_ready() -> None:
    assert status([retrying("a", 10.0)], [], now=10.0) is X.HAS_READY_STEPS


def test_processing_beats_waiting_for_retry() -> None:
    assert status([retrying("a", 10.0), step("b", S.IN_PROGRESS)], [], 0.0) is X.PROCESSING


def test_error_with_nothing_else_is_blocked() -> None:
    steps = [step("a", S.ERROR), step("b")]
    assert status(steps, [("a", "b")]) is X.BLOCKED_BY_FAILURES


def test_cancelled_step_blocks_too() -> None:
    assert status([step("a", S.CANCELLED), step("b", S.COMPLETE)], []) is X.BLOCKED_BY_FAILURES


def test_exhausted_waiting_step_is_blocked_not_parked() -> None:
    spent = step("a", S.WAITING_FOR_RETRY, attempts=2, policy=RetryPolicy(max_attempts=2))
    assert status([spent], [], now=100.0) is X.BLOCKED_BY_FAILURES


def test_independent_branch_keeps_running_while_another_is_in_error() -> None:
    # root -> bad -> bad_child ; root -> good -> good_child
    edges = [("root", "bad"), ("bad", "bad_child"), ("root", "good"), ("good", "good_child")]

    def at(good: StepState, good_child: StepState, now: float = 0.0) -> X:
        steps = [
            step("root", S.COMPLETE),
            step("bad", S.ERROR),
            step("bad_child"),
            step("good", good),
            step("good_child", good_child),
        ]
        return status(steps, edges, now)

    assert at(S.PENDING, S.PENDING) is X.HAS_READY_STEPS
    assert at(S.IN_PROGRESS, S.PENDING) is X.PROCESSING
    assert at(S.COMPLETE, S.PENDING) is X.HAS_READY_STEPS
    assert at(S.COMPLETE, S.ENQUEUED_FOR_ORCHESTRATION) is X.PROCESSING
    assert at(S.WAITING_FOR_RETRY, S.PENDING) is X.HAS_READY_STEPS  # no timer: ready
    assert at(S.COMPLETE, S.COMPLETE) is X.BLOCKED_BY_FAILURES  # only now


def test_waiting_for_retry_beats_blocked() -> None:
    steps = [step("bad", S.ERROR), retrying("other", 30.0)]
    assert status(steps, [], now=1.0) is X.WAITING_FOR_RETRY


def test_waiting_child_of_a_failed_parent_is_not_waiting_for_retry() -> None:
    # A timer on a step whose parent failed never leads anywhere: the task is blocked.
    steps = [step("bad", S.ERROR), step("c", S.PENDING, next_retry_at=30.0)]
    assert status(steps, [("bad", "c")], now=1.0) is X.BLOCKED_BY_FAILURES


def test_status_is_a_function_of_now() -> None:
    steps = [retrying("a", 5.0)]
    assert status(steps, [], now=4.0) is X.WAITING_FOR_RETRY
    assert status(steps, [], now=5.0) is X.HAS_READY_STEPS


@pytest.mark.parametrize(
    ("status_", "event"),
    [
        (X.HAS_READY_STEPS, TaskEvent.READY_STEPS_FOUND),
        (X.PROCESSING, TaskEvent.NO_DEPENDENCIES_READY),
        (X.WAITING_FOR_RETRY, TaskEvent.RETRY_PENDING),
        (X.BLOCKED_BY_FAILURES, TaskEvent.PERMANENT_FAILURE),
        (X.ALL_COMPLETE, TaskEvent.ALL_STEPS_SUCCESSFUL),
        (X.WAITING_FOR_DEPENDENCIES, TaskEvent.NO_DEPENDENCIES_READY),
    ],
)
def test_task_event_for(status_: X, event: TaskEvent) -> None:
    assert task_event_for(status_) is event


@pytest.mark.parametrize("status_", list(ExecutionStatus))
def test_every_status_event_is_legal_from_evaluating_results(status_: X) -> None:
    assert (TaskState.EVALUATING_RESULTS, task_event_for(status_)) in TASK_TRANSITIONS


def test_status_values_and_order() -> None:
    assert [s.value for s in ExecutionStatus] == [
        "has_ready_steps",
        "processing",
        "waiting_for_retry",
        "blocked_by_failures",
        "all_complete",
        "waiting_for_dependencies",
    ]
