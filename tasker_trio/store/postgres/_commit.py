"""A plan's write and its aftermath: payload, wake-ups, answers and claims run here.

What `PostgresStore.apply` and `PostgresStore.create_task` do around their one write. Before
the round trip: ``tasker.apply_plan``'s payload for a plan made on a task's view
(`PlanCommits._plan_payload`) and the signal keys its commit wakes (`wake_keys`). After it:
the results it recorded get their answers (`answer_records`; see
`tasker_trio.store.postgres._fused`), its wake-ups fire, and the steps it claimed here go to
the local worker (`PlanCommits._settle`; see `tasker_trio.store.postgres._handoff`).

A mixin of `PostgresStore` and the functions it uses (kept apart so each module reads in
one sitting). Nothing here makes a round trip.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import attrs

from tasker_trio.db.bridge import Database
from tasker_trio.db.signals import queue_key, task_key
from tasker_trio.messaging.pgmq import queue_message
from tasker_trio.models import WorkflowStep
from tasker_trio.store.plan import Plan, TaskView
from tasker_trio.store.postgres import _sql as sql
from tasker_trio.store.postgres._fused import PendingRecord
from tasker_trio.store.postgres._handoff import Reservation
from tasker_trio.store.postgres._plans import plan_effects, view_after
from tasker_trio.store.protocol import (
    ClaimedStep,
    ClaimOutcome,
    MessageRef,
    QueuedClaim,
    RecordOutcome,
)


class PlanCommits:
    """The payloads and the aftermath of `PostgresStore`'s plan writes."""

    db: Database
    processor_id: str
    _remember_claim: Callable[[WorkflowStep], None]  # provided by PostgresRecords

    def _plan_payload(
        self, plan: Plan, view: TaskView, version: int, now: float, refs: list[dict[str, Any]]
    ) -> tuple[TaskView, dict[str, Any]]:
        """The view after ``plan``, and ``tasker.apply_plan``'s payload for it."""
        after, changed = view_after(view, plan, now)
        payload = plan_effects(plan, after, now, self.processor_id)
        payload["version"] = version
        if plan.task_changes:
            payload["task"] = after.task.to_json()
        payload["steps"] = [after.step(uuid).to_json() for uuid in changed]
        # Workers move steps without touching the task's version: the steps this plan
        # rewrites must still be as it saw them.
        payload["expect"] = [
            {
                "step_uuid": uuid,
                "state": str(view.step(uuid).state),
                "attempts": view.step(uuid).attempts,
            }
            for uuid in changed
        ]
        payload["consumed"] = refs
        return after, payload

    def _settle(
        self,
        plan: Plan,
        after: TaskView,
        payload: dict[str, Any],
        claims: list[dict[str, Any]],
        reservation: Reservation | None,
        *,
        wakes: list[str],
        announced: bool,
    ) -> None:
        """After a plan committed: fire its ``wakes`` (`wake_keys`), and run what it claimed
        here.

        Other processes hear of it from the plan's own transaction when it ``announced``
        it (`PlanWriter.write`), else from the publisher.
        """
        mine = task_key(plan.task_uuid)
        for key in wakes:
            # The task's waiters take it as committed, without reading it again.
            self.db.fire(key, announced=announced, carrying=after.task if key == mine else None)
        if reservation is None:
            return
        sent = payload["local"]["messages"]
        now, lease = payload["now"], payload["local"]["lease"]
        handed: list[QueuedClaim] = []
        for row, local in zip(claims, sent, strict=True):
            message = queue_message(local["queue"], row)
            if row["attempts"] is None:  # not claimable after all: its message turns visible
                handed.append(
                    QueuedClaim(message=message, outcome=ClaimOutcome(reason="not_enqueued"))
                )
                continue
            step = attrs.evolve(
                after.step(str(local["payload"]["step_uuid"])),
                state=sql.CLAIMED,
                attempts=int(row["attempts"]),
                lease_expires_at=now + lease,
                updated_at=now,
            )
            claimed = ClaimedStep.from_view(after, step)
            self._remember_claim(step)
            handed.append(QueuedClaim(message=message, outcome=ClaimOutcome(claimed=claimed)))
        reservation.release(len(handed))
        reservation.worker.deliver(handed)


def default_processor_id() -> str:
    """``host:pid``: which process made a change, in the audit trail."""
    return f"{socket.gethostname()}:{os.getpid()}"


def was_announced(outcome: dict[str, Any]) -> bool:
    """Whether the plan's own transaction announced it (`PlanWriter.write`)."""
    return bool(outcome.get("announced"))


def wake_keys(plan: Plan, payload: dict[str, Any], *, moved: bool) -> list[str]:
    """What a plan's commit wakes: the queues of the messages it leaves in them (not those
    claimed here, hidden for their lease), and its task's waiters when the task ``moved``
    to another state. Transitions that come back to the state they left (a step's result
    processed while others run) wake nobody: a wake-up costs each waiter a read."""
    keys = [queue_key(queue) for queue in dict.fromkeys(m["queue"] for m in payload["messages"])]
    if plan.task_changes and moved:
        keys.append(task_key(plan.task_uuid))
    return keys


def answer_records(records: list[PendingRecord], answers: list[dict[str, Any]]) -> list[MessageRef]:
    """Give each pending record its answer; the notices of those written when the plan was
    refused (held in the queue, for the next plan to consume)."""
    written: list[MessageRef] = []
    for record, answer in zip(records, answers, strict=True):
        accepted = bool(answer["accepted"])
        if accepted and answer.get("msg_id") is not None:  # a notice the plan did not take
            written.append(MessageRef(queue=record.notice.queue, msg_id=int(answer["msg_id"])))
        record.answer(
            RecordOutcome(accepted=accepted, reason=answer.get("reason"), handed_over=True)
        )
    return written
