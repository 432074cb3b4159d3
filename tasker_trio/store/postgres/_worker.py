"""The worker side of the PostgreSQL store: reads that claim, leases and fenced results.

A mixin of `PostgresStore` (kept apart so each module reads in one sitting); the read-ahead
of `read_for_processing` lives here too, beside the other fused read. Each operation is one
statement (see `tasker_trio.store.postgres.store` for the retry rules).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import attrs
import trio

from tasker_trio.db.bridge import Database
from tasker_trio.db.signals import queue_key
from tasker_trio.messaging.pgmq import queue_message
from tasker_trio.messaging.protocol import QueueMessage
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    StepError,
    StepExecutionResult,
    StepResultMessage,
    Task,
    WorkflowStep,
)
from tasker_trio.models.codec import copy_json
from tasker_trio.state_machine import StepEvent, StepState
from tasker_trio.store.postgres import _sql as sql
from tasker_trio.store.postgres._batches import PlanWriter
from tasker_trio.store.postgres._fused import PendingRecords
from tasker_trio.store.postgres._handoff import Handoffs, claim_parameters
from tasker_trio.store.postgres._reads import KnownViews, MessageKey, StepPatches, ViewCache
from tasker_trio.store.protocol import (
    ClaimedStep,
    ClaimOutcome,
    LocalResults,
    MessageRef,
    QueuedClaim,
    RecordOutcome,
)

CLAIMED_STEPS_KEPT = 4096
"""Steps claimed here that are remembered for recording their results with their plans."""


class PostgresWorkerSide:
    """Claim, extend, record and read-ahead operations of `PostgresStore`."""

    db: Database
    clock: Callable[[], float]
    processor_id: str
    _views: ViewCache
    _handoffs: Handoffs
    _patches: StepPatches
    _known: KnownViews
    _pending: PendingRecords
    _claimed_steps: OrderedDict[str, WorkflowStep]
    _writer: PlanWriter

    def now(self) -> float:  # provided by PostgresStore
        raise NotImplementedError

    def _claim_payload(self, *, lease_seconds: float, worker_id: str, queue: str) -> dict[str, Any]:
        payload = claim_parameters(worker_id, self.processor_id, self.now())
        payload.update(lease=lease_seconds, queue=queue)
        return payload

    async def claim_step(
        self, step_uuid: str, *, lease_seconds: float, worker_id: str, message: MessageRef
    ) -> ClaimOutcome:
        """Claim (``enqueued``) or reclaim (``in_progress`` with an expired lease) a step."""
        payload = self._claim_payload(
            lease_seconds=lease_seconds, worker_id=worker_id, queue=message.queue
        )
        payload["step_uuid"] = step_uuid
        payload["msg_id"] = message.msg_id
        outcome = await self.db.fetchval(
            sql.CLAIM, payload, where="claiming a step", idempotent=True
        )
        return await self._claim_outcome(outcome, step_uuid, message, payload["now"])

    async def claim_from_queue(
        self,
        queue: str,
        *,
        limit: int,
        visibility_timeout: float,
        lease_seconds: float,
        worker_id: str,
    ) -> list[QueuedClaim]:
        """Read a worker queue's messages and claim their steps: one statement.

        Not retried once sent (like a read: running it twice would hide more messages); a
        lost answer leaves claimed steps whose messages turn visible again and are reclaimed
        when their lease expires.
        """
        payload = self._claim_payload(lease_seconds=lease_seconds, worker_id=worker_id, queue=queue)
        payload["qty"] = limit
        payload["vt"] = visibility_timeout
        rows = await self.db.fetch(
            sql.CLAIM_FROM_QUEUE, payload, where=f"reading and claiming from {queue}"
        )
        claims: list[QueuedClaim] = []
        # Claimed in lock order (task, step); handed on oldest message first.
        for row in sorted(rows, key=lambda row: int(row["msg_id"])):
            message = queue_message(queue, row)
            if row["claim"] is None:
                claims.append(QueuedClaim(message=message, outcome=None))
                continue
            ref = MessageRef(queue=queue, msg_id=message.msg_id)
            step_uuid = str(message.payload["step_uuid"])
            outcome = await self._claim_outcome(row["claim"], step_uuid, ref, payload["now"])
            claims.append(QueuedClaim(message=message, outcome=outcome))
        return claims

    async def read_for_processing(
        self, queue: str, *, limit: int, visibility_timeout: float
    ) -> list[QueueMessage]:
        """Read ``queue`` with the task view of each message's task (kept for `apply`)."""
        rows = await self.db.fetch(
            sql.READ_WITH_VIEWS,
            queue,
            limit,
            visibility_timeout,
            self.now(),
            where=f"reading {queue}",
        )
        messages = [queue_message(queue, row) for row in rows]
        # task uuid -> its view (on the task's first message) and its messages
        views: dict[str, tuple[dict[str, Any] | None, set[MessageKey]]] = {}
        for row, message in zip(rows, messages, strict=True):
            task_uuid = message.payload.get("task_uuid")
            if isinstance(task_uuid, str):
                view, ids = views.get(task_uuid, (None, set()))
                views[task_uuid] = (row["view"] or view, ids | {(queue, message.msg_id)})
        for task_uuid, (view, ids) in views.items():
            if view is not None:
                self._views.put(task_uuid, view, frozenset(ids))
        return messages

    async def _claim_outcome(
        self, outcome: dict[str, Any], step_uuid: str, message: MessageRef, now: float
    ) -> ClaimOutcome:
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
        self._remember_claim(claimed.step)
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
            sql.EXTEND,
            step_uuid,
            attempt,
            until,
            str(StepState.IN_PROGRESS),
            where="extending a lease",
            idempotent=True,
        )
        return bool(extended)

    async def record_result(
        self, result: StepExecutionResult, *, message: MessageRef | None, result_queue: str
    ) -> RecordOutcome:
        """Accept the current attempt's result, or keep a stale one in the audit only."""
        return await self._record(result, message=message, result_queue=result_queue)

    def _remember_claim(self, step: WorkflowStep) -> None:
        """Keep the step as claimed here: its result may be recorded with its plan.

        A copy of its JSON data: the handler gets the claimed step itself, and what it does
        to it must not reach the store (the record would write it).
        """
        self._claimed_steps[step.step_uuid] = attrs.evolve(
            step, step_config=copy_json(step.step_config), results=copy_json(step.results)
        )
        self._claimed_steps.move_to_end(step.step_uuid)
        while len(self._claimed_steps) > CLAIMED_STEPS_KEPT:
            self._claimed_steps.popitem(last=False)

    async def _record_with_its_plan(
        self,
        result: StepExecutionResult,
        payload: dict[str, Any],
        notice: StepResultMessage,
        local: LocalResults,
    ) -> RecordOutcome | None:
        """Have this process's result processing write the record with its plan
        (`tasker_trio.store.postgres._fused`); None when the caller must record it."""
        claimed = self._claimed_steps.pop(result.step_uuid, None)
        known = self._known.get(result.task_uuid)
        if claimed is None or claimed.attempts != result.attempt or known is None:
            return None
        now = float(payload["now"])
        if result.success:
            step = attrs.evolve(
                claimed,
                state=sql.SUCCEEDED,
                lease_expires_at=None,
                updated_at=now,
                results=result.result,
            )
        else:
            step = attrs.evolve(
                claimed,
                state=sql.FAILED,
                lease_expires_at=None,
                updated_at=now,
                last_error=result.error,
            )
        body = notice.to_json()
        body["correlation_id"] = known[1].task.correlation_id
        pending = self._pending.add(payload, step, body, local.hold_seconds)
        local.deliver(pending.notice)
        with trio.move_on_after(local.hold_seconds / 2):
            await pending.done.wait()
        if not pending.done.is_set():
            if self._pending.withdraw(pending):
                return None  # nobody took it: record it now
            await pending.done.wait()  # an apply is writing it
        return pending.outcome

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
            "success_state": str(sql.SUCCEEDED),
            "failure_state": str(sql.FAILED),
            "success_event": str(StepEvent.SUBMIT_SUCCESS),
            "failure_event": str(StepEvent.SUBMIT_FAILURE),
        }
        local = self._handoffs.results
        if expired_by is not None:
            payload["expired_by"] = expired_by
            local = None  # the recording worker is gone: any orchestrator may process it
        if local is not None:
            payload["hold"] = local.hold_seconds
            fused = await self._record_with_its_plan(result, payload, notice, local)
            if fused is not None:
                return fused
        # Sent with whatever else this process is writing (`PlanWriter`): under load, the
        # results finished meanwhile share one round trip and one commit.
        payload["task_uuid"] = result.task_uuid  # the batch's lock order
        # A notice sent visible (not held for this process's own result processing) is
        # announced to other processes (`PlanWriter.write`).
        announce = [queue_key(result_queue)] if local is None else []
        outcome = await self._writer.write(
            "result", payload, where="recording a step result", announce=announce
        )
        handed = False
        if outcome["accepted"] and local is not None and "msg_id" in outcome:
            handed = True
            # Sent hidden: nobody else reads it unless processing it here fails for a while.
            handed_notice = queue_message(result_queue, {"read_ct": 1, **outcome})
            self._patches.put((result_queue, handed_notice.msg_id), outcome["step"])
            local.deliver(handed_notice)
        elif outcome["accepted"]:
            self.db.fire(queue_key(result_queue), announced=bool(outcome.get("announced")))
        return RecordOutcome(
            accepted=bool(outcome["accepted"]), reason=outcome.get("reason"), handed_over=handed
        )
