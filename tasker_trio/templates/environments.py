"""Per-environment overrides (template field ``environments``): reading them and applying them.

The shape is tasker-core's::

    environments:
      test:
        steps:
          - name: ALL              # every step
            timeout_seconds: 10
            retry: {max_attempts: 2}
          - name: charge_payment   # one step; later entries win
            handler:
              initialization: {sandbox: true}

Applying an environment, overrides run in order: ``timeout_seconds`` replaces the step's
timeout; ``retry`` replaces only the retry fields it gives (tasker-core replaces the whole
block, resetting the others to their defaults — merging is what users expect);
``handler.initialization`` is merged over the step's, top-level keys winning (as tasker-core).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from tasker_trio.templates.model import (
    ALL_STEPS,
    EnvironmentOverride,
    StepOverride,
    StepTemplate,
)
from tasker_trio.templates.problems import Problems, kind

if TYPE_CHECKING:
    from tasker_trio.templates.task_template import TaskTemplate

ENVIRONMENT_KEYS = frozenset({"steps", "task_handler"})
OVERRIDE_KEYS = frozenset({"name", "timeout_seconds", "retry", "handler"})


def apply_environment(template: TaskTemplate, environment: str) -> TaskTemplate:
    """``template`` with the overrides of ``environment`` applied.

    An environment the template does not mention leaves it unchanged (most templates only
    override ``test`` or ``development``). The result keeps its ``environments``, so it can
    still be serialized as written.
    """
    override = template.environments.get(environment)
    if override is None:
        return template
    steps = list(template.steps)
    for step_override in override.steps:
        for index, step in enumerate(steps):
            if step_override.name in (ALL_STEPS, step.name):
                steps[index] = _apply_to_step(step, step_override)
    extensions = dict(template.extensions)
    task_handler = extensions.get("task_handler")
    if override.task_handler_initialization is not None and isinstance(task_handler, Mapping):
        merged = {**(task_handler.get("initialization") or {})}
        merged.update(override.task_handler_initialization)
        extensions["task_handler"] = {**task_handler, "initialization": merged}
    return attrs.evolve(template, steps=tuple(steps), extensions=extensions)


def _apply_to_step(step: StepTemplate, override: StepOverride) -> StepTemplate:
    changes: dict[str, Any] = {}
    if override.timeout_seconds is not None:
        changes["timeout_seconds"] = override.timeout_seconds
    if override.retry:
        changes["retry"] = attrs.evolve(step.retry, **override.retry)
    if override.initialization is not None:
        initialization = {**step.handler.initialization, **override.initialization}
        changes["handler"] = attrs.evolve(step.handler, initialization=initialization)
    return attrs.evolve(step, **changes)


def parse_environments(
    raw: Mapping[str, Any], problems: Problems
) -> dict[str, EnvironmentOverride]:
    """The ``environments`` block of ``raw``; every problem is recorded in ``problems``.

    Whether each override names a real step is checked later, with the other whole-template
    rules (``validation.py``).
    """
    block = problems.mapping(raw, "environments", field="environments")
    if block is None:
        return {}
    environments: dict[str, EnvironmentOverride] = {}
    for env, body in block.items():
        where = f"environments.{env}"
        if not isinstance(env, str) or not env:
            problems.error(f"environment names must be strings, got {env!r}", field="environments")
            continue
        if body is None:
            environments[env] = EnvironmentOverride()
            continue
        if not isinstance(body, Mapping):
            problems.error(f"must be a mapping, got {kind(body)}", field=where)
            continue
        problems.unknown_keys(body, ENVIRONMENT_KEYS, prefix=where + ".")
        environments[env] = EnvironmentOverride(
            steps=_parse_overrides(body.get("steps"), where + ".steps", problems),
            task_handler_initialization=_initialization(
                body, "task_handler", where + ".task_handler", problems, None
            ),
        )
    return environments


def _parse_overrides(value: Any, where: str, problems: Problems) -> tuple[StepOverride, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.error(f"must be a list of step overrides, got {kind(value)}", field=where)
        return ()
    overrides = []
    for index, entry in enumerate(value):
        field = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            problems.error(f"must be a mapping, got {kind(entry)}", field=field)
            continue
        name = problems.string(entry, "name", field=field + ".name", required=True)
        if name is None:
            continue
        problems.unknown_keys(entry, OVERRIDE_KEYS, prefix=field + ".", step=name)
        retry_raw = problems.mapping(entry, "retry", field=field + ".retry", step=name)
        retry = None
        if retry_raw is not None:
            retry = problems.retry_fields(retry_raw, field=field + ".retry", step=name)
        overrides.append(
            StepOverride(
                name=name,
                timeout_seconds=problems.positive_number(
                    entry, "timeout_seconds", field=field + ".timeout_seconds", step=name
                ),
                retry=retry,
                initialization=_initialization(
                    entry, "handler", field + ".handler", problems, name
                ),
            )
        )
    return tuple(overrides)


def _initialization(
    body: Mapping[str, Any], key: str, where: str, problems: Problems, step: str | None
) -> dict[str, Any] | None:
    """``body[key].initialization`` (a handler override), or ``None`` when not given."""
    handler = problems.mapping(body, key, field=where, step=step)
    if handler is None:
        return None
    problems.unknown_keys(handler, {"initialization"}, prefix=where + ".", step=step)
    return problems.mapping(handler, "initialization", field=where + ".initialization", step=step)
