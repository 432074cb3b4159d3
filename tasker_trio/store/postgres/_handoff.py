"""In-process handoffs of the PostgreSQL store (migration 0010; `PostgresStore.hand_off`).

When orchestration and workers share a process, two of a step's four crossings of the
database only bring the work back to where it came from. With handoffs:

- a plan (or a new task) that enqueues steps for a queue the local worker serves claims as
  many of them as the worker has free slots in the plan's own transaction
  (``tasker.apply_plan_claiming``); their messages are sent hidden for the lease, and the
  claims go straight to the worker;
- a result goes straight to the local result processing, which records it with the plan
  that processes it (`tasker_trio.store.postgres._fused`). When it is recorded on its own
  instead (that path fell through), its notice is sent hidden for
  ``LocalResults.hold_seconds`` and handed over with the step as recorded, so that
  processing plans on the task's known view (`KnownViews`) patched with it and reads
  nothing.

Other processes are unaffected: they never see a claimed step's message unless its lease
runs out, nor a held notice unless this process fails to process it in time; both then
take the usual path.
"""

from __future__ import annotations

from typing import Any

import attrs

from tasker_trio.state_machine import StepEvent, StepState
from tasker_trio.store.postgres import _sql as sql
from tasker_trio.store.protocol import LocalResults, LocalWorker


@attrs.define
class Reservation:
    """Slots of the local worker taken for the step messages a plan claims at once."""

    worker: LocalWorker
    slots: int

    def release(self, used: int = 0) -> None:
        """Give back the slots no claim used."""
        if self.slots > used:
            self.worker.release(self.slots - used)
        self.slots = 0


@attrs.define
class Handoffs:
    """Where a `PostgresStore` hands claims and results in its own process (if anywhere)."""

    worker: LocalWorker | None = None
    results: LocalResults | None = None

    def split(self, payload: dict[str, Any], now: float) -> Reservation | None:
        """Move the step messages the local worker takes out of ``payload["messages"]``.

        They go to ``payload["local"]`` (with the claim's parameters) for
        ``tasker.send_and_claim``; at most as many as the worker has free slots, which are
        reserved. Delayed messages stay: they are not due yet.
        """
        worker = self.worker
        if worker is None:
            return None
        messages: list[dict[str, Any]] = payload["messages"]
        eligible = [
            i for i, m in enumerate(messages) if not m.get("delay") and worker.serves(m["queue"])
        ]
        if not eligible:
            return None
        taken = worker.reserve(len(eligible))
        if taken == 0:
            return None
        chosen = set(eligible[:taken])
        payload["local"] = {
            "lease": worker.lease_seconds,
            "messages": [messages[i] for i in sorted(chosen)],
            "claim": claim_parameters(worker.worker_id, payload["processor_id"], now),
        }
        payload["messages"] = [m for i, m in enumerate(messages) if i not in chosen]
        return Reservation(worker=worker, slots=taken)


def claim_parameters(worker_id: str, processor_id: str, now: float) -> dict[str, Any]:
    """The parameters of ``tasker.claim_step`` but the step, message, queue and lease."""
    return {
        "now": now,
        "worker_id": worker_id,
        "processor_id": processor_id,
        "claimable_state": str(StepState.ENQUEUED),
        "in_progress_state": str(StepState.IN_PROGRESS),
        "target_state": str(sql.CLAIMED),
        "event": str(StepEvent.START),
        "satisfied_states": sql.SATISFIED,
    }
