"""The task finalization service: re-evaluate a task and finalize it if it is done.

Finalization requests come from the ``orchestration_task_finalizations`` queue, from
operators, and from the staleness sweeper. The decision runs in one atomic store operation
(the task's lock in memory, its row lock in PostgreSQL), so two orchestrators finalizing the
same task produce one outcome: the second finds it already final and changes nothing.
"""

from __future__ import annotations

import attrs

from tasker_trio.models import Task
from tasker_trio.orchestration.services.evaluation import reevaluate
from tasker_trio.store.plan import Plan, PlanBuilder, TaskView
from tasker_trio.store.protocol import Store


def plan_finalization(view: TaskView, now: float) -> Plan:
    """Bring the task into evaluation (if it rests in a waiting state) and decide."""
    builder = PlanBuilder(view)
    reevaluate(builder, now)
    return builder.build()


@attrs.frozen
class TaskFinalizationService:
    """Finalize a task if nothing is left to run."""

    store: Store

    async def call(self, task_uuid: str) -> Task:
        """Re-evaluate ``task_uuid``; return the task afterwards."""
        _, view = await self.store.apply(task_uuid, plan_finalization)
        return view.task
