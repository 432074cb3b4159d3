"""Task requests and tasks (semantics §7)."""

from __future__ import annotations

import uuid
from typing import Any

import attrs

from tasker_trio.errors import InvalidContext
from tasker_trio.models.base import JsonModel
from tasker_trio.models.codec import json_problem
from tasker_trio.state_machine import TaskState

PRIORITY_RANGE = range(-100, 101)
"""The priorities a request may carry."""


def new_uuid() -> str:
    """A fresh random identifier (UUID4) as a string."""
    return str(uuid.uuid4())


def _check_priority(_: object, __: attrs.Attribute[int], value: int) -> None:
    if value not in PRIORITY_RANGE:
        raise ValueError(f"priority must be in -100..100, got {value}")


def _check_context(request: TaskRequest, _: attrs.Attribute[Any], value: object) -> None:
    """A context must be JSON data: both backends keep it as JSON, and PostgreSQL refuses
    NaN (which the standard library writes) while other encoders write it as null."""
    if not isinstance(value, dict):
        raise InvalidContext(
            request.template_label, "$", f"a {type(value).__name__} is not a JSON object"
        )
    problem = json_problem(value)
    if problem is not None:
        raise InvalidContext(request.template_label, *problem)


@attrs.frozen(kw_only=True)
class TaskRequest(JsonModel):
    """A request to run one task of a template.

    Attributes:
        namespace: the template's ``namespace_name``.
        name: the template's name.
        version: the template's version; ``None`` means the latest registered.
        context: the task's input: a JSON object (`InvalidContext` otherwise: NaN, a key
            that is not a string...), checked against the template's schema.
        idempotency_key: identity for ``caller_provided`` templates (and any that pass one).
        priority: -100..100, higher runs first.
        tags, initiator, source_system, reason: who asked, and why (kept for the audit).
        correlation_id: carried on every message of the task, for tracing.
    """

    namespace: str
    name: str
    version: str | None = None
    context: dict[str, Any] = attrs.field(factory=dict, validator=_check_context)
    idempotency_key: str | None = None
    priority: int = attrs.field(default=0, validator=_check_priority)
    tags: tuple[str, ...] = ()
    initiator: str | None = None
    source_system: str | None = None
    reason: str | None = None
    correlation_id: str = attrs.field(factory=new_uuid)

    @classmethod
    def create(
        cls, namespace: str, name: str, context: dict[str, Any] | None = None, **options: Any
    ) -> TaskRequest:
        """A request for ``namespace/name`` with ``context``; ``options`` are the other fields."""
        return cls(namespace=namespace, name=name, context=dict(context or {}), **options)

    @property
    def template_label(self) -> str:
        """``namespace/name``, with ``@version`` when the request names one (for errors)."""
        version = f"@{self.version}" if self.version is not None else ""
        return f"{self.namespace}/{self.name}{version}"


@attrs.frozen(kw_only=True)
class Task(JsonModel):
    """One run of a task template, as the store knows it.

    Attributes:
        task_uuid: the task's identifier.
        namespace, name, version: the template it runs (version resolved).
        context: the task's input.
        identity_hash: SHA-256 identity used for deduplication (semantics §7).
        state: the current state (the most recent transition's ``to``).
        priority, tags, initiator, source_system, reason, correlation_id: from the request.
        created_at, updated_at: seconds on the engine's clock.
        completed_at: when it reached a terminal state, if it has.
    """

    task_uuid: str
    namespace: str
    name: str
    version: str
    context: dict[str, Any] = attrs.field(factory=dict)
    identity_hash: str
    state: TaskState = TaskState.PENDING
    priority: int = 0
    tags: tuple[str, ...] = ()
    initiator: str | None = None
    source_system: str | None = None
    reason: str | None = None
    correlation_id: str
    created_at: float
    updated_at: float
    completed_at: float | None = None

    @classmethod
    def from_request(
        cls, request: TaskRequest, *, version: str, identity_hash: str, now: float
    ) -> Task:
        """A new pending task for ``request`` (``version`` resolved, identity computed)."""
        return cls(
            task_uuid=new_uuid(),
            namespace=request.namespace,
            name=request.name,
            version=version,
            context=request.context,
            identity_hash=identity_hash,
            priority=request.priority,
            tags=request.tags,
            initiator=request.initiator,
            source_system=request.source_system,
            reason=request.reason,
            correlation_id=request.correlation_id,
            created_at=now,
            updated_at=now,
        )

    @property
    def template_identifier(self) -> str:
        """``namespace/name@version`` of the template."""
        return f"{self.namespace}/{self.name}@{self.version}"

    @property
    def is_terminal(self) -> bool:
        """Whether the task reached a terminal state."""
        return self.state.is_terminal
