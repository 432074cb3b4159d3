"""The retry timer: wakes tasks parked in ``waiting_for_retry`` when their backoff ends.

It sleeps until the earliest ``next_retry_at`` among parked tasks (re-planning when a new
retry is scheduled, and at least every ``poll_interval``), then sends `EnqueueReadySteps`
for each task that is due.
"""

from __future__ import annotations

import logging

import trio

from tasker_trio.orchestration.command_processor import CommandProcessor
from tasker_trio.orchestration.commands import EnqueueReadySteps
from tasker_trio.orchestration.context import OrchestrationContext

_log = logging.getLogger("tasker_trio.orchestration.retry_timer")


async def run_retry_timer(
    context: OrchestrationContext,
    commands: CommandProcessor,
    *,
    poll_interval: float = 1.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until cancelled."""
    task_status.started()
    store = context.store
    while True:
        context.retry_wakeup = trio.Event()
        now = store.now()
        for task_uuid in await store.tasks_due_for_retry(now):
            try:
                await commands.process(EnqueueReadySteps(task_uuid=task_uuid))
            except Exception:
                _log.exception("waking task %s for its retry failed", task_uuid)
        earliest = await store.earliest_retry_at()
        delay = poll_interval if earliest is None else min(poll_interval, earliest - store.now())
        if delay > 0:
            with trio.move_on_after(delay):
                await context.retry_wakeup.wait()
