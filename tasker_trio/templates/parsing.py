"""Build a draft `TaskTemplate` from its raw mapping (parsed YAML or JSON), field by field.

This module checks shapes and types — required fields, strings, mappings, numbers, enums,
aliases — and records each problem in a `Problems` instead of stopping. The rules that look
at the template as a whole (unknown dependencies, cycles, namespace, version, schema, ...)
live in ``validation.py`` and run on the draft afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tasker_trio.models.policy import RetryPolicy, StepType
from tasker_trio.templates.environments import parse_environments
from tasker_trio.templates.model import (
    DEFAULT_TIMEOUT_SECONDS,
    HandlerSpec,
    IdentityStrategy,
    LifecycleConfig,
    StalenessAction,
    StepTemplate,
)
from tasker_trio.templates.problems import Problems, kind
from tasker_trio.templates.task_template import TaskTemplate

TEMPLATE_KEYS = frozenset(
    {
        "name",
        "namespace_name",
        "version",
        "description",
        "metadata",
        "input_schema",
        "identity_strategy",
        "steps",
        "lifecycle",
        "environments",
    }
)
TEMPLATE_EXTENSIONS = frozenset({"task_handler", "system_dependencies", "domain_events"})
"""tasker-core template keys that are kept verbatim (no warning) but not interpreted."""

STEP_KEYS = frozenset(
    {
        "name",
        "description",
        "handler",
        "dependencies",
        "depends_on",
        "type",
        "step_type",
        "retry",
        "timeout_seconds",
    }
)
STEP_EXTENSIONS = frozenset({"system_dependency", "publishes_events", "batch_config"})
"""tasker-core step keys that are kept verbatim (no warning) but not interpreted."""

HANDLER_KEYS = frozenset({"callable", "initialization"})

LIFECYCLE_LIMITS = {
    "max_duration_minutes": 43200,
    "max_waiting_for_dependencies_minutes": 10080,
    "max_waiting_for_retry_minutes": 10080,
    "max_steps_in_process_minutes": 10080,
}
"""Each lifecycle limit's largest value in minutes (tasker-core's ranges); the smallest is 1."""
LIFECYCLE_FLAGS = ("auto_fail_on_timeout", "auto_dlq_on_timeout")


def parse_template(raw: Mapping[str, Any], problems: Problems) -> TaskTemplate:
    """A draft template from ``raw``; every problem found is recorded in ``problems``.

    The draft is complete even when problems were found (bad values are replaced by their
    defaults), so that whole-template validation can still run and report its own findings.
    """
    problems.unknown_keys(raw, TEMPLATE_KEYS | TEMPLATE_EXTENSIONS)
    name = problems.string(raw, "name", field="name", required=True) or ""
    namespace = problems.string(raw, "namespace_name", field="namespace_name", required=True)
    version = problems.string(raw, "version", field="version", required=True)
    description = problems.string(raw, "description", field="description")
    input_schema = raw.get("input_schema")
    if input_schema is not None and not isinstance(input_schema, Mapping | bool):
        problems.error(
            f"must be a JSON Schema (a mapping), got {kind(input_schema)}", field="input_schema"
        )
        input_schema = None
    elif isinstance(input_schema, Mapping):
        input_schema = problems.mapping(raw, "input_schema", field="input_schema")
    return TaskTemplate(
        name=name,
        namespace_name=namespace or "",
        version=version or "",
        description=description,
        metadata=problems.mapping(raw, "metadata", field="metadata") or {},
        input_schema=input_schema,
        identity_strategy=_identity_strategy(raw, problems),
        steps=_parse_steps(raw.get("steps"), problems),
        lifecycle=_parse_lifecycle(raw, problems),
        environments=parse_environments(raw, problems),
        extensions={
            key: copy.deepcopy(raw[key]) for key in sorted(TEMPLATE_EXTENSIONS) if key in raw
        },
    )


def _identity_strategy(raw: Mapping[str, Any], problems: Problems) -> IdentityStrategy:
    value = raw.get("identity_strategy")
    if value is None:
        return IdentityStrategy.STRICT
    try:
        return IdentityStrategy(value)
    except ValueError:
        choices = ", ".join(strategy.value for strategy in IdentityStrategy)
        problems.error(f"must be one of {choices}, got {value!r}", field="identity_strategy")
        return IdentityStrategy.STRICT


def _parse_steps(raw_steps: Any, problems: Problems) -> tuple[StepTemplate, ...]:
    if raw_steps is None:
        return ()
    if not isinstance(raw_steps, list):
        problems.error(f"must be a list of steps, got {kind(raw_steps)}", field="steps")
        return ()
    steps = []
    for index, raw_step in enumerate(raw_steps):
        if not isinstance(raw_step, Mapping):
            problems.error(
                f"each step must be a mapping, got {kind(raw_step)}", field=f"steps[{index}]"
            )
            continue
        steps.append(_parse_step(raw_step, index, problems))
    return tuple(steps)


def _parse_step(raw: Mapping[str, Any], index: int, problems: Problems) -> StepTemplate:
    name = problems.string(raw, "name", field=f"steps[{index}].name", required=True)
    step = name or f"steps[{index}]"
    name = name or ""
    problems.unknown_keys(raw, STEP_KEYS | STEP_EXTENSIONS, step=step)
    retry_raw = problems.mapping(raw, "retry", field="retry", step=step)
    retry = RetryPolicy(**problems.retry_fields(retry_raw or {}, field="retry", step=step))
    timeout = problems.positive_number(raw, "timeout_seconds", field="timeout_seconds", step=step)
    return StepTemplate(
        name=name,
        description=problems.string(raw, "description", field="description", step=step),
        handler=_parse_handler(raw, problems, step),
        dependencies=_parse_dependencies(raw, problems, step),
        step_type=_parse_step_type(raw, problems, step),
        retry=retry,
        timeout_seconds=DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout,
        extensions={key: copy.deepcopy(raw[key]) for key in sorted(STEP_EXTENSIONS) if key in raw},
    )


def _aliased(
    raw: Mapping[str, Any], key: str, alias: str, problems: Problems, step: str
) -> tuple[str, Any]:
    """The key actually used (``key`` or its ``alias``) and its value; both given is an error."""
    if key in raw and alias in raw:
        problems.error(f"give {key} or its alias {alias}, not both", step=step, field=alias)
    used = alias if alias in raw and key not in raw else key
    return used, raw.get(used)


def _parse_dependencies(raw: Mapping[str, Any], problems: Problems, step: str) -> tuple[str, ...]:
    field, value = _aliased(raw, "dependencies", "depends_on", problems, step)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.error(
            f"must be a list of step names, got {value!r}", step=step, field="dependencies"
        )
        return ()
    unique = tuple(dict.fromkeys(value))
    if len(unique) != len(value):
        problems.warn("lists a dependency more than once", step=step, field=field)
    return unique


def _parse_step_type(raw: Mapping[str, Any], problems: Problems, step: str) -> StepType:
    field, value = _aliased(raw, "type", "step_type", problems, step)
    if value is None:
        return StepType.STANDARD
    try:
        return StepType(value)
    except ValueError:
        choices = ", ".join(step_type.value for step_type in StepType)
        problems.error(f"must be one of {choices}, got {value!r}", step=step, field=field)
        return StepType.STANDARD


def _parse_handler(raw: Mapping[str, Any], problems: Problems, step: str) -> HandlerSpec:
    handler = raw.get("handler")
    if not isinstance(handler, Mapping):
        reason = "is required" if handler is None else f"must be a mapping, got {kind(handler)}"
        problems.error(reason, step=step, field="handler")
        return HandlerSpec(callable="")
    problems.unknown_keys(handler, HANDLER_KEYS, prefix="handler.", step=step)
    callable_ref = problems.string(
        handler, "callable", field="handler.callable", step=step, required=True
    )
    initialization = problems.mapping(
        handler, "initialization", field="handler.initialization", step=step
    )
    return HandlerSpec(callable=callable_ref or "", initialization=initialization or {})


def _parse_lifecycle(raw: Mapping[str, Any], problems: Problems) -> LifecycleConfig | None:
    block = problems.mapping(raw, "lifecycle", field="lifecycle")
    if block is None:
        return None
    known = {*LIFECYCLE_LIMITS, *LIFECYCLE_FLAGS, "staleness_action"}
    problems.unknown_keys(block, known, prefix="lifecycle.")
    limits = {
        key: problems.int_in_range(block, key, 1, high, field=f"lifecycle.{key}")
        for key, high in LIFECYCLE_LIMITS.items()
    }
    flags: dict[str, bool | None] = {}
    for key in LIFECYCLE_FLAGS:
        value = block.get(key)
        if value is not None and not isinstance(value, bool):
            problems.error(f"must be true or false, got {value!r}", field=f"lifecycle.{key}")
            value = None
        flags[key] = value
    action = StalenessAction.DLQ
    if block.get("staleness_action") is not None:
        try:
            action = StalenessAction(block["staleness_action"])
        except ValueError:
            choices = ", ".join(a.value for a in StalenessAction)
            problems.error(
                f"must be one of {choices}, got {block['staleness_action']!r}",
                field="lifecycle.staleness_action",
            )
    return LifecycleConfig(
        max_duration_minutes=limits["max_duration_minutes"],
        max_waiting_for_dependencies_minutes=limits["max_waiting_for_dependencies_minutes"],
        max_waiting_for_retry_minutes=limits["max_waiting_for_retry_minutes"],
        max_steps_in_process_minutes=limits["max_steps_in_process_minutes"],
        staleness_action=action,
        auto_fail_on_timeout=flags["auto_fail_on_timeout"],
        auto_dlq_on_timeout=flags["auto_dlq_on_timeout"],
    )
