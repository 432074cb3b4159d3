"""Staleness: find tasks stuck past their lifecycle limits and apply the template's action.

A task is stale when it has existed longer than ``max_duration_minutes``, or has rested in
``waiting_for_dependencies`` / ``steps_in_process`` / ``waiting_for_retry`` longer than the
matching limit (the template's, else the engine's default; ``None`` disables a check). The
default has no limit for ``waiting_for_retry``: a task waiting out a backoff is woken by the
retry timer and is never swept for waiting (semantics §4). A template's own
``max_waiting_for_retry_minutes`` is reported (logged and returned) but changes nothing,
since the step machine has no way to fail a step that waits out its backoff.

Actions (``lifecycle.staleness_action``), all through legal transitions:

- ``dlq`` (default): the task's steps in flight (enqueued, in progress) fail with
  a ``Stale`` error, the task becomes ``blocked_by_failures`` and gets a dead-letter entry
  whose reason is ``stale`` — an operator can reset the steps and resume it.
- ``error``: the same, then the task is given up (``error``).
- ``none``: only reported (logged and returned), nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

from tasker_trio.models import StepError, Task
from tasker_trio.orchestration.services.evaluation import reevaluate
from tasker_trio.state_machine import StepEvent, TaskEvent, TaskState
from tasker_trio.store.plan import Plan, PlanBuilder, TaskView
from tasker_trio.store.protocol import Store
from tasker_trio.templates import LifecycleConfig, StalenessAction, TemplateRegistry

_log = logging.getLogger("tasker_trio.orchestration.staleness")

FAILABLE = frozenset({"enqueued", "in_progress"})
"""The steps a stale task fails: those a worker holds or should hold (their descendants stay
pending, blocked behind them, so resetting or completing the failed step resumes the task)."""


@attrs.frozen(kw_only=True)
class LifecycleDefaults:
    """The engine's limits (minutes) where a template sets none; ``None`` disables."""

    max_duration_minutes: float | None = None
    max_waiting_for_dependencies_minutes: float | None = 60.0
    max_waiting_for_retry_minutes: float | None = None
    max_steps_in_process_minutes: float | None = 60.0


_STATE_LIMITS = {
    TaskState.WAITING_FOR_DEPENDENCIES: "max_waiting_for_dependencies_minutes",
    TaskState.WAITING_FOR_RETRY: "max_waiting_for_retry_minutes",
    TaskState.STEPS_IN_PROCESS: "max_steps_in_process_minutes",
}


def staleness_reason(
    task: Task, lifecycle: LifecycleConfig | None, defaults: LifecycleDefaults, now: float
) -> str | None:
    """Why ``task`` is stale at ``now`` (which limit it passed), or ``None``."""

    def limit(name: str) -> float | None:
        value: float | None = getattr(lifecycle, name, None) if lifecycle is not None else None
        if value is None:
            value = getattr(defaults, name)
        return value

    total = limit("max_duration_minutes")
    if total is not None and now - task.created_at > total * 60:
        return f"exceeded max_duration_minutes ({total:g})"
    field = _STATE_LIMITS.get(task.state)
    if field is not None:
        minutes = limit(field)
        if minutes is not None and now - task.updated_at > minutes * 60:
            return f"{task.state.value} longer than {field} ({minutes:g})"
    return None


def plan_stale(reason: str, action: StalenessAction) -> Callable[[TaskView, float], Plan]:
    """Fail the task's unfinished steps and block it (then give up for ``error``)."""

    def planner(view: TaskView, now: float) -> Plan:
        builder = PlanBuilder(view)
        if view.task.state.is_terminal or view.task.state == TaskState.BLOCKED_BY_FAILURES:
            return builder.build()
        for step in view.steps:
            if step.state.value in FAILABLE:
                error = StepError(
                    error_type="Stale",
                    message=f"task is stale: {reason}",
                    retryable=False,
                    attempt=step.attempts,
                )
                builder.step_event(
                    step.step_uuid,
                    StepEvent.FAIL,
                    updates={"last_error": error, "lease_expires_at": None},
                    metadata={"reason": "stale", "detail": reason},
                )
        reevaluate(builder, now)
        if builder.task_state == TaskState.BLOCKED_BY_FAILURES:
            builder.dead_letter("stale", detail=reason, action=action.value)
            if action == StalenessAction.ERROR:
                builder.task_event(TaskEvent.GIVE_UP, reason="stale", detail=reason)
        builder.outcome["stale"] = reason
        return builder.build()

    return planner


@attrs.frozen
class StalenessService:
    """Sweep every active task once and apply the staleness actions."""

    store: Store
    templates: TemplateRegistry
    defaults: LifecycleDefaults = LifecycleDefaults()

    async def call(self, now: float | None = None) -> dict[str, str]:
        """Sweep; return ``{task uuid: reason}`` for every stale task found."""
        now = self.store.now() if now is None else now
        found: dict[str, str] = {}
        active = [s for s in TaskState if not s.is_terminal and s != TaskState.BLOCKED_BY_FAILURES]
        for task in await self.store.list_tasks(active):
            try:
                lifecycle = self.templates.get(task.namespace, task.name, task.version).lifecycle
            except LookupError:
                lifecycle = None
            reason = staleness_reason(task, lifecycle, self.defaults, now)
            if reason is None:
                continue
            found[task.task_uuid] = reason
            action = lifecycle.staleness_action if lifecycle is not None else StalenessAction.DLQ
            _log.warning("task %s is stale (%s): action %s", task.task_uuid, reason, action.value)
            if action != StalenessAction.NONE:
                await self.store.apply(task.task_uuid, plan_stale(reason, action))
        return found
