"""Plans: the changes one atomic store operation applies to one task.

Orchestration decides *what* changes (in pure services, over a `TaskView` snapshot) and
hands the store a `Plan`; the store applies it atomically — transitions with their audit
records, step field updates, the messages the changes imply, a dead-letter entry — or
nothing. `PlanBuilder` is how services write plans: it applies each event to a working copy
through the pure state machines, so a plan can only hold legal transitions, and later
decisions in the same plan see the effect of earlier ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tasker_trio.models import StepEdge, Task, WorkflowStep
from tasker_trio.state_machine import (
    StepEvent,
    StepFacts,
    StepState,
    TaskEvent,
    TaskFacts,
    TaskState,
    transition,
)


@attrs.frozen(kw_only=True)
class TaskView:
    """One task with its steps (template order) and edges, as read under the task's lock."""

    task: Task
    steps: tuple[WorkflowStep, ...]
    edges: tuple[StepEdge, ...]

    def step(self, step_uuid: str) -> WorkflowStep:
        """The step with this uuid (KeyError if none)."""
        for step in self.steps:
            if step.step_uuid == step_uuid:
                return step
        raise KeyError(step_uuid)

    def by_name(self) -> dict[str, WorkflowStep]:
        """Steps by name."""
        return {step.name: step for step in self.steps}

    def dependency_results(self, step_uuid: str) -> dict[str, dict[str, Any]]:
        """The results of the step's ancestors that are complete or resolved, by name.

        What a handler sees as ``dependency_results`` (semantics §10): every ancestor, not
        only the parents; ``{}`` for one without results. Not copied.
        """
        parents: dict[str, list[str]] = {}
        for edge in self.edges:
            parents.setdefault(edge.to_step_uuid, []).append(edge.from_step_uuid)
        ancestors: set[str] = set()
        frontier = list(parents.get(step_uuid, ()))
        while frontier:
            uuid = frontier.pop()
            if uuid not in ancestors:
                ancestors.add(uuid)
                frontier.extend(parents.get(uuid, ()))
        return {
            step.name: step.results or {}
            for step in self.steps
            if step.step_uuid in ancestors
            and step.state in (StepState.COMPLETE, StepState.RESOLVED_MANUALLY)
        }


@attrs.frozen(kw_only=True)
class StepChange:
    """A step transition, with the step fields it updates."""

    step_uuid: str
    event: StepEvent
    from_state: StepState
    to_state: StepState
    updates: Mapping[str, Any] = attrs.field(factory=dict)
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TaskChange:
    """A task transition."""

    event: TaskEvent
    from_state: TaskState
    to_state: TaskState
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class OutgoingMessage:
    """A message the plan sends when it commits."""

    queue: str
    payload: dict[str, Any]
    delay: float = 0.0


@attrs.frozen(kw_only=True)
class DeadLetterRequest:
    """A dead-letter entry the plan creates (the store adds the snapshot and the time)."""

    reason: str
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Plan:
    """Everything one atomic operation changes for one task, in order."""

    task_uuid: str
    task_changes: tuple[TaskChange, ...] = ()
    step_changes: tuple[StepChange, ...] = ()
    messages: tuple[OutgoingMessage, ...] = ()
    dead_letter: DeadLetterRequest | None = None
    outcome: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def is_empty(self) -> bool:
        """Whether applying the plan would change nothing."""
        return not (self.task_changes or self.step_changes or self.messages or self.dead_letter)


class PlanBuilder:
    """Build a `Plan` over a working copy of a `TaskView`, checking every transition.

    Raises `InvalidTransition` (from the pure state machines) as soon as an event is not
    legal in the working copy's current state, so a plan is legal by construction.
    """

    def __init__(self, view: TaskView) -> None:
        self.task = view.task
        self.task_uuid = view.task.task_uuid
        self.task_state = view.task.state
        self.steps: dict[str, WorkflowStep] = {s.step_uuid: s for s in view.steps}
        self.edges = view.edges
        self._task_changes: list[TaskChange] = []
        self._step_changes: list[StepChange] = []
        self._messages: list[OutgoingMessage] = []
        self._dead_letter: DeadLetterRequest | None = None
        self.outcome: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}
        """Derived values of the working copy (e.g. a readiness snapshot); cleared whenever a
        step changes."""

    def task_event(
        self, event: TaskEvent, *, facts: TaskFacts | None = None, **metadata: Any
    ) -> TaskState:
        """Apply a task event to the working copy and record it."""
        target = transition(self.task_state, event, facts=facts)
        self._task_changes.append(
            TaskChange(event=event, from_state=self.task_state, to_state=target, metadata=metadata)
        )
        self.task_state = target
        return target

    def step_event(
        self,
        step_uuid: str,
        event: StepEvent,
        *,
        facts: StepFacts | None = None,
        updates: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> WorkflowStep:
        """Apply a step event (and field ``updates``) to the working copy and record it."""
        step = self.steps[step_uuid]
        target = transition(step.state, event, facts=facts)
        self.cache.clear()
        changes = dict(updates or {})
        self.steps[step_uuid] = attrs.evolve(step, state=target, **changes)
        self._step_changes.append(
            StepChange(
                step_uuid=step_uuid,
                event=event,
                from_state=step.state,
                to_state=target,
                updates=changes,
                metadata=dict(metadata or {}),
            )
        )
        return self.steps[step_uuid]

    def send(self, queue: str, payload: dict[str, Any], *, delay: float = 0.0) -> None:
        """Send a message when the plan commits."""
        self._messages.append(OutgoingMessage(queue=queue, payload=payload, delay=delay))

    def dead_letter(self, reason: str, **details: Any) -> None:
        """Create a dead-letter entry for the task when the plan commits."""
        self._dead_letter = DeadLetterRequest(reason=reason, details=details)

    def build(self) -> Plan:
        """The plan, in the order the changes were made."""
        return Plan(
            task_uuid=self.task_uuid,
            task_changes=tuple(self._task_changes),
            step_changes=tuple(self._step_changes),
            messages=tuple(self._messages),
            dead_letter=self._dead_letter,
            outcome=dict(self.outcome),
        )
