"""The task initialization service: a request -> a task whose first steps are enqueued.

Template lookup (refreshing the registry once from its source on a miss: another process may
have registered the template after this one started) and the context check happen before
anything is written; then one atomic store operation creates the task, its steps and edges,
moves it ``pending -> initializing`` and evaluates it (enqueueing the root steps with their
messages). A request whose identity matches an existing task creates nothing and returns
that task with ``created=False``.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from tasker_trio.models import Task, TaskRequest
from tasker_trio.orchestration.services.evaluation import evaluate
from tasker_trio.orchestration.services.task_initialization.template_loader import (
    load_for_request,
)
from tasker_trio.orchestration.services.task_initialization.workflow_builder import (
    build_workflow,
)
from tasker_trio.state_machine import TaskEvent
from tasker_trio.store.plan import Plan, PlanBuilder, TaskView
from tasker_trio.store.protocol import MessageRef, Store
from tasker_trio.templates import TemplateRegistry


def plan_initialization(view: TaskView, now: float) -> Plan:
    """Start the task and evaluate it: enqueue the roots, or complete an empty task."""
    builder = PlanBuilder(view)
    builder.task_event(TaskEvent.START)
    evaluate(builder, now)
    return builder.build()


@attrs.frozen(kw_only=True)
class InitializationResult:
    """The task a request led to, and whether this request created it."""

    task: Task
    created: bool


@attrs.frozen
class TaskInitializationService:
    """Create tasks from requests."""

    store: Store
    registry: TemplateRegistry

    async def call(
        self, request: TaskRequest, *, consumed: Sequence[MessageRef] = ()
    ) -> InitializationResult:
        """Create (or find) the task for ``request``; ``consumed`` (the request's message)
        is deleted with it (`Store.create_task`).

        Raises:
            UnknownTemplate, InvalidContext, InvalidTaskRequest: the request is not usable;
                nothing was created.
        """
        template = await load_for_request(self.registry, request)
        task, steps, edges = build_workflow(template, request, now=self.store.now())
        stored, created = await self.store.create_task(
            task, steps, edges, planner=plan_initialization, consumed=consumed
        )
        return InitializationResult(task=stored, created=created)
