"""Handler probes: what a handler sees of the engine at the instant it starts.

`HandlerProbes` wraps every handler a workload's templates name. Before the handler runs,
the probe reads the task and its steps through the public `Engine` API and records a problem
when the task is already terminal, the attempt exceeds ``max_attempts``, or a parent is not
``complete``/``resolved_manually`` — the live counterpart of the audit-trail checks of
`tasker_trio.testing.invariants`. It also provides the handler of scripted templates
(`tasker_trio.testing.strategies.SCRIPTED_HANDLER`), which does what each step's
`StepScript` says.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs
import trio

from tasker_trio.engine_api import Engine
from tasker_trio.errors import HandlerResolutionError, PermanentError, RetryableError
from tasker_trio.models import Task
from tasker_trio.testing.invariants import SATISFYING
from tasker_trio.testing.strategies import SCRIPTED_HANDLER, Outcome, Workload
from tasker_trio.worker.context import StepContext
from tasker_trio.worker.handlers import HandlerFn, HandlerResolver

__all__ = ["HandlerProbes"]


@attrs.define(kw_only=True)
class HandlerProbes:
    """The probed handlers of one workload, and the problems the probes found.

    Attributes:
        workload: the templates and handlers (and scripts) of the run.
        engine: returns the running engine (the probes read the task through it).
        parents_of: each step's parent step names, by step name, for a task.
        reset_steps: (task uuid, step name) of steps an operator reset: scripted ones then
            succeed. Read live: the caller adds to it while the engine runs.
        problems: one sentence per violation seen at a handler's start.
    """

    workload: Workload
    engine: Callable[[], Engine]
    parents_of: Callable[[Task], Mapping[str, tuple[str, ...]]]
    reset_steps: Collection[tuple[str, str]]
    problems: list[str] = attrs.field(factory=list)

    def handlers(self) -> dict[str, HandlerFn]:
        """Every handler the templates name, wrapped in a probe (and the scripted one)."""
        resolver = HandlerResolver({SCRIPTED_HANDLER: self.scripted, **self.workload.handlers})
        probed: dict[str, HandlerFn] = {}
        for template in self.workload.templates:
            for step in template.steps:
                reference = step.handler.callable
                try:
                    resolved = resolver.resolve(reference)
                except HandlerResolutionError:
                    continue  # the engine reports it as the step's failure
                probed[reference] = self._probe(resolved.fn)
        return probed

    def _probe(self, fn: HandlerFn) -> HandlerFn:
        async def probe(ctx: StepContext) -> Any:
            await self._observe(ctx)
            result = fn(ctx)
            if inspect.isawaitable(result):
                result = await result
            return result

        return probe

    async def _observe(self, ctx: StepContext) -> None:
        """At the instant a handler starts: its task is live and its parents are satisfied."""
        engine = self.engine()
        task = await engine.get_task(ctx.task_uuid)
        steps = {s.name: s for s in await engine.get_steps(ctx.task_uuid)}
        where = f"handler of {task.name}.{ctx.step_name} attempt {ctx.attempt}"
        if task.state.is_terminal:
            self.problems.append(f"{where} started in a {task.state} task")
        if ctx.attempt > ctx.max_attempts:
            self.problems.append(f"{where} exceeds max_attempts {ctx.max_attempts}")
        for parent in self.parents_of(task).get(ctx.step_name, ()):
            if steps[parent].state not in SATISFYING:
                self.problems.append(
                    f"{where} started while parent {parent} is {steps[parent].state}"
                )

    async def scripted(self, ctx: StepContext) -> dict[str, Any]:
        """The handler of scripted templates: does what the step's `StepScript` says."""
        script = self.workload.scripted[str(ctx.step_config["template"])].scripts[ctx.step_name]
        outcome = script.outcome(ctx.attempt)
        if (ctx.task_uuid, ctx.step_name) in self.reset_steps:
            outcome = Outcome.SUCCEED
        if outcome == Outcome.RETRYABLE:
            raise RetryableError(f"scripted failure {ctx.attempt}", retry_after=script.retry_after)
        if outcome == Outcome.PERMANENT:
            raise PermanentError("scripted permanent failure")
        if outcome == Outcome.HANG:
            await trio.sleep_forever()
        for _ in range(script.checkpoints):
            await trio.lowlevel.checkpoint()
        return {"step": ctx.step_name, "attempt": ctx.attempt}
