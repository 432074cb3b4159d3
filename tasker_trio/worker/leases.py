"""Leases: one keeper per worker renews the claim and message visibility of running steps.

A step's claim (its lease) and its queue message's visibility both run out after the
visibility timeout unless renewed. Rather than a renewal task per running step, one keeper
renews every running step each third of the timeout. A worker that dies renews nothing, so
its steps are reclaimed once the timeout passes.
"""

from __future__ import annotations

import attrs
import trio

from tasker_trio.messaging.protocol import Broker
from tasker_trio.store.protocol import ClaimedStep, MessageRef, Store


@attrs.define(kw_only=True)
class RunningStep:
    """A step a worker runs now: its claim, its message, its cancel scope.

    Attributes:
        cancelled_by_operator: set when `cancel_task` (or an operator's resolve/complete)
            cancelled the scope, to tell that apart from the step's timeout.
    """

    claimed: ClaimedStep
    message: MessageRef
    scope: trio.CancelScope
    cancelled_by_operator: bool = False

    def cancel(self) -> None:
        """Cancel the handler on an operator's behalf."""
        self.cancelled_by_operator = True
        self.scope.cancel()


async def renew(store: Store, broker: Broker, running: RunningStep, lease: float) -> bool:
    """Renew one step's lease and its message's visibility; False if the attempt is over."""
    step = running.claimed.step
    if not await store.extend_lease(step.step_uuid, step.attempts, lease_seconds=lease):
        return False
    message = running.message
    await broker.extend_visibility(message.queue, message.msg_id, visibility_timeout=lease)
    return True


async def keep_leases(
    store: Store,
    broker: Broker,
    running: dict[str, RunningStep],
    lease: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Renew every running step each ``lease / 3`` seconds, until cancelled."""
    task_status.started()
    while True:
        await trio.sleep(lease / 3)
        for step in list(running.values()):
            await renew(store, broker, step, lease)
