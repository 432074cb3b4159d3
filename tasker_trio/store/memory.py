"""The embedded store: tasks, steps and audit records in memory, atomic by construction.

No operation awaits between reading and writing, so under Trio's cooperative scheduling each
one is atomic without locks; messages go through the same `MemoryQueues` the broker reads,
so a state change and its message commit together. Times are on the Trio clock.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from tasker_trio.errors import DeadLetterNotFound, StepNotFound, TaskNotFound
from tasker_trio.messaging.memory import MemoryQueues
from tasker_trio.models import (
    DeadLetterEntry,
    DeadLetterStatus,
    EntityKind,
    StepEdge,
    StepExecutionResult,
    Task,
    Transition,
    WorkflowStep,
)
from tasker_trio.state_machine import StepState, TaskState
from tasker_trio.store.memory_worker import MemoryWorkerSide
from tasker_trio.store.plan import Plan, TaskView
from tasker_trio.store.protocol import MessageRef, Planner


class MemoryStore(MemoryWorkerSide):
    """Implements `Store` in memory; pairs with the `MemoryQueues` it sends through."""

    def __init__(self, queues: MemoryQueues, *, processor_id: str = "memory") -> None:
        self.queues = queues
        self.processor_id = processor_id
        self._tasks: dict[str, Task] = {}
        self._by_identity: dict[str, str] = {}
        self._steps: dict[str, WorkflowStep] = {}
        self._task_steps: dict[str, list[str]] = {}
        self._edges: dict[str, tuple[StepEdge, ...]] = {}
        self._audit: dict[str, list[Transition]] = defaultdict(list)
        self._results: dict[str, list[StepExecutionResult]] = defaultdict(list)
        self._dead: dict[str, DeadLetterEntry] = {}
        self._dead_ids = itertools.count(1)
        self._changed: dict[str, trio.Event] = {}
        self._retry_pending: set[str] = set()

    def now(self) -> float:
        """The Trio clock."""
        return trio.current_time()

    # ------------------------------------------------------------------ task-level operations

    async def create_task(
        self,
        task: Task,
        steps: Sequence[WorkflowStep],
        edges: Sequence[StepEdge],
        *,
        planner: Planner,
        consumed: Sequence[MessageRef] = (),
    ) -> tuple[Task, bool]:
        """Create the task and its graph and apply ``planner``, or return the existing twin;
        delete ``consumed`` either way."""
        existing = self._by_identity.get(task.identity_hash)
        if existing is not None:
            self._delete(consumed)
            return self._tasks[existing], False
        view = TaskView(task=task, steps=tuple(steps), edges=tuple(edges))
        plan = planner(view, self.now())  # decide before writing: a failure leaves nothing
        self._tasks[task.task_uuid] = task
        self._by_identity[task.identity_hash] = task.task_uuid
        self._task_steps[task.task_uuid] = [s.step_uuid for s in steps]
        self._edges[task.task_uuid] = tuple(edges)
        for step in steps:
            self._steps[step.step_uuid] = step
        self._commit(plan)
        self._delete(consumed)
        return self._tasks[task.task_uuid], True

    async def apply(
        self,
        task_uuid: str,
        planner: Planner,
        *,
        consumed: Sequence[MessageRef] = (),
        durable: bool = True,  # nothing here outlives the process anyway
    ) -> tuple[Plan, TaskView]:
        """Run ``planner`` on the current view, apply its plan and delete ``consumed``."""
        plan = planner(self._view(task_uuid), self.now())
        self._commit(plan)
        self._delete(consumed)
        return plan, self._view(task_uuid)

    def _delete(self, consumed: Sequence[MessageRef]) -> None:
        for ref in consumed:
            self.queues.delete_nowait(ref.queue, ref.msg_id)

    def _view(self, task_uuid: str) -> TaskView:
        task = self._tasks.get(task_uuid)
        if task is None:
            raise TaskNotFound(task_uuid)
        steps = tuple(self._steps[s] for s in self._task_steps[task_uuid])
        return TaskView(task=task, steps=steps, edges=self._edges[task_uuid])

    def _commit(self, plan: Plan) -> None:
        if plan.is_empty:
            return
        now = self.now()
        task_uuid = plan.task_uuid
        updates: dict[str, dict[str, Any]] = {}  # one evolve per step, however many changes
        for change in plan.step_changes:
            fields = updates.setdefault(change.step_uuid, {})
            fields.update(change.updates)
            fields["state"] = change.to_state
            self._append(
                EntityKind.STEP,
                change.step_uuid,
                change.from_state,
                change.to_state,
                event=change.event,
                at=now,
                metadata=change.metadata,
            )
        for step_uuid, fields in updates.items():
            self._steps[step_uuid] = attrs.evolve(self._steps[step_uuid], updated_at=now, **fields)
        task = self._tasks[task_uuid]
        for task_change in plan.task_changes:
            self._append(
                EntityKind.TASK,
                task_uuid,
                task_change.from_state,
                task_change.to_state,
                event=task_change.event,
                at=now,
                metadata=task_change.metadata,
            )
        if plan.task_changes:
            state = plan.task_changes[-1].to_state
            completed_at = now if state.is_terminal else task.completed_at
            task = attrs.evolve(task, state=state, updated_at=now, completed_at=completed_at)
            self._tasks[task_uuid] = task
        waiting = any(
            self._steps[s].state == StepState.WAITING_FOR_RETRY for s in self._task_steps[task_uuid]
        )
        if waiting and not task.state.is_terminal:
            self._retry_pending.add(task_uuid)
        else:
            self._retry_pending.discard(task_uuid)
        for message in plan.messages:
            self.queues.send_nowait(message.queue, message.payload, delay=message.delay)
        if plan.dead_letter is not None:
            self._add_dead_letter(
                task_uuid, plan.dead_letter.reason, dict(plan.dead_letter.details)
            )
        if plan.task_changes:
            self._notify(task_uuid)

    def _append(
        self,
        kind: EntityKind,
        entity_id: str,
        from_state: Any,
        to_state: Any,
        *,
        event: Any,
        at: float,
        metadata: Any,
    ) -> None:
        # Records are stored with most_recent=False; `transitions` marks the last one on read,
        # which keeps appends cheap (no rewrite of the previous record).
        trail = self._audit[entity_id]
        trail.append(
            Transition(
                entity_kind=kind,
                entity_id=entity_id,
                from_state=str(from_state),
                to_state=str(to_state),
                event=str(event),
                at=at,
                processor_id=self.processor_id,
                metadata=dict(metadata),
                sort_key=len(trail) + 1,
                most_recent=False,
            )
        )

    def _add_dead_letter(self, task_uuid: str, reason: str, details: dict[str, Any]) -> None:
        view = self._view(task_uuid)
        entry = DeadLetterEntry(
            entry_id=f"dlq-{next(self._dead_ids)}",
            task_uuid=task_uuid,
            reason=reason,
            details=details,
            snapshot={"task": view.task.to_json(), "steps": [s.to_json() for s in view.steps]},
            created_at=self.now(),
        )
        self._dead[entry.entry_id] = entry

    def _notify(self, task_uuid: str) -> None:
        event = self._changed.pop(task_uuid, None)
        if event is not None:
            event.set()

    # ------------------------------------------------------------------ queries

    async def get_task(self, task_uuid: str) -> Task:
        """The task."""
        task = self._tasks.get(task_uuid)
        if task is None:
            raise TaskNotFound(task_uuid)
        return task

    async def get_view(self, task_uuid: str) -> TaskView:
        """The task with its steps and edges."""
        return self._view(task_uuid)

    async def get_step(self, step_uuid: str) -> WorkflowStep:
        """One step."""
        step = self._steps.get(step_uuid)
        if step is None:
            raise StepNotFound(step_uuid)
        return step

    async def list_tasks(self, states: Sequence[TaskState] | None = None) -> list[Task]:
        """Tasks in creation order, optionally filtered by state."""
        wanted = set(states) if states is not None else None
        return [t for t in self._tasks.values() if wanted is None or t.state in wanted]

    async def transitions(self, entity_id: str) -> list[Transition]:
        """The audit trail of a task or a step (the last record is the most recent)."""
        trail = list(self._audit.get(entity_id, ()))
        if trail:
            trail[-1] = attrs.evolve(trail[-1], most_recent=True)
        return trail

    async def results_of(self, step_uuid: str) -> list[StepExecutionResult]:
        """Every result reported for the step."""
        return list(self._results.get(step_uuid, ()))

    def _retry_times(self) -> dict[str, float]:
        times: dict[str, float] = {}
        for task_uuid in self._retry_pending:
            pending = [
                self._steps[s].next_retry_at
                for s in self._task_steps[task_uuid]
                if self._steps[s].state == StepState.WAITING_FOR_RETRY
            ]
            due = [t for t in pending if t is not None]
            if due:
                times[task_uuid] = min(due)
        return times

    async def tasks_due_for_retry(self, now: float) -> list[str]:
        """Tasks with a step waiting for a retry whose backoff has passed."""
        return sorted(t for t, at in self._retry_times().items() if at <= now)

    async def earliest_retry_at(self) -> float | None:
        """The earliest backoff end among steps waiting for a retry."""
        return min(self._retry_times().values(), default=None)

    async def dead_letters(self, *, include_resolved: bool = False) -> list[DeadLetterEntry]:
        """Dead-letter entries, oldest first."""
        return [
            e
            for e in self._dead.values()
            if include_resolved or e.status == DeadLetterStatus.PENDING
        ]

    async def resolve_dead_letter(self, entry_id: str, *, resolution: str) -> DeadLetterEntry:
        """Mark an entry resolved."""
        entry = self._dead.get(entry_id)
        if entry is None:
            raise DeadLetterNotFound(entry_id)
        entry = attrs.evolve(
            entry, status=DeadLetterStatus.RESOLVED, resolved_at=self.now(), resolution=resolution
        )
        self._dead[entry_id] = entry
        return entry

    # A timeout parameter, not a cancel scope: the PostgreSQL side waits with a server-side
    # timeout (PGMQ's read_with_poll, LISTEN), and the protocol mirrors it.
    def change_event(self, task_uuid: str) -> trio.Event:
        """The event the task's next state change sets."""
        event = self._changed.get(task_uuid)
        if event is None:
            event = self._changed[task_uuid] = trio.Event()
        return event

    async def wait_for_change(
        self,
        task_uuid: str,
        *,
        timeout: float,  # noqa: ASYNC109
        event: trio.Event | None = None,
    ) -> Task | None:
        """Return on the task's next state change (or ``event``) with the task as it is
        now, or at timeout with None."""
        with trio.move_on_after(timeout):
            await (self.change_event(task_uuid) if event is None else event).wait()
            return self._tasks.get(task_uuid)
        return None
