"""The staleness sweeper: runs the staleness service every ``interval`` seconds."""

from __future__ import annotations

import logging

import trio

from tasker_trio.orchestration.services.staleness import StalenessService

_log = logging.getLogger("tasker_trio.orchestration.staleness")


async def run_staleness_sweeper(
    service: StalenessService,
    *,
    interval: float = 60.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Sweep until cancelled; a failing sweep is logged and retried at the next interval."""
    task_status.started()
    while True:
        await trio.sleep(interval)
        try:
            await service.call()
        except Exception:
            _log.exception("staleness sweep failed")
