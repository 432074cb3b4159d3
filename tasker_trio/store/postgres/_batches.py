"""Plans written in batches: one round trip and one commit for every plan waiting.

Under load a process makes plans faster than one connection commits them, and each plan's
own round trip and commit cost the server and this process more than the plan's writes.
`PlanWriter` groups them, as a database groups commits: one batch is on its way at a time,
and the plans made meanwhile wait to go together in the next. One batch at a time made the
largest batches and the most steps per second: the server's time per plan falls with the
batch's size.

The batches are sent by a *pump*: an operation that holds one connection on the asyncio
side of the bridge (`Database.hold`) and, as each batch's answer arrives, hands every plan
its answer and sends the next batch at once, with whatever waits by then. Crossing back to
Trio and over again between two batches cost several passes of Trio's scheduler, during
which the connection, the one channel every plan goes through, stood idle (one process, 500
linear tasks: ~13% more steps per second without them; `bench/README.md`). A plan that
finds no pump running runs one itself, until its own answer is back, so a lone plan goes
at once, in one crossing; plans still waiting then are left to a pump that runs in the
database's own nursery (`Database.start_soon`) until none waits.

A batch is one call of ``tasker.apply_many`` (migrations 0011, 0022), which applies its
plans in one transaction, its tasks locked in task order so that two batches lock them in
the same order: the plans that can be written together first, one statement per table for
them all (``tasker.apply_set``), then the others one after another; each answers as it
would alone, refused or applied. A plan sent alone, when nothing else waits, also sends the
notifications it announces (migration 0016), sparing the publisher's transaction after it —
one round trip less on the path from one process to the next; under load the publisher
sends them, beside the next batch.

A batch whose plans all may commit without waiting for the WAL flush (``relaxed``: the
store's ``durability="outcomes"``) sets ``synchronous_commit`` off for its own transaction;
one plan that may not makes the whole batch wait, as its commit carries all of them.

A batch the server refuses as a whole (an error in one of its plans) is sent again plan by
plan, so that the error reaches that plan's caller alone. A batch whose round trip failed
or was cancelled, or that a deadlock rolled back, goes again, first, on the same pump once
it has a connection again (the database's retry rules, `tasker_trio.db.retry`): every
plan is fenced by its task's version, so one that did commit is refused the second time
and re-planned on the fresh view, as after any retried commit. When the database stays
unavailable, every waiting plan fails with the error; when it closes, with
`DatabaseUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import attrs
import trio

from tasker_trio.db.bridge import Connection, Database
from tasker_trio.db.errors import (
    TRANSLATED,
    DatabaseConflict,
    DatabaseError,
    DatabaseUnavailable,
    translate,
)
from tasker_trio.db.signals import channel_of
from tasker_trio.models.codec import dumps_compact
from tasker_trio.store.postgres import _sql as sql

RELAXED_LABEL = " (not waiting for the disk)"
"""Added to the round trip's label (`Database.crossed`) of a batch committed relaxed."""


@attrs.define(eq=False)
class _Plan:
    kind: str
    task_uuid: str  # a batch's plans go in task order
    encoded: str
    where: str
    announce: tuple[str, ...] = ()
    relaxed: bool = False
    alone: bool = False
    abandoned: bool = False
    wake: trio.Event = attrs.field(factory=trio.Event)
    answer: dict[str, Any] | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.answer is not None or self.error is not None

    def settle(
        self, *, answer: dict[str, Any] | None = None, error: BaseException | None = None
    ) -> None:
        self.answer, self.error = answer, error
        self.wake.set()


def _batch_label(batch: list[_Plan]) -> str:
    if len(batch) == 1:
        return batch[0].where
    if all(plan.kind == "result" for plan in batch):
        return "recording a batch of step results"
    return "applying a batch of plans"


