"""The workflow builder: a template and a request -> a new task, its steps and its edges."""

from __future__ import annotations

import uuid

from tasker_trio.errors import InvalidTaskRequest
from tasker_trio.models import StepEdge, Task, TaskRequest, WorkflowStep, identity_hash
from tasker_trio.templates import IdentityStrategy, TaskTemplate


def request_identity(template: TaskTemplate, request: TaskRequest) -> str:
    """The identity hash of a request under the template's identity strategy (semantics §7).

    Raises:
        InvalidTaskRequest: a ``caller_provided`` template got no idempotency key.
    """
    strategy = template.identity_strategy
    if strategy == IdentityStrategy.ALWAYS_UNIQUE:
        return identity_hash(template.identifier, key=f"unique:{uuid.uuid4()}")
    if request.idempotency_key is not None:
        return identity_hash(template.identifier, key=request.idempotency_key)
    if strategy == IdentityStrategy.CALLER_PROVIDED:
        raise InvalidTaskRequest(
            template.identifier,
            "idempotency_key",
            "this template's identity_strategy is caller_provided: pass an idempotency key",
        )
    return identity_hash(template.identifier, context=request.context)


def build_workflow(
    template: TaskTemplate, request: TaskRequest, *, now: float
) -> tuple[Task, list[WorkflowStep], list[StepEdge]]:
    """A pending task for ``request`` with one pending step per template step."""
    task = Task.from_request(
        request,
        version=template.version,
        identity_hash=request_identity(template, request),
        now=now,
    )
    steps = [
        WorkflowStep(
            step_uuid=str(uuid.uuid4()),
            task_uuid=task.task_uuid,
            name=spec.name,
            namespace=template.namespace_name,
            handler_callable=spec.handler.callable,
            step_config=dict(spec.handler.initialization),
            step_type=spec.step_type,
            retry=spec.retry,
            timeout_seconds=spec.timeout_seconds,
            created_at=now,
            updated_at=now,
        )
        for spec in template.steps
    ]
    uuids = {step.name: step.step_uuid for step in steps}
    edges = [
        StepEdge(task_uuid=task.task_uuid, from_step_uuid=uuids[parent], to_step_uuid=uuids[s.name])
        for s in template.steps
        for parent in s.dependencies
    ]
    return task, steps, edges
