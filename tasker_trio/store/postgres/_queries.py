"""The read-only queries of `PostgresStore`: tasks, steps, audit trails, dead letters, waits.

A mixin (kept apart so each module reads in one sitting); each query is one statement,
retried after a lost connection (reads are idempotent).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from tasker_trio.db.bridge import Database
from tasker_trio.db.signals import Signals, task_key
from tasker_trio.errors import DeadLetterNotFound, StepNotFound, TaskNotFound
from tasker_trio.models import (
    DeadLetterEntry,
    StepExecutionResult,
    Task,
    Transition,
    WorkflowStep,
)
from tasker_trio.state_machine import StepState, TaskState
from tasker_trio.store.plan import TaskView
from tasker_trio.store.postgres import _sql as sql
from tasker_trio.store.postgres._plans import view_from_row


class PostgresQueries:
    """Reads of `PostgresStore`."""

    db: Database
    signals: Signals

    def now(self) -> float:  # provided by PostgresStore
        raise NotImplementedError

    async def get_task(self, task_uuid: str) -> Task:
        """The task."""
        data = await self.db.fetchval(sql.TASK, task_uuid, where="reading a task", idempotent=True)
        if data is None:
            raise TaskNotFound(task_uuid)
        return Task.from_json(data)

    async def get_view(self, task_uuid: str) -> TaskView:
        """The task with its steps and edges."""
        row = await self.db.fetchval(sql.VIEW, task_uuid, where="reading a task", idempotent=True)
        if row is None:
            raise TaskNotFound(task_uuid)
        return view_from_row(row)

    async def get_step(self, step_uuid: str) -> WorkflowStep:
        """One step."""
        data = await self.db.fetchval(sql.STEP, step_uuid, where="reading a step", idempotent=True)
        if data is None:
            raise StepNotFound(step_uuid)
        return WorkflowStep.from_json(data)

    async def list_tasks(self, states: Sequence[TaskState] | None = None) -> list[Task]:
        """Tasks in creation order, optionally filtered by state."""
        if states is None:
            rows = await self.db.fetch(sql.TASKS, where="listing tasks", idempotent=True)
        else:
            rows = await self.db.fetch(
                sql.TASKS_IN, [str(s) for s in states], where="listing tasks", idempotent=True
            )
        return [Task.from_json(row["data"]) for row in rows]

    async def transitions(self, entity_id: str) -> list[Transition]:
        """The audit trail of a task or a step, in ``sort_key`` order."""
        rows = await self.db.fetch(
            sql.TRANSITIONS, entity_id, where="reading transitions", idempotent=True
        )
        return [Transition.from_json(dict(row)) for row in rows]

    async def results_of(self, step_uuid: str) -> list[StepExecutionResult]:
        """Every result reported for the step, in arrival order."""
        rows = await self.db.fetch(
            sql.RESULTS, step_uuid, where="reading step results", idempotent=True
        )
        return [StepExecutionResult.from_json(row["data"]) for row in rows]

    async def tasks_due_for_retry(self, now: float) -> list[str]:
        """Tasks with a step waiting for a retry whose backoff has passed."""
        rows = await self.db.fetch(
            sql.DUE,
            str(StepState.WAITING_FOR_RETRY),
            sql.TERMINAL,
            now,
            where="finding retries",
            idempotent=True,
        )
        return [str(row["task_uuid"]) for row in rows]

    async def earliest_retry_at(self) -> float | None:
        """The earliest backoff end among steps waiting for a retry."""
        due = await self.db.fetchval(
            sql.EARLIEST,
            str(StepState.WAITING_FOR_RETRY),
            sql.TERMINAL,
            where="finding retries",
            idempotent=True,
        )
        return None if due is None else float(due)

    async def dead_letters(self, *, include_resolved: bool = False) -> list[DeadLetterEntry]:
        """Dead-letter entries, oldest first."""
        rows = await self.db.fetch(
            sql.DEAD_LETTERS, include_resolved, where="reading dead letters", idempotent=True
        )
        return [DeadLetterEntry.from_json(dict(row)) for row in rows]

    async def resolve_dead_letter(self, entry_id: str, *, resolution: str) -> DeadLetterEntry:
        """Mark an entry resolved."""
        row = await self.db.fetchrow(
            sql.RESOLVE,
            entry_id,
            self.now(),
            resolution,
            where="resolving a dead letter",
            idempotent=True,
        )
        if row is None:
            raise DeadLetterNotFound(entry_id)
        return DeadLetterEntry.from_json(dict(row))

    # A timeout parameter, not a cancel scope: the protocol mirrors server-side waits.
    def change_event(self, task_uuid: str) -> trio.Event:
        """The event the task's next state change (by any process) sets."""
        return self.signals.event(task_key(task_uuid))

    async def wait_for_change(
        self,
        task_uuid: str,
        *,
        timeout: float,  # noqa: ASYNC109
        event: trio.Event | None = None,
    ) -> Task | None:
        """Return on the task's next state change (by any process; or ``event``), or at
        timeout.

        Other processes' changes arrive by NOTIFY unless the database polls; then the wait
        also ends by the database's poll interval (`Database.wait_bound`). A change this
        process committed comes with the task as committed (`PlanCommits._settle`), which
        is returned; otherwise None (read it).
        """
        awaited = self.change_event(task_uuid) if event is None else event
        with trio.move_on_after(self.db.wait_bound(timeout)):
            await awaited.wait()
        carried = self.signals.carried(awaited)
        return carried if isinstance(carried, Task) else None
