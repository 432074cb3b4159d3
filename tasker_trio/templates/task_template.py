"""`TaskTemplate`: a loaded, validated template and the questions the engine asks of its DAG.

A template enters through a named constructor — `TaskTemplate.from_yaml`, `from_json`, or the
loader's `load_template(path)` — each of which checks the whole template and raises
`TemplateValidationError` listing every problem. Changes go through `attrs.evolve` or
`for_environment`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import attrs

from tasker_trio.templates import graph
from tasker_trio.templates.model import (
    EnvironmentOverride,
    IdentityStrategy,
    LifecycleConfig,
    StepTemplate,
    TemplateWarning,
)


@attrs.frozen(kw_only=True)
class TaskTemplate:
    """A workflow definition: identity, input schema, the DAG of steps and its options.

    Attributes:
        name: the template's name.
        namespace_name: its namespace (``^[a-z][a-z0-9_]{0,28}$``; names a worker queue).
        version: its semantic version.
        description: documentation only.
        metadata: documentation only (author, tags, ...).
        input_schema: JSON Schema the task context must satisfy, or ``None``.
        identity_strategy: how a task request's identity is computed.
        steps: the steps, in template order.
        lifecycle: optional staleness limits.
        environments: per-environment overrides, by environment name.
        extensions: tasker-core keys kept verbatim but not interpreted
            (``task_handler``, ``system_dependencies``, ``domain_events``).
        source_file: where the template was loaded from (not part of equality).
        warnings: non-fatal findings of the loader, e.g. unknown keys (not part of equality).
    """

    name: str
    namespace_name: str
    version: str
    description: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    input_schema: Mapping[str, Any] | bool | None = None
    identity_strategy: IdentityStrategy = IdentityStrategy.STRICT
    steps: tuple[StepTemplate, ...] = ()
    lifecycle: LifecycleConfig | None = None
    environments: Mapping[str, EnvironmentOverride] = attrs.field(factory=dict)
    extensions: Mapping[str, Any] = attrs.field(factory=dict)
    source_file: str | None = attrs.field(default=None, eq=False)
    warnings: tuple[TemplateWarning, ...] = attrs.field(default=(), eq=False)

    # ----------------------------------------------------------------- named constructors

    @classmethod
    def from_yaml(cls, text: str, *, file: str | None = None) -> TaskTemplate:
        """Load and validate a template from YAML text.

        Args:
            text: the YAML document (one template).
            file: the file name to put in errors and warnings (``"<string>"`` when omitted).

        Raises:
            TemplateError: the YAML cannot be parsed (with its line) or is not a mapping.
            TemplateValidationError: the template has problems; ``errors`` lists them all.
        """
        # Imported here because the loader builds TaskTemplate objects (a circular import).
        from tasker_trio.templates.loader import template_from_yaml  # noqa: PLC0415

        return template_from_yaml(text, file=file)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, file: str | None = None) -> TaskTemplate:
        """Load and validate a template from its JSON form (the same shape as the YAML).

        Raises:
            TemplateValidationError: the template has problems; ``errors`` lists them all.
        """
        # Imported here because the parser builds TaskTemplate objects (a circular import).
        from tasker_trio.templates.loader import template_from_mapping  # noqa: PLC0415

        return template_from_mapping(data, file=file or "<json>")

    def to_json(self) -> dict[str, Any]:
        """The template as a JSON-compatible dict, with every default made explicit.

        ``TaskTemplate.from_json(t.to_json()) == t`` for every valid template.
        """
        data: dict[str, Any] = {
            "name": self.name,
            "namespace_name": self.namespace_name,
            "version": self.version,
        }
        if self.description is not None:
            data["description"] = self.description
        data["metadata"] = dict(self.metadata)
        if self.input_schema is not None:
            data["input_schema"] = self.input_schema
        data["identity_strategy"] = self.identity_strategy.value
        if self.lifecycle is not None:
            data["lifecycle"] = self.lifecycle.to_json()
        data["steps"] = [step.to_json() for step in self.steps]
        if self.environments:
            data["environments"] = {
                env: override.to_json() for env, override in self.environments.items()
            }
        data.update(self.extensions)
        return data

    def for_environment(self, environment: str) -> TaskTemplate:
        """A copy with the overrides of ``environment`` applied (unchanged if it has none).

        See `tasker_trio.templates.environments.apply_environment`.
        """
        # Imported here because environments.py works on TaskTemplate (a circular import).
        from tasker_trio.templates.environments import apply_environment  # noqa: PLC0415

        return apply_environment(self, environment)

    # ----------------------------------------------------------------- identity

    @property
    def identifier(self) -> str:
        """``namespace/name@version``, the template's identity in messages and hashes."""
        return f"{self.namespace_name}/{self.name}@{self.version}"

    @property
    def key(self) -> tuple[str, str, str]:
        """``(namespace_name, name, version)``, the registry key."""
        return (self.namespace_name, self.name, self.version)

    # ----------------------------------------------------------------- the DAG

    @functools.cached_property
    def steps_by_name(self) -> Mapping[str, StepTemplate]:
        """The steps by name, in template order."""
        return {step.name: step for step in self.steps}

    @functools.cached_property
    def _children(self) -> Mapping[str, list[str]]:
        return graph.children_map(
            [step.name for step in self.steps],
            {step.name: step.dependencies for step in self.steps},
        )

    def step(self, name: str) -> StepTemplate:
        """The step called ``name``.

        Raises:
            KeyError: no step has this name.
        """
        return self.steps_by_name[name]

    def parents_of(self, name: str) -> tuple[str, ...]:
        """The names of the steps ``name`` depends on, as written.

        Raises:
            KeyError: no step has this name.
        """
        return self.steps_by_name[name].dependencies

    def children_of(self, name: str) -> tuple[str, ...]:
        """The names of the steps that depend on ``name``, in template order.

        Raises:
            KeyError: no step has this name.
        """
        return tuple(self._children[name])

    def root_steps(self) -> tuple[str, ...]:
        """The steps without dependencies, in template order."""
        return tuple(step.name for step in self.steps if not step.dependencies)

    def topological_order(self) -> tuple[str, ...]:
        """Every step name, parents before children, ties broken by template order."""
        return tuple(
            graph.topological_order(
                [step.name for step in self.steps],
                {step.name: step.dependencies for step in self.steps},
            )
        )
