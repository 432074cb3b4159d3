"""The worker: a `WorkerActor` that runs steps, fed by one poller per namespace queue.

The poller reads only as many messages as the worker has free slots (its concurrency), so a
busy worker leaves messages for others. It reads and claims together
(`Store.claim_from_queue`: one round trip in PostgreSQL); the actor runs each claimed step
in a handler task and records the result (which deletes the message, atomically). A
message that is not a step message is archived as poison.

A slot is a handler running: a step gives its slot back as soon as its handler has
finished, while its result is being recorded, so the next step can start meanwhile (in one
process, the plan that records a result claims the task's next step in its own
transaction when a slot is free; `tasker_trio.store.postgres._handoff`). A result being
recorded holds one of `WorkerContext.recording`'s places instead, as many as slots: when
they are all taken, a finished step keeps its slot until one is free, so a worker whose
results cannot be recorded stops taking steps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any, ClassVar

import attrs
import trio

from tasker_trio.actors import Actor, Message, handles
from tasker_trio.errors import ActorStopped, MailboxFull, PoisonMessage
from tasker_trio.messaging.protocol import Broker, QueueMessage
from tasker_trio.messaging.resilient import read_or_pause, wait_or_pause
from tasker_trio.models import ORCHESTRATION_STEP_RESULTS
from tasker_trio.orchestration.hydration import hydrate_step
from tasker_trio.store.protocol import ClaimOutcome, MessageRef, QueuedClaim, Store
from tasker_trio.worker.executor import ExecutionSettings, execute
from tasker_trio.worker.handlers import HandlerResolver
from tasker_trio.worker.leases import RunningStep

_log = logging.getLogger("tasker_trio.worker")


@attrs.define(kw_only=True)
class WorkerContext:
    """What a worker shares with its pollers and the engine.

    Attributes:
        running: every step running here, by step uuid (the lease keeper renews them,
            operators cancel them).
        slots: free execution slots (handlers running); pollers take one per message read.
        recording: free places for results being recorded (as many as slots).
    """

    store: Store
    broker: Broker
    resolver: HandlerResolver
    settings: ExecutionSettings
    concurrency: int
    running: dict[str, RunningStep] = attrs.field(factory=dict)
    slots: trio.Semaphore = attrs.field(init=False)
    recording: trio.Semaphore = attrs.field(init=False)
    executed: int = 0
    poisoned: int = 0
    steps_handed_over: int = 0
    results_handed_over: int = 0

    def __attrs_post_init__(self) -> None:
        self.slots = trio.Semaphore(self.concurrency)
        self.recording = trio.Semaphore(self.concurrency)

    def cancel_steps(self, step_uuids: list[str]) -> int:
        """Cancel the running handlers of these steps; return how many were running here."""
        cancelled = 0
        for step_uuid in step_uuids:
            running = self.running.get(step_uuid)
            if running is not None:
                running.cancel()
                cancelled += 1
        return cancelled


@attrs.frozen(kw_only=True)
class ExecuteStep(Message[None]):
    """Run the step a worker-queue message names (its slot is already taken).

    ``outcome`` is the claim made when the message was read (`Store.claim_from_queue`);
    None when the message is not a step message.
    """

    message: QueueMessage
    outcome: ClaimOutcome | None


class WorkerActor(Actor[WorkerContext]):
    """Runs steps; build it with `worker_actor_class` to set its concurrency."""

    mailbox_capacity: ClassVar[int] = 1024

    @handles(ExecuteStep)
    async def execute_step(self, command: ExecuteStep) -> None:
        """Run one claimed step, then record its result; frees the slot once the handler
        has finished (see the module docstring), and always."""
        slot = _Slot(self.context.slots)
        try:
            await self._run(command.message, command.outcome, slot)
        finally:
            slot.release()

    async def _run(self, message: QueueMessage, outcome: ClaimOutcome | None, slot: _Slot) -> None:
        ctx = self.context
        ref = MessageRef(queue=message.queue, msg_id=message.msg_id)
        if outcome is None:
            try:
                step_message = hydrate_step(message)
            except PoisonMessage as exc:
                await ctx.broker.archive(message.queue, message.msg_id, reason=exc.reason)
                ctx.poisoned += 1
                return
            # A step message after all (the store's check is stricter): claim it now.
            outcome = await ctx.store.claim_step(
                step_message.step_uuid,
                lease_seconds=ctx.settings.visibility_timeout,
                worker_id=ctx.settings.worker_id,
                message=ref,
            )
        if outcome.claimed is None:
            if outcome.reason == "unknown_step":
                await ctx.broker.archive(message.queue, message.msg_id, reason="unknown step")
                ctx.poisoned += 1
            return
        step_uuid = outcome.claimed.step.step_uuid
        running = RunningStep(claimed=outcome.claimed, message=ref, scope=trio.CancelScope())
        ctx.running[step_uuid] = running
        try:
            result = await execute(running, resolver=ctx.resolver, settings=ctx.settings)
        finally:
            ctx.running.pop(step_uuid, None)
        try:
            ctx.recording.acquire_nowait()  # no scheduler pass when a place is free
        except trio.WouldBlock:
            await ctx.recording.acquire()
        slot.release()
        try:
            recorded = await ctx.store.record_result(
                result, message=ref, result_queue=ORCHESTRATION_STEP_RESULTS
            )
        finally:
            ctx.recording.release()
        ctx.executed += 1
        ctx.results_handed_over += recorded.handed_over


@attrs.define
class _Slot:
    """A step's execution slot, given back once."""

    slots: trio.Semaphore
    held: bool = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()


