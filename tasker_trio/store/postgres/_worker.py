"""The worker side of the PostgreSQL store: reads that claim, and leases.

A mixin of `PostgresStore` (kept apart so each module reads in one sitting); the read-ahead
of `read_for_processing` lives here too, beside the other fused read. Results are recorded
by its base, `PostgresRecords` (`tasker_trio.store.postgres._records`), which also keeps
the steps claimed here. Each operation is one statement (see
`tasker_trio.store.postgres.store` for the retry rules).
"""

from __future__ import annotations

from typing import Any

from tasker_trio.db.bridge import Database
from tasker_trio.messaging.pgmq import queue_message
from tasker_trio.messaging.protocol import QueueMessage
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    StepError,
    StepExecutionResult,
    Task,
    WorkflowStep,
)
from tasker_trio.state_machine import StepState
from tasker_trio.store.postgres import _sql as sql
from tasker_trio.store.postgres._handoff import claim_parameters
from tasker_trio.store.postgres._reads import MessageKey, ViewCache
from tasker_trio.store.postgres._records import PostgresRecords
from tasker_trio.store.protocol import (
    ClaimedStep,
    ClaimOutcome,
    MessageRef,
    QueuedClaim,
)


class PostgresWorkerSide(PostgresRecords):
    """Claim, extend and read-ahead operations of `PostgresStore` (records: its base)."""

    db: Database
    processor_id: str
    _views: ViewCache

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
