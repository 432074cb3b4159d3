"""The PostgreSQL store: tasks, steps and audit records in the ``tasker`` schema.

Each operation is one round trip to a SQL function installed by the migrations (see
``tasker_trio/db/migrations``), except `apply`: one round trip reads the task's view and its
version, the planner runs here (pure, quick), and one round trip writes the plan *if the
version is unchanged* — checked under the task's row lock, so the plan commits atomically or
is re-planned on the fresh view (compare-and-set; safe across processes, no lock held while
Python runs). Messages go to PGMQ queues in the same transaction as the state they follow.

Times come from ``clock`` (wall-clock seconds by default) and reach SQL as parameters: no
statement decides a lease, a visibility or a backoff with the server's ``now()``, so tests
can drive the store with a mock clock.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from tasker_trio.db.bridge import Database
from tasker_trio.db.errors import DatabaseConflict, DatabaseError
from tasker_trio.db.signals import Signals, queue_key, task_key
from tasker_trio.errors import DeadLetterNotFound, StepNotFound, TaskNotFound
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    DeadLetterEntry,
    StepEdge,
    StepError,
    StepExecutionResult,
    StepResultMessage,
    Task,
    Transition,
    WorkflowStep,
)
from tasker_trio.models.codec import unstructure
from tasker_trio.state_machine import StepEvent, StepState, TaskState, transition
from tasker_trio.store.plan import Plan, TaskView
from tasker_trio.store.protocol import (
    ClaimedStep,
    ClaimOutcome,
    MessageRef,
    Planner,
    RecordOutcome,
)

APPLY_ATTEMPTS = 50
"""How many times `apply` re-plans when concurrent changes keep landing first."""

_VIEW = "SELECT tasker.task_view($1)"
_APPLY = "SELECT tasker.apply_plan($1::jsonb)"
_CREATE = "SELECT tasker.create_task($1::jsonb)"
_CLAIM = "SELECT tasker.claim_step($1::jsonb)"
_RECORD = "SELECT tasker.record_result($1::jsonb)"
_EXTEND = """
UPDATE tasker.steps
SET lease_expires_at = $3,
    data = data || jsonb_build_object('lease_expires_at', tasker.jnum($3))
WHERE step_uuid = $1 AND attempts = $2 AND state = $4
RETURNING true
"""
_TASK = "SELECT data FROM tasker.tasks WHERE task_uuid = $1"
_STEP = "SELECT data FROM tasker.steps WHERE step_uuid = $1"
_TASKS = "SELECT data FROM tasker.tasks ORDER BY seq"
_TASKS_IN = "SELECT data FROM tasker.tasks WHERE state = ANY($1::text[]) ORDER BY seq"
_TRANSITIONS = """
SELECT 'task' AS entity_kind, task_uuid AS entity_id, from_state, to_state, event, at,
       processor_id, metadata, sort_key, most_recent
FROM tasker.task_transitions WHERE task_uuid = $1
UNION ALL
SELECT 'step', step_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key,
       most_recent