@attrs.define(kw_only=True)
class WorkerHandoff:
    """The `LocalWorker` of an engine's workers: takes the steps its own orchestration enqueues.

    Steps are claimed for it in the plan that enqueues them (`SupportsHandoff.hand_off`),
    one free slot each, and told to the `WorkerActor` like the poller's claims. `close` it
    before the workers stop: later plans leave their steps in the queues.
    """

    context: WorkerContext
    actor: Any
    queues: frozenset[str]
    worker_id: str
    lease_seconds: float
    accepting: bool = True

    def serves(self, queue: str) -> bool:
        """Whether these workers run ``queue``'s steps (and still take any)."""
        return self.accepting and queue in self.queues

    def reserve(self, wanted: int) -> int:
        """Take up to ``wanted`` free slots (none once closed)."""
        taken = 0
        while self.accepting and taken < wanted:
            try:
                self.context.slots.acquire_nowait()
            except trio.WouldBlock:
                break
            taken += 1
        return taken

    def release(self, count: int) -> None:
        """Give back ``count`` reserved slots."""
        for _ in range(count):
            self.context.slots.release()

    def deliver(self, claims: Sequence[QueuedClaim]) -> None:
        """Run the claimed steps (their slots are reserved; the actor frees them)."""
        for index, claim in enumerate(claims):
            try:
                self.actor.tell_nowait(ExecuteStep(message=claim.message, outcome=claim.outcome))
            except (ActorStopped, MailboxFull):
                # Stopping: the claims stay in PostgreSQL and their messages turn visible
                # when their leases run out, as a stopped worker's do.
                self.release(len(claims) - index)
                _log.warning(
                    "workers stopped: %d handed-over step(s) left to their leases",
                    len(claims) - index,
                )
                return
            self.context.steps_handed_over += 1

    def close(self) -> None:
        """Take no more steps."""
        self.accepting = False


def worker_actor_class(concurrency: int, *, stop_grace: float) -> type[WorkerActor]:
    """A `WorkerActor` subclass that runs up to ``concurrency`` steps at once.

    Its handler tasks are twice as many: up to ``concurrency`` running steps' handlers (the
    slots) and as many recording results (`WorkerContext.recording`). On shutdown, running
    steps get ``stop_grace`` seconds to finish before they are cancelled (a cancelled step
    records nothing: its message is redelivered later).
    """
    return type(
        "WorkerActor",
        (WorkerActor,),
        {"concurrency": 2 * concurrency, "stop_grace": stop_grace},
    )


async def poll_queue(
    context: WorkerContext,
    actor: Any,
    queue: str,
    *,
    poll_interval: float = 1.0,
    batch_size: int = 16,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Feed ``actor`` (a ref to a `WorkerActor`) with messages of ``queue`` while slots are free."""
    task_status.started()
    broker = context.broker
    while True:
        await context.slots.acquire()
        taken = 1
        while taken < batch_size:
            try:
                context.slots.acquire_nowait()
            except trio.WouldBlock:
                break
            taken += 1
        read_and_claim = partial(
            context.store.claim_from_queue,
            queue,
            limit=taken,
            visibility_timeout=context.settings.visibility_timeout,
            lease_seconds=context.settings.visibility_timeout,
            worker_id=context.settings.worker_id,
        )
        claims = await read_or_pause(read_and_claim, queue, pause=min(poll_interval, 1.0))
        for _ in range(taken - len(claims)):
            context.slots.release()
        for claim in claims:
            await actor.tell(ExecuteStep(message=claim.message, outcome=claim.outcome))
        if len(claims) < taken:
            # Drained when read: wait (at once done if a message is visible by now) rather
            # than read again, which would come back empty as a rule.
            await wait_or_pause(broker, queue, timeout=poll_interval)
