"""Viable-step discovery: which steps of one task may be enqueued now (semantics §4).

Everything here reads a `TaskSnapshot` — the task's steps (state, attempts, retry policy,
``next_retry_at``) and its edges — and a time ``now``; nothing does I/O. Readiness itself is
the state machine's guard `step_is_ready`, fed one `StepFacts` per candidate, so the store, the
engine and the tests all share one definition.

Results come in the snapshot's step order, so the same snapshot always gives the same answer.
A step is *failed* when it is in error or cancelled, or when it waits (pending or
waiting_for_retry) with no attempt left — such a step can never move without an operator, so
it counts as failed rather than leaving its task parked forever.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

from tasker_trio.errors import StepNotFound
from tasker_trio.models.policy import RetryPolicy
from tasker_trio.state_machine.guards import StepFacts, attempts_left, step_is_ready
from tasker_trio.state_machine.step import StepState

IN_FLIGHT_STATES: frozenset[StepState] = frozenset(
    {
        StepState.ENQUEUED,
        StepState.IN_PROGRESS,
        StepState.ENQUEUED_FOR_ORCHESTRATION,
        StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION,
    }
)
"""States of a step that a worker or orchestration is processing right now."""

RUNNABLE_STATES: frozenset[StepState] = frozenset({StepState.PENDING, StepState.WAITING_FOR_RETRY})
"""States from which a step may be enqueued (when it is ready)."""

FAILED_STATES: frozenset[StepState] = frozenset({StepState.ERROR, StepState.CANCELLED})
"""States of a step that stops its descendants until an operator acts."""


@attrs.frozen(kw_only=True)
class StepSnapshot:
    """What discovery needs to know about one step.

    Attributes:
        name: the step's identifier within its task (its name or its uuid).
        state: its current state.
        attempts: attempts made so far.
        policy: its retry policy (``retryable`` and ``max_attempts`` matter here).
        next_retry_at: when its backoff ends, in seconds on the caller's clock, if any.
    """

    name: str
    state: StepState = attrs.field(default=StepState.PENDING, converter=StepState)
    attempts: int = 0
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    next_retry_at: float | None = None


def _to_steps(steps: Iterable[StepSnapshot]) -> tuple[StepSnapshot, ...]:
    return tuple(steps)


def _to_edges(edges: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(dict.fromkeys((parent, child) for parent, child in edges))


@attrs.frozen(kw_only=True)
class TaskSnapshot:
    """One task's steps and edges, checked to form a DAG.

    Attributes:
        steps: the steps, in the order results are reported.
        edges: ``(parent, child)`` pairs of step names (duplicates are dropped).

    Raises:
        ValueError: a step name repeats, an edge names an unknown step, or the edges form a
            cycle (the message names the steps involved).
    """

    steps: tuple[StepSnapshot, ...] = attrs.field(converter=_to_steps)
    edges: tuple[tuple[str, str], ...] = attrs.field(converter=_to_edges, default=())
    _by_name: Mapping[str, StepSnapshot] = attrs.field(init=False, eq=False, repr=False)
    _parents: Mapping[str, tuple[str, ...]] = attrs.field(init=False, eq=False, repr=False)
    _children: Mapping[str, tuple[str, ...]] = attrs.field(init=False, eq=False, repr=False)
    _order: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        names = tuple(step.name for step in self.steps)
        parents, children, order = _graph(names, self.edges)
        object.__setattr__(self, "_by_name", dict(zip(names, self.steps, strict=True)))
        object.__setattr__(self, "_parents", parents)
        object.__setattr__(self, "_children", children)
        object.__setattr__(self, "_order", order)

    @property
    def topological_order(self) -> tuple[str, ...]:
        """Step names with every parent before its children (ties in step order)."""
        return self._order

    def step(self, name: str) -> StepSnapshot:
        """The step called ``name``.

        Raises:
            StepNotFound: no step has this name.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise StepNotFound(name) from None

    def parents_of(self, name: str) -> tuple[str, ...]:
        """Names of the step's parents (raises `StepNotFound` for an unknown step)."""
        self.step(name)
        return self._parents[name]

    def children_of(self, name: str) -> tuple[str, ...]:
        """Names of the step's children (raises `StepNotFound` for an unknown step)."""
        self.step(name)
        return self._children[name]

    def parents_satisfied(self, name: str) -> bool:
        """Every parent of the step is complete or resolved manually."""
        return all(self._by_name[p].state.satisfies_children for p in self.parents_of(name))

    def with_step(self, step: StepSnapshot) -> TaskSnapshot:
        """A copy with ``step`` replacing the step of the same name (edges unchanged).

        Raises:
            StepNotFound: no step has this name.
        """
        self.step(step.name)
        steps = [step if s.name == step.name else s for s in self.steps]
        return TaskSnapshot(steps=steps, edges=self.edges)


