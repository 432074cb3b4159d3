"""Results recorded by the plan that processes them (migration 0010; `PostgresStore`).

When a worker of this process records a result and this process's result processing takes
it (`PostgresStore.hand_off`), the two transactions become one: `record_result` hands the
result's notice over *before* writing anything, as a `PendingRecord` under a stand-in
message id (negative: no queue holds it), and waits. The `apply` that consumes that notice
plans on the step as the record will leave it, and writes the record and the plan together
(``tasker.apply_plan_recording``). The worker then gets the record's answer as usual.

Whatever keeps that from happening — the plan is refused, the record is refused, the
operation fails, nobody takes the notice in time — falls back to the separate record: the
pending record is answered with ``None`` and the worker records it itself, or (when the
apply already wrote it) its real, held notice is processed like any handed-over one. The
record is fenced by the step's attempt either way, so it is never applied twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import attrs
import trio

from tasker_trio.messaging.protocol import QueueMessage
from tasker_trio.models import WorkflowStep
from tasker_trio.store.postgres._reads import MessageKey
from tasker_trio.store.protocol import RecordOutcome


@attrs.define(eq=False)
class PendingRecord:
    """A result waiting to be written by the plan that processes it."""

    payload: dict[str, Any]
    """``tasker.record_result``'s payload (with its ``hold``)."""
    step: WorkflowStep
    """The step as the record will leave it (what the plan is made on)."""
    notice: QueueMessage
    """The stand-in notice handed to result processing."""
    done: trio.Event = attrs.field(factory=trio.Event)
    taken: bool = False
    outcome: RecordOutcome | None = None
    """The record's answer; None when the worker must record it itself."""

    def answer(self, outcome: RecordOutcome | None) -> None:
        """Wake the waiting worker with ``outcome``."""
        self.outcome = outcome
        self.done.set()


class PendingRecords:
    """The pending records of one store, by their stand-in notice's (queue, msg_id)."""

    def __init__(self) -> None:
        self._by_key: dict[MessageKey, PendingRecord] = {}
        self._ids = itertools.count(1)

    def add(
        self, payload: dict[str, Any], step: WorkflowStep, notice: dict[str, Any], hold: float
    ) -> PendingRecord:
        """A new pending record, with a stand-in notice under a fresh negative id."""
        now = float(payload["now"])
        queue = str(payload["result_queue"])
        message = QueueMessage(
            queue=queue,
            msg_id=-next(self._ids),
            read_ct=1,
            enqueued_at=now,
            visible_at=now + hold,
            payload=notice,
        )
        pending = PendingRecord(payload=payload, step=step, notice=message)
        self._by_key[(queue, message.msg_id)] = pending
        return pending

    def take(self, consumed: Iterable[MessageKey]) -> list[PendingRecord]:
        """The pending records of ``consumed`` stand-in notices, now taken by an apply."""
        taken: list[PendingRecord] = []
        for key in consumed:
            pending = self._by_key.pop(key, None)
            if pending is not None:
                pending.taken = True
                taken.append(pending)
        return taken

    def withdraw(self, pending: PendingRecord) -> bool:
        """Take ``pending`` back for its worker to record; False once an apply took it."""
        key = (pending.notice.queue, pending.notice.msg_id)
        return self._by_key.pop(key, None) is not None
