"""Unit tests of viable-step discovery and its helpers (semantics §4)."""

from __future__ import annotations

import pytest

from tasker_trio.errors import StepNotFound
from tasker_trio.models.policy import RetryPolicy
from tasker_trio.orchestration.support import (
    StepSnapshot,
    TaskSnapshot,
    blocked_descendants,
    earliest_retry_at,
    failed_steps,
    is_failed,
    is_viable,
    step_facts,
    viable_steps,
)
from tasker_trio.state_machine import StepState

S = StepState
DIAMOND_EDGES = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]


def snap(states: dict[str, StepState], edges: list[tuple[str, str]]) -> TaskSnapshot:
    return TaskSnapshot(
        steps=[StepSnapshot(name=n, state=s) for n, s in states.items()], edges=edges
    )


def names(steps: tuple[StepSnapshot, ...]) -> list[str]:
    return [s.name for s in steps]


# ----------------------------------------------------------------------------- snapshot


def test_snapshot_rejects_duplicate_steps() -> None:
    with pytest.raises(ValueError, match="duplicate step 'a'"):
        TaskSnapshot(steps=[StepSnapshot(name="a"), StepSnapshot(name="a")])


def test_snapshot_rejects_unknown_edge_ends() -> None:
    with pytest.raises(ValueError, match="unknown step 'zz'"):
        snap({"a": S.PENDING}, [("a", "zz")])


def test_snapshot_rejects_cycles() -> None:
    with pytest.raises(ValueError, match=r"cycle among \['a', 'b'\]"):
        snap({"a": S.PENDING, "b": S.PENDING, "c": S.PENDING}, [("a", "b"), ("b", "a")])
    with pytest.raises(ValueError, match="cycle"):
        snap({"a": S.PENDING}, [("a", "a")])


def test_snapshot_graph_queries() -> None:
    t = snap(dict.fromkeys("dcba", S.PENDING), [*DIAMOND_EDGES, ("a", "b")])
    assert t.edges == tuple(DIAMOND_EDGES)  # duplicates dropped
    assert t.parents_of("d") == ("b", "c")
    assert t.children_of("a") == ("b", "c")
    assert t.topological_order == ("a", "c", "b", "d")  # ties in step order: c before b
    assert t.step("b").state is S.PENDING
    with pytest.raises(StepNotFound):
        t.step("nope")
    with pytest.raises(StepNotFound):
        t.parents_of("nope")


def test_state_strings_are_converted() -> None:
    assert StepSnapshot(name="a", state="complete").state is S.COMPLETE


def test_with_step_replaces_one_step() -> None:
    t = snap({"a": S.PENDING, "b": S.PENDING}, [("a", "b")])
    t2 = t.with_step(StepSnapshot(name="a", state=S.COMPLETE))
    assert t2.step("a").state is S.COMPLETE
    assert t.step("a").state is S.PENDING
    assert names(viable_steps(t2, 0.0)) == ["b"]
    with pytest.raises(StepNotFound):
        t.with_step(StepSnapshot(name="zz"))


def test_step_facts() -> None:
    t = TaskSnapshot(
        steps=[
            StepSnapshot(name="a", state=S.COMPLETE),
            StepSnapshot(
                name="b",
                state=S.WAITING_FOR_RETRY,
                attempts=2,
                policy=RetryPolicy(max_attempts=5, retryable=True),
                next_retry_at=9.0,
            ),
        ],
        edges=[("a", "b")],
    )
    f = step_facts(t, "b", 7.0)
    assert (f.parents_satisfied, f.attempts, f.max_attempts, f.now, f.next_retry_at) == (
        True,
        2,
        5,
        7.0,
        9.0,
    )


# ----------------------------------------------------------------------------- readiness


@pytest.mark.parametrize(
    ("state", "ready"),
    [
        (S.PENDING, True),
        (S.WAITING_FOR_RETRY, True),
        (S.ENQUEUED, False),
        (S.IN_PROGRESS, False),
        (S.ENQUEUED_FOR_ORCHESTRATION, False),
        (S.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION, False),
        (S.COMPLETE, False),
        (S.ERROR, False),
        (S.CANCELLED, False),
        (S.RESOLVED_MANUALLY, False),
    ],
)
def test_readiness_of_each_state(state: StepState, ready: bool) -> None:
    attempts = 1 if state is S.WAITING_FOR_RETRY else 0
    t = TaskSnapshot(steps=[StepSnapshot(name="x", state=state, attempts=attempts)])
    assert is_viable(t, "x", 0.0) is ready
    assert names(viable_steps(t, 0.0)) == (["x"] if ready else [])


@pytest.mark.parametrize(
    ("parent", "ready"),
    [(s, s in (S.COMPLETE, S.RESOLVED_MANUALLY)) for s in StepState],
)
def test_child_is_ready_only_when_parent_satisfies(parent: StepState, ready: bool) -> None:
    t = snap({"p": parent, "c": S.PENDING}, [("p", "c")])
    assert is_viable(t, "c", 0.0) is ready


def test_backoff_must_have_elapsed() -> None:
    step = StepSnapshot(name="x", state=S.WAITING_FOR_RETRY, attempts=1, next_retry_at=10.0)
    t = TaskSnapshot(steps=[step])
    assert not viable_steps(t, 9.999)
    assert names(viable_steps(t, 10.0)) == ["x"]
    assert names(viable_steps(t, 11.0)) == ["x"]


