"""Applying the tables: one pure `transition` function for both machines.

``transition(current, event, facts=...)`` returns the next state or raises `InvalidTransition`
naming the machine, the state and the event (and the guard that refused, if one did). Guards
are checked when ``facts`` are given; a caller that passes none vouches for them itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload

import attrs

from tasker_trio.errors import InvalidTransition
from tasker_trio.state_machine.guards import (
    STEP_GUARD_FUNCTIONS,
    TASK_GUARD_FUNCTIONS,
    StepFacts,
    TaskFacts,
)
from tasker_trio.state_machine.step import (
    STEP_GUARDS,
    STEP_TERMINAL_STATES,
    STEP_TRANSITIONS,
    StepEvent,
    StepState,
)
from tasker_trio.state_machine.task import (
    TASK_GUARDS,
    TASK_TERMINAL_STATES,
    TASK_TRANSITIONS,
    TaskEvent,
    TaskState,
)

StateT = TypeVar("StateT", TaskState, StepState)
EventT = TypeVar("EventT", TaskEvent, StepEvent)
FactsT = TypeVar("FactsT", TaskFacts, StepFacts)


@attrs.frozen(kw_only=True)
class MachineSpec(Generic[StateT, EventT, FactsT]):
    """One state machine as data: its name, table, guards and terminal states."""

    name: str
    state_type: type[StateT]
    event_type: type[EventT]
    table: Mapping[tuple[StateT, EventT], StateT]
    guards: Mapping[tuple[StateT, EventT], str]
    guard_functions: Mapping[str, Callable[[FactsT], bool]]
    terminal: frozenset[StateT]

    def next_state(self, current: StateT, event: EventT, facts: FactsT | None = None) -> StateT:
        """The state ``event`` leads to from ``current``.

        Raises:
            InvalidTransition: the table has no such transition, or its guard does not hold.
        """
        try:
            target = self.table[(current, event)]
        except KeyError:
            raise InvalidTransition(self.name, current.value, event.value) from None
        guard = self.guards.get((current, event))
        if guard is not None and facts is not None and not self.guard_functions[guard](facts):
            raise InvalidTransition(
                self.name, current.value, event.value, f"guard {guard} does not hold"
            )
        return target

    def allowed_events(self, current: StateT) -> list[EventT]:
        """The events the table allows from ``current`` (guards not considered)."""
        return [event for (state, event) in self.table if state == current]

    def edges(self) -> set[tuple[StateT, EventT, StateT]]:
        """Every transition as ``(from, event, to)``."""
        return {(state, event, target) for (state, event), target in self.table.items()}


TASK_MACHINE: MachineSpec[TaskState, TaskEvent, TaskFacts] = MachineSpec(
    name="task",
    state_type=TaskState,
    event_type=TaskEvent,
    table=TASK_TRANSITIONS,
    guards=TASK_GUARDS,
    guard_functions=TASK_GUARD_FUNCTIONS,
    terminal=TASK_TERMINAL_STATES,
)

STEP_MACHINE: MachineSpec[StepState, StepEvent, StepFacts] = MachineSpec(
    name="step",
    state_type=StepState,
    event_type=StepEvent,
    table=STEP_TRANSITIONS,
    guards=STEP_GUARDS,
    guard_functions=STEP_GUARD_FUNCTIONS,
    terminal=STEP_TERMINAL_STATES,
)


@overload
def transition(
    current: TaskState, event: TaskEvent, *, facts: TaskFacts | None = None
) -> TaskState: ...
@overload
def transition(
    current: StepState, event: StepEvent, *, facts: StepFacts | None = None
) -> StepState: ...
def transition(current: Any, event: Any, *, facts: Any = None) -> Any:
    """Return the state that ``event`` leads to from ``current``, for a task or a step.

    Args:
        current: a `TaskState` or a `StepState`.
        event: an event of the same machine (`TaskEvent` or `StepEvent`).
        facts: the snapshot the transition's guard looks at; ``None`` skips guards.

    Raises:
        InvalidTransition: the event is not allowed in ``current``, or its guard refused.
        TypeError: the state and the event belong to different machines.
    """
    spec: MachineSpec[Any, Any, Any]
    spec = TASK_MACHINE if isinstance(current, TaskState) else STEP_MACHINE
    if not (isinstance(current, spec.state_type) and isinstance(event, spec.event_type)):
        raise TypeError(
            f"{type(current).__name__} {current!r} and {type(event).__name__} {event!r} "
            "belong to different state machines"
        )
    state: Any = current
    happening: Any = event
    return spec.next_state(state, happening, facts)
