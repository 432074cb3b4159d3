"""The value types of a task template, except the template itself (see ``task_template.py``).

Everything here is a frozen attrs class or an enum. JSON-shaped values (``initialization``,
``metadata``, ``input_schema``) are plain dicts copied at load time: treat them as read-only.
Values enter through the loader (``TaskTemplate.from_yaml`` / ``from_json``), which checks them
and reports every problem with its file, step and field.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from tasker_trio.models.policy import RetryPolicy, StepType

ALL_STEPS = "ALL"
"""The step name an environment override uses to target every step."""

DEFAULT_TIMEOUT_SECONDS = 30
"""A step's ``timeout_seconds`` when the template does not say."""


class IdentityStrategy(enum.StrEnum):
    """How a task request's identity (its deduplication hash) is computed (semantics §7)."""

    STRICT = "strict"
    """Same template and same canonical context make the same task (the default)."""
    CALLER_PROVIDED = "caller_provided"
    """The request must carry an ``idempotency_key``; it alone identifies the task."""
    ALWAYS_UNIQUE = "always_unique"
    """Every request creates a new task."""


class StalenessAction(enum.StrEnum):
    """What the staleness sweeper does to a task stuck past its lifecycle limits (§8)."""

    DLQ = "dlq"
    """Put the task in the dead-letter queue for an operator (the default)."""
    ERROR = "error"
    """Move the task to ``error``."""
    NONE = "none"
    """Only report it; take no action."""


@attrs.frozen(kw_only=True)
class TemplateWarning:
    """Something suspicious in a template that does not stop it loading (e.g. an unknown key).

    Attributes:
        message: what was found.
        file: the template's file, if known.
        step: the step it is in, if any.
        field: the (dotted) field it is in, if any.
    """

    message: str
    file: str | None = None
    step: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [self.file] if self.file else []
        if self.step is not None:
            where.append(f"step {self.step!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{': '.join(where)}: {self.message}" if where else self.message


@attrs.frozen(kw_only=True)
class HandlerSpec:
    """Which Python handler runs a step, and its configuration.

    Attributes:
        callable: ``package.module:function``, ``package.module.ClassName`` or a name
            registered in code. Resolved by the engine, not here.
        initialization: the handler's configuration, given to it as ``step_config``.
    """

    callable: str
    initialization: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The handler as template-shaped JSON."""
        return {"callable": self.callable, "initialization": dict(self.initialization)}


@attrs.frozen(kw_only=True)
class StepTemplate:
    """One step of a template: a node of the DAG.

    Attributes:
        name: unique within the template.
        description: documentation only.
        handler: the handler that runs the step.
        dependencies: names of the parent steps (YAML ``dependencies`` or ``depends_on``).
        step_type: the step's kind (YAML ``type``); ``standard`` by default.
        retry: the step's retry policy.
        timeout_seconds: the limit on one attempt, in seconds.
        extensions: tasker-core keys kept verbatim but not interpreted
            (``system_dependency``, ``publishes_events``, ``batch_config``).
    """

    name: str
    description: str | None = None
    handler: HandlerSpec
    dependencies: tuple[str, ...] = ()
    step_type: StepType = StepType.STANDARD
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    extensions: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The step as template-shaped JSON (every field explicit)."""
        data: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            data["description"] = self.description
        data.update(
            handler=self.handler.to_json(),
            dependencies=list(self.dependencies),
            type=self.step_type.value,
            retry=self.retry.to_json(),
            timeout_seconds=self.timeout_seconds,
        )
        data.update(self.extensions)
        return data


@attrs.frozen(kw_only=True)
class LifecycleConfig:
    """Optional limits on how long a task may stay in a state (template field ``lifecycle``).

    Every limit is in minutes; ``None`` leaves the engine's default.

    Attributes:
        max_duration_minutes: from creation to completion.
        max_waiting_for_dependencies_minutes: time in ``waiting_for_dependencies``.
        max_waiting_for_retry_minutes: time in ``waiting_for_retry``.
        max_steps_in_process_minutes: time in ``steps_in_process``.
        staleness_action: what to do with a task past a limit.
        auto_fail_on_timeout: tasker-core flag, kept for compatibility.
        auto_dlq_on_timeout: tasker-core flag, kept for compatibility.
    """

    max_duration_minutes: int | None = None
    max_waiting_for_dependencies_minutes: int | None = None
    max_waiting_for_retry_minutes: int | None = None
    max_steps_in_process_minutes: int | None = None
    staleness_action: StalenessAction = StalenessAction.DLQ
    auto_fail_on_timeout: bool | None = None
    auto_dlq_on_timeout: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """The lifecycle block as template-shaped JSON (unset limits omitted)."""
        data = {
            key: value
            for key, value in attrs.asdict(self).items()
            if value is not None and key != "staleness_action"
        }
        data["staleness_action"] = self.staleness_action.value
        return data


@attrs.frozen(kw_only=True)
class StepOverride:
    """One entry of ``environments.<env>.steps``: what changes for one step (or ``ALL``).

    Attributes:
        name: the step's name, or ``ALL`` for every step.
        timeout_seconds: replaces the step's timeout, when given.
        retry: the retry fields to replace (only those given; the rest are kept).
        initialization: merged over the handler's ``initialization`` (top-level keys).
    """

    name: str
    timeout_seconds: float | None = None
    retry: Mapping[str, Any] | None = None
    initialization: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The override as template-shaped JSON."""
        data: dict[str, Any] = {"name": self.name}
        if self.timeout_seconds is not None:
            data["timeout_seconds"] = self.timeout_seconds
        if self.retry is not None:
            data["retry"] = dict(self.retry)
        if self.initialization is not None:
            data["handler"] = {"initialization": dict(self.initialization)}
        return data


@attrs.frozen(kw_only=True)
class EnvironmentOverride:
    """The overrides of one environment (``environments.<env>``).

    Attributes:
        steps: step overrides, applied in order (so a named step after ``ALL`` wins).
        task_handler_initialization: tasker-core's ``task_handler.initialization`` override,
            merged over the template's ``task_handler`` extension when it has one.
    """

    steps: tuple[StepOverride, ...] = ()
    task_handler_initialization: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The environment block as template-shaped JSON."""
        data: dict[str, Any] = {"steps": [override.to_json() for override in self.steps]}
        if self.task_handler_initialization is not None:
            data["task_handler"] = {"initialization": dict(self.task_handler_initialization)}
        return data
