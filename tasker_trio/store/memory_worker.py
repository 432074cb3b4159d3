"""The worker side of the embedded store: claims, leases and fenced results.

A mixin of `MemoryStore` (kept apart so each module reads in one sitting): it works on the
store's dictionaries and audit trail, and, like the rest of the store, never awaits between
reading and writing, so each operation is atomic under Trio's cooperative scheduling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tasker_trio.errors import MalformedData
from tasker_trio.messaging.memory import MemoryQueues
from tasker_trio.messaging.protocol import QueueMessage
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    EntityKind,
    StepError,
    StepExecutionResult,
    StepMessage,
    StepResultMessage,
    Task,
    WorkflowStep,
)
from tasker_trio.state_machine import StepEvent, StepFacts, StepState, transition
from tasker_trio.store.plan import TaskView
from tasker_trio.store.protocol import (
    ClaimedStep,
    ClaimOutcome,
    MessageRef,
    QueuedClaim,
    RecordOutcome,
)


class MemoryWorkerSide:
    """Claim, extend and record operations of `MemoryStore`."""

    queues: MemoryQueues
    _tasks: dict[str, Task]
    _steps: dict[str, WorkflowStep]
    _results: dict[str, list[StepExecutionResult]]

    def now(self) -> float:  # provided by MemoryStore
        raise NotImplementedError

    def _view(self, task_uuid: str) -> TaskView:  # provided by MemoryStore
        raise NotImplementedError

    def _append(  # provided by MemoryStore
        self,
        kind: EntityKind,
        entity_id: str,
        from_state: Any,
        to_state: Any,
        *,
        event: Any,
        at: float,
        metadata: Mapping[str, Any],
    ) -> None:
        raise NotImplementedError

    async def claim_from_queue(
        self,
        queue: str,
        *,
        limit: int,
        visibility_timeout: float,
        lease_seconds: float,
        worker_id: str,
    ) -> list[QueuedClaim]:
        """Read worker-queue messages and claim their steps (atomic: no await in between)."""
        messages = await self.queues.read(queue, limit=limit, visibility_timeout=visibility_timeout)
        claims: list[QueuedClaim] = []
        for message in messages:
            try:
                step_message = StepMessage.from_json(message.payload)
            except MalformedData:
                claims.append(QueuedClaim(message=message, outcome=None))
                continue
            ref = MessageRef(queue=queue, msg_id=message.msg_id)
            outcome = self._claim(
                step_message.step_uuid,
                lease_seconds=lease_seconds,
                worker_id=worker_id,
                message=ref,
            )
            claims.append(QueuedClaim(message=message, outcome=outcome))
        return claims

    async def read_for_processing(
        self, queue: str, *, limit: int, visibility_timeout: float
    ) -> list[QueueMessage]:
        """The queue's messages (nothing to read ahead in memory)."""
        return await self.queues.read(queue, limit=limit, visibility_timeout=visibility_timeout)

    async def claim_step(
        self, step_uuid: str, *, lease_seconds: float, worker_id: str, message: MessageRef
    ) -> ClaimOutcome:
        """Claim (``enqueued``) or reclaim (``in_progress`` with an expired lease) a step."""
        return self._claim(
            step_uuid, lease_seconds=lease_seconds, worker_id=worker_id, message=message
        )

    def _claim(
        self, step_uuid: str, *, lease_seconds: float, worker_id: str, message: MessageRef
    ) -> ClaimOutcome:
        step = self._steps.get(step_uuid)
        if step is None:
            return ClaimOutcome(reason="unknown_step")
        now = self.now()
        if step.state == StepState.IN_PROGRESS:
            if step.lease_expires_at is not None and step.lease_expires_at > now:
                return ClaimOutcome(reason="lease_alive")
            if step.attempts >= step.retry.max_attempts:
                self._fail_expired_lease(step, message, now)
                return ClaimOutcome(reason="exhausted")
        elif step.state != StepState.ENQUEUED:
            self.queues.delete_nowait(message.queue, message.msg_id)
            return ClaimOutcome(reason="not_enqueued")
        facts = StepFacts(
            attempts=step.attempts,
            max_attempts=step.retry.max_attempts,
            retryable=step.retry.retryable,
            now=now,
            lease_expires_at=step.lease_expires_at,
        )
        target = transition(step.state, StepEvent.START, facts=facts)
        claimed = attrs.evolve(
            step,
            state=target,
            attempts=step.attempts + 1,
            lease_expires_at=now + lease_seconds,
            updated_at=now,
        )
        self._steps[step_uuid] = claimed
        self._append(
            EntityKind.STEP,
            step_uuid,
            step.state,
            target,
            event=StepEvent.START,
            at=now,
            metadata={
                "attempt": claimed.attempts,
                "worker_id": worker_id,
                "reclaim": step.state == StepState.IN_PROGRESS,
            },
        )
        return ClaimOutcome(claimed=self._claimed(claimed))

    def _claimed(self, step: WorkflowStep) -> ClaimedStep:
        return ClaimedStep.from_view(self._view(step.task_uuid), step)

    def _fail_expired_lease(self, step: WorkflowStep, message: MessageRef, now: float) -> None:
        error = StepError(
            error_type="LeaseExpired",
            message=f"the worker running attempt {step.attempts} stopped renewing its lease "
            "and no attempt is left",
            retryable=False,
            attempt=step.attempts,
        )
        result = StepExecutionResult.failed(
            task_uuid=step.task_uuid, step_uuid=step.step_uuid, error=error, completed_at=now
        )
        self._results[step.step_uuid].append(result)
        self._accept(step, result, message, now, result_queue=ORCHESTRATION_STEP_RESULTS)

    async def extend_lease(self, step_uuid: str, attempt: int, *, lease_seconds: float) -> bool:
        """Push the lease of the current attempt."""
        step = self._steps.get(step_uuid)
        if step is None or step.state != StepState.IN_PROGRESS or step.attempts != attempt:
            return False
        self._steps[step_uuid] = attrs.evolve(step, lease_expires_at=self.now() + lease_seconds)
        return True

    async def record_result(
        self, result: StepExecutionResult, *, message: MessageRef | None, result_queue: str
    ) -> RecordOutcome:
        """Accept the current attempt's result, or keep a stale one in the audit only (once)."""
        step = self._steps.get(result.step_uuid)
        if step is None:
            return RecordOutcome(accepted=False, reason="unknown_step")
        now = self.now()
        if step.state != StepState.IN_PROGRESS or step.attempts != result.attempt:
            if result not in self._results[step.step_uuid]:  # a replay is kept once
                self._results[step.step_uuid].append(result)
            if message is not None and step.state != StepState.IN_PROGRESS:
                # Nobody else works on this message: the step moved on (cancelled, resolved...).
                self.queues.delete_nowait(message.queue, message.msg_id)
            return RecordOutcome(accepted=False, reason="superseded")
        self._results[step.step_uuid].append(result)
        self._accept(step, result, message, now, result_queue=result_queue)
        return RecordOutcome(accepted=True)

    def _accept(
        self,
        step: WorkflowStep,
        result: StepExecutionResult,
        message: MessageRef | None,
        now: float,
        *,
        result_queue: str,
    ) -> None:
        event = StepEvent.SUBMIT_SUCCESS if result.success else StepEvent.SUBMIT_FAILURE
        target = transition(step.state, event)
        updates: dict[str, Any] = {"lease_expires_at": None, "updated_at": now}
        if result.success:
            updates["results"] = result.result
        else:
            updates["last_error"] = result.error
        self._steps[step.step_uuid] = attrs.evolve(step, state=target, **updates)
        metadata: dict[str, Any] = {"attempt": result.attempt, "worker_id": result.worker_id}
        if result.error is not None:
            metadata["error"] = result.error.to_json()
        self._append(
            EntityKind.STEP,
            step.step_uuid,
            step.state,
            target,
            event=event,
            at=now,
            metadata=metadata,
        )
        if message is not None:
            self.queues.delete_nowait(message.queue, message.msg_id)
        task = self._tasks[step.task_uuid]
        notice = StepResultMessage(
            task_uuid=step.task_uuid,
            step_uuid=step.step_uuid,
            attempt=result.attempt,
            success=result.success,
            correlation_id=task.correlation_id,
        )
        self.queues.send_nowait(result_queue, notice.to_json())
