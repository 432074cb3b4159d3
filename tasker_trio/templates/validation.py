"""Whole-template rules, run on the draft the parser built; each problem names file/step/field.

The rules: template name, namespace (``^[a-z][a-z0-9_]{0,28}$``) and semantic version;
unique step names (``ALL`` is reserved for environment overrides); a plausible
``handler.callable``; dependencies that exist and are not the step itself; no cycles (each
reported with its path); a ``decision`` step has a parent; environment overrides name real
steps; ``input_schema`` is a valid JSON Schema. Handlers are not imported here: the engine
resolves them.
"""

from __future__ import annotations

import re

from tasker_trio.errors import TemplateCycleError
from tasker_trio.models.policy import StepType
from tasker_trio.templates import graph
from tasker_trio.templates.model import ALL_STEPS
from tasker_trio.templates.problems import Problems, suggestion
from tasker_trio.templates.schema import schema_problems
from tasker_trio.templates.semver import is_semver
from tasker_trio.templates.task_template import TaskTemplate

NAMESPACE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,28}$")
"""A namespace becomes part of a queue name (``worker_{namespace}_queue``)."""

TEMPLATE_NAME_PATTERN = re.compile(r"^[^\s/@]{1,255}$")
"""A template name: 1-255 characters, no whitespace, ``/`` or ``@`` (used in identifiers)."""

CALLABLE_PATTERN = re.compile(r"^[A-Za-z_][\w.:-]*$")
"""``pkg.mod:func``, ``pkg.mod.Class``, or a bare registered name (``::`` paths also fit)."""

MAX_STEP_NAME = 255


def validate(template: TaskTemplate, problems: Problems) -> None:
    """Record in ``problems`` every rule ``template`` breaks.

    Values the parser already reported as missing (empty strings) are skipped here.
    """
    _check_identity(template, problems)
    _check_steps(template, problems)
    _check_graph(template, problems)
    _check_environments(template, problems)
    if template.input_schema is not None:
        for field, reason in schema_problems(template.input_schema):
            problems.error(reason, field=field)


def _check_identity(template: TaskTemplate, problems: Problems) -> None:
    if template.name and not TEMPLATE_NAME_PATTERN.match(template.name):
        problems.error(
            f"{template.name!r} is not a valid template name "
            "(1-255 characters without whitespace, '/' or '@')",
            field="name",
        )
    if template.namespace_name and not NAMESPACE_PATTERN.match(template.namespace_name):
        problems.error(
            f"{template.namespace_name!r} is not a valid namespace: lowercase letters, digits and"
            " underscores, starting with a letter, at most 29 characters",
            field="namespace_name",
        )
    if template.version and not is_semver(template.version):
        problems.error(
            f"{template.version!r} is not a semantic version "
            "(MAJOR.MINOR.PATCH, e.g. 1.0.0 or 2.1.0-rc.1)",
            field="version",
        )


def _check_steps(template: TaskTemplate, problems: Problems) -> None:
    first_index: dict[str, int] = {}
    for index, step in enumerate(template.steps):
        if not step.name:
            continue
        if step.name in first_index:
            problems.error(
                f"duplicate step name (first defined as steps[{first_index[step.name]}])",
                step=step.name,
                field=f"steps[{index}].name",
            )
        else:
            first_index[step.name] = index
        if step.name == ALL_STEPS:
            problems.error(
                "the step name ALL is reserved (environment overrides use it for every step)",
                step=step.name,
                field="name",
            )
        elif len(step.name) > MAX_STEP_NAME:
            problems.error(
                f"step names are at most {MAX_STEP_NAME} characters", step=step.name, field="name"
            )
        callable_ref = step.handler.callable
        if callable_ref and not CALLABLE_PATTERN.match(callable_ref):
            problems.error(
                f"{callable_ref!r} is not a handler reference "
                "(expected package.module:function, package.module.ClassName or a registered name)",
                step=step.name,
                field="handler.callable",
            )
        if step.step_type is StepType.DECISION and not step.dependencies:
            problems.error(
                "a decision step needs at least one dependency (its parent)",
                step=step.name,
                field="dependencies",
            )


def _check_graph(template: TaskTemplate, problems: Problems) -> None:
    names = [step.name for step in template.steps if step.name]
    known = set(names)
    for step in template.steps:
        for dependency in step.dependencies:
            if dependency == step.name:
                problems.error(
                    "a step cannot depend on itself", step=step.name, field="dependencies"
                )
            elif dependency not in known:
                problems.error(
                    f"unknown dependency {dependency!r}{suggestion(dependency, known)}",
                    step=step.name or None,
                    field="dependencies",
                )
    parents: dict[str, list[str]] = {}
    for step in template.steps:
        parents.setdefault(step.name, []).extend(step.dependencies)
    for cycle in graph.find_cycles(list(dict.fromkeys(names)), parents):
        problems.errors.append(TemplateCycleError(cycle, file=problems.file))


def _check_environments(template: TaskTemplate, problems: Problems) -> None:
    known = {step.name for step in template.steps}
    for env, override in template.environments.items():
        for index, step_override in enumerate(override.steps):
            name = step_override.name
            if name != ALL_STEPS and name not in known:
                problems.error(
                    f"environment {env!r} overrides unknown step {name!r}{suggestion(name, known)}",
                    step=name,
                    field=f"environments.{env}.steps[{index}].name",
                )
