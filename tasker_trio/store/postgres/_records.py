"""Step results recorded by the PostgreSQL store, fenced by the step's state and attempt.

A mixin of `PostgresStore`, the base of `PostgresWorkerSide` (whose claims remember their
steps here, and record the failure of a lease that expired on the last attempt). A result
is written with the plan that processes it when this process's result processing takes it
(`tasker_trio.store.postgres._fused`); else on its own, beside whatever else this process
is writing (`PlanWriter`), its notice handed over to the local result processing
(`tasker_trio.store.postgres._handoff`) or announced to other processes. Each record is one
statement (see `tasker_trio.store.postgres.store` for the retry rules).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import attrs
import trio

from tasker_trio.db.bridge import Database
from tasker_trio.db.signals import queue_key
from tasker_trio.messaging.pgmq import queue_message
from tasker_trio.models import StepExecutionResult, StepResultMessage, WorkflowStep
from tasker_trio.models.codec import copy_json
from tasker_trio.state_machine import StepEvent, StepState
from tasker_trio.store.postgres import _sql as sql
from tasker_trio.store.postgres._batches import PlanWriter
from tasker_trio.store.postgres._fused import PendingRecords
from tasker_trio.store.postgres._handoff import Handoffs
from tasker_trio.store.postgres._reads import KnownViews, StepPatches
from tasker_trio.store.protocol import LocalResults, MessageRef, RecordOutcome

CLAIMED_STEPS_KEPT = 4096
"""Steps claimed here that are remembered for recording their results with their plans."""


class PostgresRecords:
    """Result recording of `PostgresStore`."""

    db: Database
    processor_id: str
    _handoffs: Handoffs
    _patches: StepPatches
    _known: KnownViews
    _pending: PendingRecords
    _claimed_steps: OrderedDict[str, WorkflowStep]
    _writer: PlanWriter
    durability: str

    def now(self) -> float:  # provided by PostgresStore
        raise NotImplementedError

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
        outcome: dict[str, Any] = (
            {"state": sql.SUCCEEDED, "results": result.result}
            if result.success
            else {"state": sql.FAILED, "last_error": result.error}
        )
        step = attrs.evolve(claimed, lease_expires_at=None, updated_at=now, **outcome)
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
        # A result alone never ends its task: with durability="outcomes" it need not wait
        # for the disk (lost in a crash of the server, its step runs again).
        outcome = await self._writer.write(
            "result",
            payload,
            where="recording a step result",
            announce=announce,
            relaxed=self.durability == "outcomes",
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
