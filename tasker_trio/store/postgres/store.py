"""The PostgreSQL store: tasks, steps and audit records in the ``tasker`` schema.

Each operation is one round trip to a SQL function installed by the migrations (see
``tasker_trio/db/migrations``), except `apply`: one round trip reads the task's view and its
version, the planner runs here (pure, quick), and one round trip writes the plan *if the
version is unchanged and the steps it rewrites are as it saw them* — checked under the
task's and those steps' row locks, so the plan commits atomically or is re-planned on the
fresh view (compare-and-set; safe across processes, no lock held while Python runs). The
version counts orchestration's changes only: workers' claims and results lock their step's
row alone (migration 0007), so the branches of a fan-out do not queue on the task's row.
Messages go to PGMQ queues in the same transaction as the state they follow. Plans and new
tasks written while others are on their way share their round trip and transaction
(`tasker_trio.store.postgres._batches`); each is still checked and answered on its own.

This module creates tasks and applies plans; `PostgresStore` mixes in the rest, one job to a
private sibling: the reads (`_queries`), the worker side's claims and leases (`_worker`) and
its result records (`_records`), and what a plan's write carries and what its commit
settles — payload, wake-ups, answers, local claims (`_commit`), and which commits may skip
waiting for the disk (`_durability`: a task's progress, with ``durability="outcomes"``).

Times come from ``clock`` (wall-clock seconds by default) and reach SQL as parameters: no
statement decides a lease, a visibility or a backoff with the server's ``now()``, so tests
can drive the store with a mock clock.

Retries: the database retries a lost connection (`tasker_trio.db.retry`). Every operation
here is marked ``idempotent`` — safe to run again after a commit whose answer was lost —
because each is a read, or a write fenced so that its second run cannot apply again:
``create_task`` by the task's uuid and identity hash (a twin with *our* uuid is our own
commit), ``apply`` by the task version (a second run re-plans on the fresh view),
``claim_step`` and ``record_result`` by the step's state and attempt (a second run reports
``lease_alive`` / ``superseded``), the others by id with absolute values.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import attrs

from tasker_trio.db.bridge import Database
from tasker_trio.db.errors import DatabaseConflict, DatabaseError
from tasker_trio.db.signals import Signals
from tasker_trio.errors import TaskNotFound
from tasker_trio.models import (
    StepEdge,
    Task,
    WorkflowStep,
)
from tasker_trio.store.plan import Plan, TaskView
from tasker_trio.store.postgres import _sql as sql
from tasker_trio.store.postgres._batches import PlanWriter
from tasker_trio.store.postgres._commit import (
    PlanCommits,
    answer_records,
    default_processor_id,
    wake_keys,
    was_announced,
)
from tasker_trio.store.postgres._durability import check_durability, relaxes
from tasker_trio.store.postgres._fused import PendingRecords
from tasker_trio.store.postgres._handoff import Handoffs
from tasker_trio.store.postgres._plans import plan_effects, view_after, view_from_row
from tasker_trio.store.postgres._queries import PostgresQueries
from tasker_trio.store.postgres._reads import KnownViews, StepPatches, ViewCache
from tasker_trio.store.postgres._worker import PostgresWorkerSide
from tasker_trio.store.protocol import (
    LocalResults,
    LocalWorker,
    MessageRef,
    Planner,
)

APPLY_ATTEMPTS = 50
"""How many times `apply` re-plans when concurrent changes keep landing first."""


class PostgresStore(PostgresQueries, PostgresWorkerSide, PlanCommits):
    """Implements `Store` on PostgreSQL; pairs with a `PgmqBroker` over the same database."""

    def __init__(
        self,
        db: Database,
        *,
        signals: Signals | None = None,
        clock: Callable[[], float] = time.time,
        processor_id: str | None = None,
        durability: str = "full",
    ) -> None:
        self.db = db
        self.durability = check_durability(durability)
        self.signals = signals or db.signals
        db.attach(self.signals)  # other processes' task changes wake these waiters too
        self.clock = clock
        self.processor_id = processor_id or default_processor_id()
        self._views = ViewCache()
        self._handoffs = Handoffs()
        self._known = KnownViews()
        self._patches = StepPatches()
        self._pending = PendingRecords()
        self._claimed_steps: OrderedDict[str, WorkflowStep] = OrderedDict()
        self._writer = PlanWriter(db)

    def hand_off(
        self, *, worker: LocalWorker | None = None, results: LocalResults | None = None
    ) -> None:
        """Hand ready steps to ``worker`` and recorded results to ``results`` from now on.

        Both run in this process (see `tasker_trio.store.postgres._handoff`); ``None``
        stops handing that way.
        """
        self._handoffs = Handoffs(worker=worker, results=results)

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
        consumed: Sequence[MessageRef] = (),
    ) -> tuple[Task, bool]:
        """Create the task and its graph and apply ``planner``, or return the existing twin;
        ``consumed`` is deleted by the same transaction either way (migration 0015)."""
        view = TaskView(task=task, steps=tuple(steps), edges=tuple(edges))
        now = self.now()
        plan = planner(view, now)  # decide before writing: a failure leaves nothing
        after, _ = view_after(view, plan, now)
        payload = plan_effects(plan, after, now, self.processor_id)
        payload["task"] = after.task.to_json()
        payload["steps"] = [s.to_json() for s in after.steps]
        payload["edges"] = [e.to_json() for e in after.edges]
        payload["consumed"] = [{"queue": ref.queue, "msg_id": ref.msg_id} for ref in consumed]
        reservation = self._handoffs.split(payload, now)
        wakes = wake_keys(plan, payload, moved=True)
        written = False
        try:
            outcome = await self._writer.write(
                "create", payload, where="creating a task", announce=wakes
            )
            if outcome["task"] is None:
                raise DatabaseError(f"task {task.task_uuid} exists with another identity")
            written = bool(outcome["created"])
        finally:
            # Nothing written now (an error; a twin; or our own commit whose answer was
            # lost, whose claims, unknown here, run again once their leases expire).
            if not written and reservation is not None:
                reservation.release()
        existing = Task.from_json(outcome["task"])
        # A twin with this very uuid is our own commit, seen again by a retried call.
        created = written or existing.task_uuid == task.task_uuid
        if not written:
            if created:
                self._settle(
                    plan, after, payload, [], None, wakes=wakes, announced=was_announced(outcome)
                )
            return existing, created
        self._known.put(task.task_uuid, 0, after)
        claims = outcome["claims"]
        self._settle(
            plan, after, payload, claims, reservation, wakes=wakes, announced=was_announced(outcome)
        )
        return existing, created

    async def apply(
        self,
        task_uuid: str,
        planner: Planner,
        *,
        consumed: Sequence[MessageRef] = (),
        durable: bool = True,
    ) -> tuple[Plan, TaskView]:
        """Run ``planner`` on the current view and apply its plan (re-planned on a race).

        ``consumed`` messages are deleted by the plan's transaction (``apply_plan``); when
        the plan changes nothing, by one statement of their own.
        """
        # Stand-in notices of results not yet recorded (`_fused`): their records are written
        # with this plan, which is made on their steps as the records will leave them.
        pending = self._pending.take((ref.queue, ref.msg_id) for ref in consumed)
        stand_ins = {(p.notice.queue, p.notice.msg_id) for p in pending}
        kept = [ref for ref in consumed if (ref.queue, ref.msg_id) not in stand_ins]
        refs = [{"queue": ref.queue, "msg_id": ref.msg_id} for ref in kept]
        consumed_ids = [(ref.queue, ref.msg_id) for ref in kept]
        try:
            for attempt in range(APPLY_ATTEMPTS):
                records = sorted(
                    (p for p in pending if not p.done.is_set()), key=lambda p: p.step.step_uuid
                )
                version, view = await self._view_for(
                    task_uuid,
                    consumed_ids,
                    first=attempt == 0,
                    predicted={p.step.step_uuid: p.step for p in records},
                )
                now = self.now()
                plan = planner(view, now)
                if plan.is_empty:
                    if refs:
                        await self.db.fetch(
                            sql.DELETE_CONSUMED,
                            refs,
                            where="deleting consumed messages",
                            idempotent=True,
                        )
                    return plan, view
                after, payload = self._plan_payload(plan, view, version, now, refs)
                if records:
                    payload["records"] = [p.payload for p in records]
                reservation = self._handoffs.split(payload, now)
                applied = False
                try:
                    moved = after.task.state != view.task.state
                    wakes = wake_keys(plan, payload, moved=moved)
                    outcome = await self._writer.write(
                        "record" if records else "claim",
                        payload,
                        where="applying a plan",
                        announce=wakes,
                        relaxed=not durable and relaxes(self.durability, plan, after),
                    )
                    for ref in answer_records(records, outcome.get("records", [])):
                        refs.append({"queue": ref.queue, "msg_id": ref.msg_id})
                        consumed_ids.append((ref.queue, ref.msg_id))
                    if outcome["applied"] is None:
                        raise TaskNotFound(task_uuid)
                    applied = bool(outcome["applied"])
                finally:
                    if not applied and reservation is not None:
                        reservation.release()
                if applied:
                    self._known.put(task_uuid, version + 1, after)
                    claims = outcome["claims"]
                    self._settle(
                        plan,
                        after,
                        payload,
                        claims,
                        reservation,
                        wakes=wakes,
                        announced=was_announced(outcome),
                    )
                    return plan, after
                self._known.forget(task_uuid)
        finally:
            for record in pending:
                if not record.done.is_set():
                    record.answer(None)  # its worker records it the usual way
        raise DatabaseConflict(f"task {task_uuid} kept changing; gave up after {APPLY_ATTEMPTS}")

    async def _view_for(
        self,
        task_uuid: str,
        consumed: list[tuple[str, int]],
        *,
        first: bool,
        predicted: dict[str, WorkflowStep],
    ) -> tuple[int, TaskView]:
        """The version and view a plan consuming ``consumed`` is made on.

        The view read ahead with those messages; on the first try, for results handed over
        in this process, the task's known view with the recorded steps patched in; else the
        task as read now. The ``predicted`` steps (results this plan records) replace theirs.
        """
        base: tuple[int, TaskView] | None = None
        row = self._views.take(task_uuid, consumed)
        if row is None and first:
            recorded = self._patches.take(consumed) if consumed else []
            known = self._known.get(task_uuid)
            if recorded is not None and known is not None and (recorded or predicted):
                version, view = known
                patched = {step["step_uuid"]: step for step in recorded}
                steps = tuple(
                    WorkflowStep.from_json(patched[s.step_uuid]) if s.step_uuid in patched else s
                    for s in view.steps
                )
                base = version, attrs.evolve(view, steps=steps)
        if base is None:
            if row is None:
                row = await self.db.fetchval(
                    sql.VIEW, task_uuid, where="reading a task", idempotent=True
                )
            if row is None:
                raise TaskNotFound(task_uuid)
            base = int(row["version"]), view_from_row(row)
        version, view = base
        if predicted:
            steps = tuple(predicted.get(s.step_uuid, s) for s in view.steps)
            view = attrs.evolve(view, steps=steps)
        return version, view
