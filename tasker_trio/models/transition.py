"""The audit trail: `Transition` records and `TransitionLog`, an append-only log in memory.

Every state change of a task or a step is one record (semantics §3): entity id, from, to,
event, time, processor id, metadata, ``sort_key`` (1, 2, 3, … per entity) and ``most_recent``
(true on exactly one record per entity). The log applies the state machine itself, so it can
only ever hold legal transitions; stores implement the same rules durably.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from tasker_trio.models.base import JsonModel
from tasker_trio.state_machine import (
    StepEvent,
    StepFacts,
    StepState,
    TaskEvent,
    TaskFacts,
    TaskState,
    transition,
)


class EntityKind(enum.StrEnum):
    """Which state machine a transition belongs to."""

    TASK = "task"
    """A task transition."""
    STEP = "step"
    """A workflow-step transition."""


@attrs.frozen(kw_only=True)
class Transition(JsonModel):
    """One state change of one task or step.

    Attributes:
        entity_kind: task or step.
        entity_id: the task's or step's uuid.
        from_state: the state before (``pending`` for an entity's first record).
        to_state: the state after.
        event: the event that caused it.
        at: when (engine clock, seconds).
        processor_id: which orchestrator or worker made the change.
        metadata: details (result summary, error, operator note...).
        sort_key: 1 for an entity's first record, then 2, 3, …
        most_recent: whether this is the entity's latest record.
    """

    entity_kind: EntityKind
    entity_id: str
    from_state: str
    to_state: str
    event: str
    at: float
    processor_id: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    sort_key: int
    most_recent: bool = True


class TransitionLog:
    """An append-only transition log for any number of tasks and steps (in memory).

    Entities with no record are ``pending``. `apply` checks the event against the state
    machine (and its guard when ``facts`` are given) before appending; an illegal event raises
    `InvalidTransition` and changes nothing.
    """

    def __init__(self) -> None:
        self._records: list[Transition] = []
        self._latest: dict[tuple[EntityKind, str], int] = {}

    def state_of_task(self, task_uuid: str) -> TaskState:
        """The current state of a task (``pending`` without records)."""
        index = self._latest.get((EntityKind.TASK, task_uuid))
        return TaskState.PENDING if index is None else TaskState(self._records[index].to_state)

    def state_of_step(self, step_uuid: str) -> StepState:
        """The current state of a step (``pending`` without records)."""
        index = self._latest.get((EntityKind.STEP, step_uuid))
        return StepState.PENDING if index is None else StepState(self._records[index].to_state)

    def apply_task(
        self,
        task_uuid: str,
        event: TaskEvent,
        *,
        at: float,
        facts: TaskFacts | None = None,
        processor_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Transition:
        """Apply ``event`` to a task and append its record."""
        current = self.state_of_task(task_uuid)
        target = transition(current, event, facts=facts)
        return self._append(
            EntityKind.TASK,
            task_uuid,
            current=current,
            target=target,
            event=event,
            at=at,
            processor_id=processor_id,
            metadata=metadata,
        )

    def apply_step(
        self,
        step_uuid: str,
        event: StepEvent,
        *,
        at: float,
        facts: StepFacts | None = None,
        processor_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Transition:
        """Apply ``event`` to a step and append its record."""
        current = self.state_of_step(step_uuid)
        target = transition(current, event, facts=facts)
        return self._append(
            EntityKind.STEP,
            step_uuid,
            current=current,
            target=target,
            event=event,
            at=at,
            processor_id=processor_id,
            metadata=metadata,
        )

    def history(self, entity_id: str, kind: EntityKind | None = None) -> list[Transition]:
        """An entity's records in ``sort_key`` order."""
        return [
            r
            for r in self._records
            if r.entity_id == entity_id and (kind is None or r.entity_kind == kind)
        ]

    def records(self) -> list[Transition]:
        """Every record, in the order appended."""
        return list(self._records)

    def _append(
        self,
        kind: EntityKind,
        entity_id: str,
        *,
        current: enum.StrEnum,
        target: enum.StrEnum,
        event: enum.StrEnum,
        at: float,
        processor_id: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> Transition:
        key = (kind, entity_id)
        previous = self._latest.get(key)
        sort_key = 1
        if previous is not None:
            before = self._records[previous]
            self._records[previous] = attrs.evolve(before, most_recent=False)
            sort_key = before.sort_key + 1
        record = Transition(
            entity_kind=kind,
            entity_id=entity_id,
            from_state=str(current),
            to_state=str(target),
            event=str(event),
            at=at,
            processor_id=processor_id,
            metadata=dict(metadata or {}),
            sort_key=sort_key,
            most_recent=True,
        )
        self._latest[key] = len(self._records)
        self._records.append(record)
        return record