FROM tasker.step_transitions WHERE step_uuid = $1
ORDER BY sort_key
"""
_RESULTS = "SELECT data FROM tasker.step_results WHERE step_uuid = $1 ORDER BY id"
_RETRY_TIMES = """
SELECT s.task_uuid, min(s.next_retry_at) AS due
FROM tasker.steps s JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
WHERE s.state = $1 AND s.next_retry_at IS NOT NULL AND NOT (t.state = ANY($2::text[]))
GROUP BY s.task_uuid
"""
_DUE = f"SELECT task_uuid FROM ({_RETRY_TIMES}) r WHERE due <= $3 ORDER BY task_uuid"
_EARLIEST = f"SELECT min(due) FROM ({_RETRY_TIMES}) r"
_DEAD_COLUMNS = """entry_id, task_uuid, reason, details, snapshot, created_at, status,
                   resolved_at, resolution"""
_DEAD_LETTERS = f"""
SELECT {_DEAD_COLUMNS} FROM tasker.dead_letters
WHERE $1 OR status = 'pending' ORDER BY seq
"""
_RESOLVE = f"""
UPDATE tasker.dead_letters SET status = 'resolved', resolved_at = $2, resolution = $3
WHERE entry_id = $1
RETURNING {_DEAD_COLUMNS}
"""

_TERMINAL = [str(s) for s in TaskState if s.is_terminal]
_SATISFIED = [str(StepState.COMPLETE), str(StepState.RESOLVED_MANUALLY)]
_SUCCEEDED = transition(StepState.IN_PROGRESS, StepEvent.SUBMIT_SUCCESS)
_FAILED = transition(StepState.IN_PROGRESS, StepEvent.SUBMIT_FAILURE)
_CLAIMED = transition(StepState.ENQUEUED, StepEvent.START)


def default_processor_id() -> str:
    """``host:pid``: which process made a change, in the audit trail."""
    return f"{socket.gethostname()}:{os.getpid()}"


class PostgresStore:
    """Implements `Store` on PostgreSQL; pairs with a `PgmqBroker` over the same database."""

    def __init__(
        self,
        db: Database,
        *,
        signals: Signals | None = None,
        clock: Callable[[], float] = time.time,
        processor_id: str | None = None,
    ) -> None:
        self.db = db
        self.signals = signals or Signals()
        self.clock = clock
        self.processor_id = processor_id or default_processor_id()

    def now(self) -> float:
        """The store's clock (wall-clock seconds unless another clock was given)."""
        return self.clock()

    # ------------------------------------------------------------------ task-level operations

    async def create_task(
        self,
        task: Task,
        steps: Sequence[WorkflowStep],
        edges: Sequence[StepEdge],
        *,
        planner: Planner,
    ) -> tuple[Task, bool]:
        """Create the task and its graph and apply ``planner``, or return the existing twin."""
        view = TaskView(task=task, steps=tuple(steps), edges=tuple(edges))
        now = self.now()
        plan = planner(view, now)  # decide before writing: a failure leaves nothing
        after, _ = _after(view, plan, now)
        payload = self._effects(plan, after, now)
        payload["task"] = after.task.to_json()
        payload["steps"] = [s.to_json() for s in after.steps]
        payload["edges"] = [e.to_json() for e in after.edges]
        outcome = await self.db.fetchval(_CREATE, payload, where="creating a task")
        if outcome["task"] is None:
            raise DatabaseError(f"task {task.task_uuid} exists with another identity")
        if outcome["created"]:
            self._fire(plan)
        return Task.from_json(outcome["task"]), bool(outcome["created"])

    async def apply(self, task_uuid: str, planner: Planner) -> tuple[Plan, TaskView]:
        """Run ``planner`` on the current view and apply its plan (re-planned on a race)."""
        for _ in range(APPLY_ATTEMPTS):
            row = await self.db.fetchval(_VIEW, task_uuid, where="reading a task")
            if row is None:
                raise TaskNotFound(task_uuid)
            view = _view(row)
            now = self.now()
            plan = planner(view, now)
            if plan.is_empty:
                return plan, view
            after, changed = _after(view, plan, now)
            payload = self._effects(plan, after, now)
            payload["version"] = row["version"]
            payload["task"] = after.task.to_json() if plan.task_changes else None
            payload["steps"] = [after.step(uuid).to_json() for uuid in changed]
            applied = await self.db.fetchval(_APPLY, payload, where="applying a plan")
            if applied is None:
                raise TaskNotFound(task_uuid)
            if applied:
                self._fire(plan)
                return plan, after
        raise DatabaseConflict(f"task {task_uuid} kept changing; gave up after {APPLY_ATTEMPTS}")

    def _effects(self, plan: Plan, after: TaskView, now: float) -> dict[str, Any]:
        """The audit records, messages and dead letter of ``plan`` (`write_plan_effects`)."""
        dead_letter = None
        if plan.dead_letter is not None:
            dead_letter = {
                "reason": plan.dead_letter.reason,
                "details": unstructure(dict(plan.dead_letter.details)),
                "snapshot": {
                    "task": after.task.to_json(),
                    "steps": [s.to_json() for s in after.steps],
                },
            }
        return {
            "task_uuid": plan.task_uuid,
            "now": now,
            "processor_id": self.processor_id,
            "step_transitions": [
                {
                    "step_uuid": c.step_uuid,
                    "from_state": str(c.from_state),
                    "to_state": str(c.to_state),
                    "event": str(c.event),
                    "metadata": unstructure(dict(c.metadata)),
                }
                for c in plan.step_changes
            ],
            "task_transitions": [
                {
                    "from_state": str(c.from_state),
                    "to_state": str(c.to_state),
                    "event": str(c.event),
                    "metadata": unstructure(dict(c.metadata)),
                }
                for c in plan.task_changes
            ],
            "messages": [
                {"queue": m.queue, "payload": m.payload, "delay": m.delay} for m in plan.messages
            ],
            "dead_letter": dead_letter,
        }

    def _fire(self, plan: Plan) -> None:
        for message in plan.messages:
            self.signals.fire(queue_key(message.queue))
        if plan.task_changes:
            self.signals.fire(task_key(plan.task_uuid))

    # ------------------------------------------------------------------ worker-side operations

    async def claim_step(
        self, step_uuid: str, *, lease_seconds: float, worker_id: str, message: MessageRef
    ) -> ClaimOutcome:
        """Claim (``enqueued``) or reclaim (``in_progress`` with an expired lease) a step."""
        now = self.now()
        payload = {
            "step_uuid": step_uuid,
            "now": now,
            "lease": lease_seconds,
            "worker_id": worker_id,
            "queue": message.queue,
            "msg_id": message.msg_id,
            "processor_id": self.processor_id,
            "claimable_state": str(StepState.ENQUEUED),
            "in_progress_state": str(StepState.IN_PROGRESS),
            "target_state": str(_CLAIMED),
            "event": str(StepEvent.START),
            "satisfied_states": _SATISFIED,
        }
        outcome = await self.db.fetchval(_CLAIM, payload, where="claiming a step")
        reason = outcome.get("reason")
        if reason == "lease_expired_on_last_attempt":
            await self._fail_expired_lease(outcome, step_uuid, message, now)
            return ClaimOutcome(reason="exhausted")
        if reason is not None:
            return ClaimOutcome(reason=str(reason))
        claimed = ClaimedStep(
            step=WorkflowStep.from_json(outcome["step"]),
            task=Task.from_json(outcome["task"]),
            dependency_results=outcome["dependency_results"],
        )
        return ClaimOutcome(claimed=claimed)

    async def _fail_expired_lease(
        self, outcome: dict[str, Any], step_uuid: str, message: MessageRef, now: float
    ) -> None:
        attempts = int(outcome["attempts"])
        error = StepError(
            error_type="LeaseExpired",
            message=f"the worker running attempt {attempts} stopped renewing its lease "
            "and no attempt is left",
            retryable=False,
            attempt=attempts,
        )
        result = StepExecutionResult.failed(
            task_uuid=str(outcome["task_uuid"]), step_uuid=step_uuid, error=error, completed_at=now
        )
        # Fenced like any result, and only while the lease is still expired: a racing
        # claimer or a worker that renewed in between makes this a no-op.
        await self._record(
            result, message=message, result_queue=ORCHESTRATION_STEP_RESULTS, expired_by=now
        )

    async def extend_lease(self, step_uuid: str, attempt: int, *, lease_seconds: float) -> bool:
        """Push the lease of the current attempt."""
        until = self.now() + lease_seconds
        extended = await self.db.fetchval(
            _EXTEND,
            step_uuid,
            attempt,
            until,
            str(StepState.IN_PROGRESS),
            where="extending a lease",
        )
        return bool(extended)

    async def record_result(
        self, result: StepExecutionResult, *, message: MessageRef | None, result_queue: str
    ) -> RecordOutcome:
        """Accept the current attempt's result, or keep a stale one in the audit only."""
        return await self._record(result, message=message, result_queue=result_queue)

    async def _record(
        self,
        result: StepExecutionResult,
        *,
        message: MessageRef | None,
        result_queue: str,
        expired_by: float | None = None,
    ) -> RecordOutcome:
        notice = StepResultMessage(
            task_uuid=result.task_uuid,
            step_uuid=result.step_uuid,
            attempt=result.attempt,
            success=result.success,
            correlation_id="",  # filled in from the task by the SQL function
        )
        payload: dict[str, Any] = {
            "step_uuid": result.step_uuid,
            "now": self.now(),
            "result": result.to_json(),
            "notice": notice.to_json(),
            "queue": None if message is None else message.queue,
            "msg_id": None if message is None else message.msg_id,
            "result_queue": result_queue,
            "processor_id": self.processor_id,
            "in_progress_state": str(StepState.IN_PROGRESS),
            "success_state": str(_SUCCEEDED),
            "failure_state": str(_FAILED),
            "success_event": str(StepEvent.SUBMIT_SUCCESS),
            "failure_event": str(StepEvent.SUBMIT_FAILURE),
        }
        if expired_by is not None:
            payload["expired_by"] = expired_by
        outcome = await self.db.fetchval(_RECORD, payload, where="recording a step result")
        if outcome["accepted"]:
            self.signals.fire(queue_key(result_queue))
        return RecordOutcome(accepted=bool(outcome["accepted"]), reason=outcome.get("reason"))

    # ------------------------------------------------------------------ queries

    async def get_task(self, task_uuid: str) -> Task:
        """The task."""
        data = await self.db.fetchval(_TASK, task_uuid, where="reading a task")
        if data is None:
            raise TaskNotFound(task_uuid)
        return Task.from_json(data)

    async def get_view(self, task_uuid: str) -> TaskView:
        """The task with its steps and edges."""
        row = await self.db.fetchval(_VIEW, task_uuid, where="reading a task")
        if row is None:
            raise TaskNotFound(task_uuid)
        return _view(row)

    async def get_step(self, step_uuid: str) -> WorkflowStep:
        """One step."""
        data = await self.db.fetchval(_STEP, step_uuid, where="reading a step")
        if data is None:
            raise StepNotFound(step_uuid)
        return WorkflowStep.from_json(data)

    async def list_tasks(self, states: Sequence[TaskState] | None = None) -> list[Task]:
        """Tasks in creation order, optionally filtered by state."""
        if states is None:
            rows = await self.db.fetch(_TASKS, where="listing tasks")
        else:
            rows = await self.db.fetch(_TASKS_IN, [str(s) for s in states], where="listing tasks")
        return [Task.from_json(row["data"]) for row in rows]

    async def transitions(self, entity_id: str) -> list[Transition]:
        """The audit trail of a task or a step, in ``sort_key`` order."""
        rows = await self.db.fetch(_TRANSITIONS, entity_id, where="reading transitions")
        return [Transition.from_json(dict(row)) for row in rows]

    async def results_of(self, step_uuid: str) -> list[StepExecutionResult]:
        """Every result reported for the step, in arrival order."""
        rows = await self.db.fetch(_RESULTS, step_uuid, where="reading step results")
        return [StepExecutionResult.from_json(row["data"]) for row in rows]

    async def tasks_due_for_retry(self, now: float) -> list[str]:
        """Tasks with a step waiting for a retry whose backoff has passed."""
        rows = await self.db.fetch(
            _DUE, str(StepState.WAITING_FOR_RETRY), _TERMINAL, now, where="finding retries"
        )
        return [str(row["task_uuid"]) for row in rows]

    async def earliest_retry_at(self) -> float | None:
        """The earliest backoff end among steps waiting for a retry."""
        due = await self.db.fetchval(
            _EARLIEST, str(StepState.WAITING_FOR_RETRY), _TERMINAL, where="finding retries"
        )
        return None if due is None else float(due)

    async def dead_letters(self, *, include_resolved: bool = False) -> list[DeadLetterEntry]:
        """Dead-letter entries, oldest first."""
        rows = await self.db.fetch(_DEAD_LETTERS, include_resolved, where="reading dead letters")
        return [DeadLetterEntry.from_json(dict(row)) for row in rows]

    async def resolve_dead_letter(self, entry_id: str, *, resolution: str) -> DeadLetterEntry:
        """Mark an entry resolved."""
        row = await self.db.fetchrow(
            _RESOLVE, entry_id, self.now(), resolution, where="resolving a dead letter"
        )
        if row is None:
            raise DeadLetterNotFound(entry_id)
        return DeadLetterEntry.from_json(dict(row))

    # A timeout parameter, not a cancel scope: the protocol mirrors server-side waits.
    async def wait_for_change(self, task_uuid: str, *, timeout: float) -> None:  # noqa: ASYNC109
        """Return on the task's next state change made by this process, or at timeout."""
        event = self.signals.event(task_key(task_uuid))
        with trio.move_on_after(timeout):
            await event.wait()