@functools.lru_cache(maxsize=1024)
def _graph(
    names: tuple[str, ...], edges: tuple[tuple[str, str], ...]
) -> tuple[Mapping[str, tuple[str, ...]], Mapping[str, tuple[str, ...]], tuple[str, ...]]:
    """Parents, children and topological order of a graph, checked to be a DAG.

    Cached: a task's graph never changes while its steps' states do, and orchestration builds
    a snapshot of the same task on every result.
    """
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate step {name!r} in task snapshot")
        seen.add(name)
    parents: dict[str, list[str]] = {name: [] for name in names}
    children: dict[str, list[str]] = {name: [] for name in names}
    for parent, child in edges:
        for end in (parent, child):
            if end not in parents:
                raise ValueError(f"edge {parent!r} -> {child!r} names unknown step {end!r}")
        parents[child].append(parent)
        children[parent].append(child)
    frozen_parents, frozen_children = _freeze(parents), _freeze(children)
    return (
        frozen_parents,
        frozen_children,
        _topological_order(names, frozen_parents, frozen_children),
    )


def _topological_order(
    names: tuple[str, ...],
    parents: Mapping[str, tuple[str, ...]],
    children: Mapping[str, tuple[str, ...]],
) -> tuple[str, ...]:
    """Kahn's algorithm; among steps whose parents are done, the earliest in step order."""
    position = {name: index for index, name in enumerate(names)}
    waiting = {name: len(p) for name, p in parents.items()}
    order: list[str] = []
    ready = [(position[name], name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (position[child], child))
    if len(order) != len(names):
        stuck = sorted(name for name, count in waiting.items() if count > 0)
        raise ValueError(f"task snapshot edges form a cycle among {stuck}")
    return tuple(order)


def _freeze(table: dict[str, list[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({name: tuple(names) for name, names in table.items()})


def step_facts(snapshot: TaskSnapshot, name: str, now: float) -> StepFacts:
    """The guard facts of one step at time ``now`` (for `step_is_ready` and friends)."""
    step = snapshot.step(name)
    return StepFacts(
        parents_satisfied=snapshot.parents_satisfied(name),
        attempts=step.attempts,
        max_attempts=step.policy.max_attempts,
        retryable=step.policy.retryable,
        now=now,
        next_retry_at=step.next_retry_at,
    )


def is_viable(snapshot: TaskSnapshot, name: str, now: float) -> bool:
    """The step may be enqueued now: runnable state and the `step_is_ready` guard holds."""
    step = snapshot.step(name)
    return step.state in RUNNABLE_STATES and step_is_ready(step_facts(snapshot, name, now))


def viable_steps(snapshot: TaskSnapshot, now: float) -> tuple[StepSnapshot, ...]:
    """The steps ready to be enqueued at ``now``, in step order.

    A step is ready when it is pending or waiting_for_retry, every parent is complete or
    resolved manually, it has an attempt left, and its backoff (if any) has elapsed.
    """
    return tuple(step for step in snapshot.steps if is_viable(snapshot, step.name, now))


def is_failed(snapshot: TaskSnapshot, name: str) -> bool:
    """The step is in error or cancelled, or waits with no attempt left (see module doc)."""
    step = snapshot.step(name)
    if step.state in FAILED_STATES:
        return True
    return step.state in RUNNABLE_STATES and not attempts_left(step_facts(snapshot, name, 0.0))


def failed_steps(snapshot: TaskSnapshot) -> tuple[StepSnapshot, ...]:
    """The failed steps (see `is_failed`), in step order."""
    return tuple(step for step in snapshot.steps if is_failed(snapshot, step.name))


def blocked_descendants(snapshot: TaskSnapshot) -> tuple[StepSnapshot, ...]:
    """Steps that can never run until an operator acts, because an ancestor failed.

    A step is blocked when it is pending or waiting_for_retry and some parent is failed or
    itself blocked. A descendant reached only through a parent that is complete (or resolved
    manually) is not blocked. Failed steps themselves are not listed. Results in step order.
    """
    blocked: set[str] = set()
    for name in snapshot.topological_order:
        if snapshot.step(name).state not in RUNNABLE_STATES or is_failed(snapshot, name):
            continue
        if any(p in blocked or is_failed(snapshot, p) for p in snapshot.parents_of(name)):
            blocked.add(name)
    return tuple(step for step in snapshot.steps if step.name in blocked)


def earliest_retry_at(snapshot: TaskSnapshot) -> float | None:
    """The earliest ``next_retry_at`` of a step that will be ready once its backoff ends.

    Only steps that are pending or waiting_for_retry, have a ``next_retry_at``, have their
    parents satisfied and have an attempt left count. ``None`` when there is none. The value
    may already have passed (that step is then viable); the engine sleeps until it otherwise.
    """
    times = [
        step.next_retry_at
        for step in snapshot.steps
        if step.next_retry_at is not None
        and step.state in RUNNABLE_STATES
        and snapshot.parents_satisfied(step.name)
        and attempts_left(step_facts(snapshot, step.name, 0.0))
    ]
    return min(times, default=None)
