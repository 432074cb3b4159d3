"""The life of one actor inside the registry's nursery: start, serve, restart, finish.

`run_actor` is the task the registry starts for each actor with ``nursery.start``. It runs
`Actor.started`, reports readiness, then runs ``concurrency`` handler tasks in a nursery of
their own. A *loop crash* (an `Exception` escaping that nursery: a handler raising
`CrashActor`, or `started` failing on a restart) restarts the actor one-for-one while its
`RestartPolicy` allows; past it, the registry is told (``on_fatal``) and the task ends.
A handler's ordinary exception is not a crash: it goes back to the asker.
"""

from __future__ import annotations

from typing import Any

import outcome
import trio

from tasker_trio.actors.cell import ActorCell
from tasker_trio.errors import ActorCrashed, ActorStopped, CrashActor

__all__ = ["run_actor"]


async def run_actor(
    cell: ActorCell, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run ``cell``'s actor until its mailbox is drained, its scope cancelled, or it is fatal.

    Readiness goes through ``task_status``: the caller's ``nursery.start`` returns only after
    the first `Actor.started` returned, and raises its error if it failed. From then on the
    actor's scope is shielded from outside cancellation: only the registry stops it (by
    closing its mailbox, then cancelling ``cell.scope``), so stop order is always kept.
    """
    try:
        with trio.CancelScope() as scope:
            cell.scope = scope
            cell.state = "starting"
            await cell.actor.started()
            cell.started_once = True
            cell.state = "running"
            scope.shield = True
            task_status.started()
            await _supervise(cell, scope)
    finally:
        cell.finished.set()


async def _supervise(cell: ActorCell, scope: trio.CancelScope) -> None:
    """Serve the mailbox, restarting the handler tasks after each crash the policy allows."""
    actor = cell.actor
    restarting = False
    while True:
        try:
            if restarting:
                cell.state = "restarting"
                await actor.started()
                cell.state = "running"
            async with trio.open_nursery() as nursery:
                for _ in range(actor.concurrency):
                    nursery.start_soon(_handle_messages, cell)
        except BaseException as error:
            cause = _crash_cause(error)
            if cause is None:
                raise
        else:
            return
        if scope.cancel_called:
            actor.log.error("loop crashed while being stopped", exc_info=cause)
            return
        window = cell.restart_window
        if not window.record_crash(trio.current_time()):
            policy = window.policy
            fatal = ActorCrashed(cell.name, window.recent - 1, policy.window, cause)
            fatal.__cause__ = cause
            actor.log.error("loop crashed beyond its restart policy; giving up", exc_info=cause)
            cell.state = "crashed"
            cell.on_fatal(cell, fatal)
            return
        cell.counters.restarts += 1
        actor.log.warning(
            "loop crashed; restarting (%d of %d allowed within %gs)",
            window.recent,
            window.policy.max_restarts,
            window.policy.window,
            exc_info=cause,
        )
        restarting = True


def _crash_cause(error: BaseException) -> Exception | None:
    """The crash behind ``error``, or ``None`` when it is not a crash (cancellation, ^C...).

    A nursery wraps what its tasks raise in an exception group; a crash is a group (or bare
    error) whose leaves are all ordinary `Exception`\\ s. The first leaf is the cause.
    """
    leaves: list[BaseException] = []
    stack = [error]
    while stack:
        current = stack.pop()
        if isinstance(current, BaseExceptionGroup):
            stack.extend(reversed(current.exceptions))
        else:
            leaves.append(current)
    if not leaves or not all(isinstance(leaf, Exception) for leaf in leaves):
        return None
    first = leaves[0]
    assert isinstance(first, Exception)
    return first


async def _handle_messages(cell: ActorCell) -> None:
    """One handler task: take envelopes until end-of-channel, answering each asker once.

    This is the hot path: no logging unless a told message fails, counters are plain adds,
    and the latency ring is a bounded deque.
    """
    actor = cell.actor
    counters = cell.counters
    latencies = counters.latencies
    now = trio.current_time
    reply: Any
    async for message, handler, slot in cell.receive:
        if slot is not None and slot.abandoned:
            counters.abandoned += 1
            continue
        counters.in_flight += 1
        began = now()
        try:
            reply = await handler(actor, message)
        except CrashActor as crash:
            counters.failed += 1
            if slot is not None:
                stopped = ActorStopped(cell.name, type(message).__qualname__)
                stopped.__cause__ = crash
                slot.resolve(outcome.Error(stopped))
            raise
        except Exception as error:
            counters.failed += 1
            if slot is None:
                actor.log.error("told %s failed", type(message).__qualname__, exc_info=error)
            else:
                slot.resolve(outcome.Error(error))
        else:
            counters.handled += 1
            if slot is not None:
                slot.resolve(outcome.Value(reply))
        finally:
            counters.in_flight -= 1
            latencies.append(now() - began)
            if slot is not None and slot.pending:
                # Cancelled (the actor is stopping) or crashed by a sibling handler task.
                slot.resolve(outcome.Error(ActorStopped(cell.name, type(message).__qualname__)))