def _view(row: dict[str, Any]) -> TaskView:
    return TaskView(
        task=Task.from_json(row["task"]),
        steps=tuple(WorkflowStep.from_json(s) for s in row["steps"]),
        edges=tuple(StepEdge.from_json(e) for e in row["edges"]),
    )


def _after(view: TaskView, plan: Plan, now: float) -> tuple[TaskView, list[str]]:
    """The view once ``plan`` is applied at ``now``, and the uuids of the steps it changes.

    The same field rules as the memory store: one evolve per changed step (its updates, its
    last state, ``updated_at``); the task takes its last state, ``updated_at`` and, when
    terminal, ``completed_at``.
    """
    updates: dict[str, dict[str, Any]] = {}
    for change in plan.step_changes:
        fields = updates.setdefault(change.step_uuid, {})
        fields.update(change.updates)
        fields["state"] = change.to_state
    steps = tuple(
        attrs.evolve(s, updated_at=now, **updates[s.step_uuid]) if s.step_uuid in updates else s
        for s in view.steps
    )
    task = view.task
    if plan.task_changes:
        state = plan.task_changes[-1].to_state
        completed_at = now if state.is_terminal else task.completed_at
        task = attrs.evolve(task, state=state, updated_at=now, completed_at=completed_at)
    return TaskView(task=task, steps=steps, edges=view.edges), list(updates)