class PlanWriter:
    """Sends plans to ``tasker.apply_many`` in batches; see the module docstring."""

    def __init__(self, db: Database, *, batch_size: int = 64) -> None:
        self.db = db
        self.batch_size = batch_size
        self._waiting: list[_Plan] = []
        self._pump_owner: object | None = None
        self.batches = 0
        self.plans = 0
        self.relaxed_batches = 0

    async def write(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        where: str,
        announce: Sequence[str] = (),
        relaxed: bool = False,
    ) -> dict[str, Any]:
        """Apply one plan; the answer of the function that applies it.

        ``kind`` says which: ``"create"`` (a new task: ``tasker.create_task_claiming``),
        ``"claim"`` (``tasker.apply_plan_claiming``), ``"record"`` (a plan with the
        results it records: ``tasker.apply_plan_recording``) or ``"result"`` (a step result
        alone: ``tasker.record_result``, migration 0014). Every payload names its
        ``task_uuid``: a batch takes its locks in task order. ``where`` names the plan in
        errors (and a batch of it alone in the counts of round trips).

        ``announce`` are the signal keys (`tasker_trio.db.signals`) other processes are to
        hear of when the plan commits. A plan sent alone while no other waits has its own
        transaction notify them (migration 0016): the answer then says ``"announced":
        True``, and the caller fires them here with ``announced=True``. Under load the
        answer says False, and the process's publisher announces them, in a transaction
        beside the next batch (the batches are what limits throughput).

        ``relaxed``: the plan's commit need not wait for the WAL to reach the disk
        (``durability="outcomes"``); a batch commits so only when all its plans may.

        Raises:
            DatabaseError: the server refused this plan, or the database stayed
                unavailable (`DatabaseUnavailable`, also when it closed meanwhile).
        """
        # Encoded here, by its caller, rather than with its batch: the channel waits for a
        # batch's encoding, not for its plans'.
        encoded = dumps_compact({"kind": kind, "p": payload})
        plan = _Plan(
            kind=kind,
            task_uuid=str(payload["task_uuid"]),
            encoded=encoded,
            where=where,
            announce=tuple(announce),
            relaxed=relaxed,
        )
        self._waiting.append(plan)
        try:
            while not plan.done:
                if self._pump_owner is None:
                    await self._pump(until=plan)
                else:
                    await plan.wake.wait()
        except BaseException:
            plan.abandoned = True  # cancelled: if its batch goes again, it stays behind
            if plan in self._waiting:
                self._waiting.remove(plan)
            raise
        if plan.error is not None:
            raise plan.error
        assert plan.answer is not None
        return plan.answer

    async def _pump(self, *, until: _Plan | None) -> None:
        """Send batches until ``until`` is answered (None: until no plan waits)."""
        owner = self._pump_owner = object()
        try:
            await self.db.hold(
                partial(self._send_batches, owner, until), where="writing plans", idempotent=True
            )
        except BaseException as exc:
            if self._pump_owner is not owner:
                raise  # the pump was handed on already (cancelled on the way back)
            self._pump_owner = None
            if isinstance(exc, trio.Cancelled) and until is not None:
                until.abandoned = True
                self._hand_on()  # this caller was cancelled: the others still wait
            elif isinstance(exc, trio.Cancelled):
                self._fail_all(DatabaseUnavailable("writing plans: the database closed"))
            elif isinstance(exc, DatabaseError):
                self._fail_all(exc)
            else:
                self._fail_all(DatabaseError(f"writing plans: {type(exc).__name__}: {exc}"))
            if until is None and not isinstance(exc, trio.Cancelled):
                return  # in the background: the callers have the error
            raise

    async def _pump_in_background(self) -> None:
        await self._pump(until=None)

    def _hand_on(self) -> None:
        """Leave the waiting plans to a pump in the database's nursery (or fail them)."""
        self._waiting = [plan for plan in self._waiting if not plan.abandoned]
        if not self._waiting:
            self._pump_owner = None
            return
        self._pump_owner = self  # taken: the background pump makes itself the owner
        try:
            self.db.start_soon(self._pump_in_background, name="writing plans")
        except RuntimeError as exc:
            self._pump_owner = None
            self._fail_all(DatabaseUnavailable(str(exc)))

    def _fail_all(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, []
        for plan in waiting:
            plan.settle(error=error)

    def _take(self) -> list[_Plan]:
        """The next batch: the first plan waiting and the others (one sent alone goes by
        itself); empty when none waits."""
        self._waiting = [plan for plan in self._waiting if not plan.abandoned]
        if not self._waiting:
            return []
        first = self._waiting[0]
        batch = [first] if first.alone else [p for p in self._waiting if not p.alone]
        batch = batch[: self.batch_size]
        taken = {id(p) for p in batch}
        self._waiting = [p for p in self._waiting if id(p) not in taken]
        return batch

    async def _send_batches(self, owner: object, until: _Plan | None, conn: Connection) -> None:
        """The pump's operation, on the asyncio side (see the module docstring)."""
        while not (until is not None and until.done):
            batch = self._take()
            if not batch:
                break
            try:
                await self._send(batch, conn)
            except BaseException:
                self._waiting[:0] = batch  # lost or cancelled on its way: it goes again first
                raise
        if until is not None and self._waiting:
            self._hand_on()
        elif self._pump_owner is owner:
            self._pump_owner = None

    async def _send(self, batch: list[_Plan], conn: Connection) -> None:
        ordered = sorted(batch, key=lambda p: p.task_uuid)
        items = "[" + ",".join(p.encoded for p in ordered) + "]"
        # A plan alone, with none waiting, announces itself; under load the batch leaves it
        # to the publisher, whose transaction runs beside the next batch rather than in it.
        keys = list(ordered[0].announce) if len(batch) == 1 and not self._waiting else []
        label = _batch_label(batch)
        relaxed = all(plan.relaxed for plan in batch)
        started = time.perf_counter()
        try:
            if keys:
                channels, payloads = zip(*(channel_of(key) for key in keys), strict=True)
                statement = sql.APPLY_MANY_NOTIFYING + (sql.RELAXED if relaxed else "")
                answers = await conn.fetchval(statement, items, list(channels), list(payloads))
            else:
                statement = sql.APPLY_MANY + (sql.RELAXED if relaxed else "")
                answers = await conn.fetchval(statement, items)
        except TRANSLATED as exc:
            self.db.crossed(label, time.perf_counter() - started)
            error = translate(exc, where=label)
            if error.sqlstate is None or isinstance(error, DatabaseUnavailable | DatabaseConflict):
                raise  # the connection, or a deadlock's victim: the pump's retry takes it
            # Refused by the server: maybe for one plan's sake, which goes alone then.
            if len(batch) > 1:
                for plan in batch:
                    plan.alone = True
                self._waiting[:0] = batch
            else:
                batch[0].settle(error=error)
            return
        self.db.crossed(label + (RELAXED_LABEL if relaxed else ""), time.perf_counter() - started)
        self.batches += 1
        self.plans += len(batch)
        self.relaxed_batches += relaxed
        for plan, answer in zip(ordered, answers, strict=True):
            answer["announced"] = bool(keys)
            plan.settle(answer=answer)
