"""Plans written in batches: one round trip and one commit for every plan waiting.

Under load a process makes plans faster than one connection commits them, and each plan's
own round trip and commit cost the server and this process more than the plan's writes.
`PlanWriter` groups them, as a database groups commits: a plan that finds fewer than
``limit`` batches on their way (one by default) is sent at once (alone, when nothing else
waits, so a lone plan pays nothing for this); the plans that arrive meanwhile wait, and the
first batch to come back hands the next one, with every plan waiting by then, to one of
their callers to send. One batch at a time made the largest batches and the most steps per
second (500 linear tasks: ~8 plans a batch, against ~4 with two at a time, and ~5% more
steps per second): the server's time per plan falls with the batch's size.

A batch is one call of ``tasker.apply_many`` (migration 0011), which applies its plans one
after another, in task order, in one transaction: each answers as it would alone, refused
or applied, and two batches lock their tasks in the same order. A plan sent alone, when
nothing else waits, also sends the notifications it announces (migration 0016), sparing
the publisher's transaction after it — one round trip less on the path from one process
to the next; under load the publisher sends them, beside the next batch.

A batch the server refuses as a whole (an error in one of its plans) is sent again plan by
plan, so that the error reaches that plan's caller alone. A batch whose sender was
cancelled, or whose round trip failed, has its plans sent again by their own callers:
every plan is fenced by its task's version, so one that did commit is refused the second
time and re-planned on the fresh view, as after any retried commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import trio

from tasker_trio.db.bridge import Database
from tasker_trio.db.errors import DatabaseError, DatabaseUnavailable
from tasker_trio.db.signals import channel_of
from tasker_trio.store.postgres import _sql as sql


class _Again(Exception):
    """The plan's batch did not come back: its caller sends it again."""


@attrs.define(eq=False)
class _Plan:
    kind: str
    payload: dict[str, Any]
    announce: tuple[str, ...] = ()
    alone: bool = False
    wake: trio.Event = attrs.field(factory=trio.Event)
    answer: dict[str, Any] | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.answer is not None or self.error is not None


def _batch_label(batch: list[_Plan]) -> str:
    if all(plan.kind == "result" for plan in batch):
        return "recording a batch of step results"
    return "applying a batch of plans"


class PlanWriter:
    """Sends plans to ``tasker.apply_many`` in batches; see the module docstring."""

    def __init__(self, db: Database, *, limit: int = 1, batch_size: int = 64) -> None:
        self.db = db
        self.limit = limit
        self.batch_size = batch_size
        self._waiting: list[_Plan] = []
        self._sending = 0
        self.batches = 0
        self.plans = 0

    async def write(
        self, kind: str, payload: dict[str, Any], *, where: str, announce: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Apply one plan; the answer of the function that applies it.

        ``kind`` says which: ``"create"`` (a new task: ``tasker.create_task_claiming``),
        ``"claim"`` (``tasker.apply_plan_claiming``), ``"record"`` (a plan with the
        results it records: ``tasker.apply_plan_recording``) or ``"result"`` (a step result
        alone: ``tasker.record_result``, migration 0014). Every payload names its
        ``task_uuid``: a batch takes its locks in task order.

        ``announce`` are the signal keys (`tasker_trio.db.signals`) other processes are to
        hear of when the plan commits. A plan sent alone while no other waits has its own
        transaction notify them (migration 0016): the answer then says ``"announced":
        True``, and the caller fires them here with ``announced=True``. Under load the
        answer says False, and the process's publisher announces them, in a transaction
        beside the next batch (the batches are what limits throughput).
        """
        plan = _Plan(kind=kind, payload=payload, announce=tuple(announce))
        self._waiting.append(plan)
        try:
            while True:
                if self._sending < self.limit and plan in self._waiting:
                    await self._send(plan, where)
                else:
                    await plan.wake.wait()
                if plan.error is not None:
                    if not isinstance(plan.error, _Again):
                        raise plan.error
                    plan.error = None
                    self._waiting.append(plan)
                if plan.answer is not None:
                    return plan.answer
                plan.wake = trio.Event()
        except BaseException:
            if plan in self._waiting:  # cancelled before it was sent: it never will be
                self._waiting.remove(plan)
            raise

    def _take(self, first: _Plan) -> list[_Plan]:
        """``first`` and the plans waiting with it (a plan sent alone goes by itself)."""
        if first.alone:
            self._waiting.remove(first)
            return [first]
        batch = [first] + [p for p in self._waiting if p is not first and not p.alone]
        batch = batch[: self.batch_size]
        taken = {id(p) for p in batch}
        self._waiting = [p for p in self._waiting if id(p) not in taken]
        return batch

    async def _send(self, first: _Plan, where: str) -> None:
        batch = self._take(first)
        self._sending += 1
        try:
            await self._apply(batch, where)
        except BaseException:
            for plan in batch:
                if not plan.done:
                    plan.error = _Again()
            raise
        finally:
            self._sending -= 1
            for plan in batch:
                if plan is not first:
                    plan.wake.set()
            if self._waiting:  # the next batch: sent by the first of its callers
                self._waiting[0].wake.set()

    async def _apply(self, batch: list[_Plan], where: str) -> None:
        ordered = sorted(batch, key=lambda p: str(p.payload["task_uuid"]))
        items = [{"kind": p.kind, "p": p.payload} for p in ordered]
        # A plan alone, with none waiting, announces itself; under load the batch leaves it
        # to the publisher, whose transaction runs beside the next batch rather than in it.
        announce = len(batch) == 1 and not self._waiting
        keys = list(ordered[0].announce) if announce else []
        args: tuple[Any, ...]
        if keys:
            channels, payloads = zip(*(channel_of(key) for key in keys), strict=True)
            query, args = sql.APPLY_MANY_NOTIFYING, (items, list(channels), list(payloads))
        else:
            query, args = sql.APPLY_MANY, (items,)
        try:
            answers = await self.db.fetchval(
                query,
                *args,
                where=where if len(batch) == 1 else _batch_label(batch),
                idempotent=True,
            )
        except DatabaseError as exc:
            # Refused by the server: maybe for one plan's sake. Unavailable: for all.
            refused = exc.sqlstate is not None and not isinstance(exc, DatabaseUnavailable)
            for plan in batch:
                if refused and len(batch) > 1:
                    plan.alone = True  # again by itself: the error reaches its own caller
                    plan.error = _Again()
                else:
                    plan.error = exc
            return
        self.batches += 1
        self.plans += len(batch)
        for plan, answer in zip(ordered, answers, strict=True):
            answer["announced"] = bool(keys)
            plan.answer = answer