@pytest.mark.parametrize(
    ("policy", "attempts", "ready"),
    [
        (RetryPolicy(max_attempts=3), 0, True),
        (RetryPolicy(max_attempts=3), 2, True),
        (RetryPolicy(max_attempts=3), 3, False),
        (RetryPolicy(max_attempts=1), 1, False),
        (RetryPolicy(retryable=False, max_attempts=3), 0, True),
        (RetryPolicy(retryable=False, max_attempts=3), 1, False),
    ],
)
def test_attempts_must_be_left(policy: RetryPolicy, attempts: int, ready: bool) -> None:
    step = StepSnapshot(name="x", state=S.WAITING_FOR_RETRY, attempts=attempts, policy=policy)
    t = TaskSnapshot(steps=[step])
    assert is_viable(t, "x", 0.0) is ready
    # A waiting step without an attempt left can never move: it counts as failed.
    assert is_failed(t, "x") is (not ready)


def test_diamond_runs_in_waves() -> None:
    states = dict.fromkeys("abcd", S.PENDING)
    assert names(viable_steps(snap(states, DIAMOND_EDGES), 0)) == ["a"]
    states["a"] = S.COMPLETE
    assert names(viable_steps(snap(states, DIAMOND_EDGES), 0)) == ["b", "c"]
    states["b"] = S.COMPLETE
    states["c"] = S.IN_PROGRESS
    assert names(viable_steps(snap(states, DIAMOND_EDGES), 0)) == []
    states["c"] = S.RESOLVED_MANUALLY
    assert names(viable_steps(snap(states, DIAMOND_EDGES), 0)) == ["d"]


def test_fan_out_reports_in_step_order() -> None:
    states = {"root": S.COMPLETE} | dict.fromkeys(["z", "y", "x", "w"], S.PENDING)
    edges = [("root", n) for n in "wxyz"]
    assert names(viable_steps(snap(states, edges), 0)) == ["z", "y", "x", "w"]


def test_no_steps_nothing_viable() -> None:
    t = TaskSnapshot(steps=[])
    assert viable_steps(t, 0) == ()
    assert failed_steps(t) == ()
    assert blocked_descendants(t) == ()
    assert earliest_retry_at(t) is None


# ----------------------------------------------------------------------------- failures


def test_blocked_descendants_of_an_error_in_a_diamond() -> None:
    states = {"a": S.COMPLETE, "b": S.ERROR, "c": S.COMPLETE, "d": S.PENDING}
    t = snap(states, DIAMOND_EDGES)
    assert names(failed_steps(t)) == ["b"]
    assert names(blocked_descendants(t)) == ["d"]


def test_blocked_is_transitive_and_spares_other_branches() -> None:
    states = {
        "root": S.COMPLETE,
        "bad": S.CANCELLED,
        "mid": S.PENDING,
        "leaf": S.PENDING,
        "other": S.PENDING,
        "other_leaf": S.PENDING,
    }
    edges = [("root", "bad"), ("bad", "mid"), ("mid", "leaf"), ("root", "other")]
    edges.append(("other", "other_leaf"))
    t = snap(states, edges)
    assert names(blocked_descendants(t)) == ["mid", "leaf"]
    assert names(viable_steps(t, 0)) == ["other"]


def test_descendant_behind_a_completed_step_is_not_blocked() -> None:
    # An operator completed "mid" by hand; "leaf" only needs "mid".
    states = {"bad": S.ERROR, "mid": S.COMPLETE, "leaf": S.PENDING}
    t = snap(states, [("bad", "mid"), ("mid", "leaf")])
    assert blocked_descendants(t) == ()
    assert names(viable_steps(t, 0)) == ["leaf"]


def test_exhausted_step_blocks_its_children() -> None:
    t = TaskSnapshot(
        steps=[
            StepSnapshot(name="a", state=S.PENDING, attempts=1, policy=RetryPolicy(max_attempts=1)),
            StepSnapshot(name="b"),
        ],
        edges=[("a", "b")],
    )
    assert names(failed_steps(t)) == ["a"]
    assert names(blocked_descendants(t)) == ["b"]


# ----------------------------------------------------------------------------- retry timer


def test_earliest_retry_at_ignores_unsatisfied_exhausted_and_other_states() -> None:
    t = TaskSnapshot(
        steps=[
            StepSnapshot(name="p", state=S.IN_PROGRESS),
            StepSnapshot(name="w1", state=S.WAITING_FOR_RETRY, attempts=1, next_retry_at=50.0),
            StepSnapshot(name="w2", state=S.WAITING_FOR_RETRY, attempts=1, next_retry_at=20.0),
            StepSnapshot(name="under_p", state=S.PENDING, next_retry_at=5.0),
            StepSnapshot(
                name="spent",
                state=S.WAITING_FOR_RETRY,
                attempts=3,
                next_retry_at=1.0,
            ),
            StepSnapshot(name="done", state=S.COMPLETE, next_retry_at=2.0),
        ],
        edges=[("p", "under_p")],
    )
    assert earliest_retry_at(t) == 20.0
    assert earliest_retry_at(t.with_step(StepSnapshot(name="p", state=S.COMPLETE))) == 5.0


def test_earliest_retry_at_none_without_timers() -> None:
    t = snap({"a": S.PENDING, "b": S.WAITING_FOR_RETRY}, [])
    assert earliest_retry_at(t) is None
