"""The template loader: which template a request names, and whether its context fits."""

from __future__ import annotations

from tasker_trio.models import TaskRequest
from tasker_trio.templates import TaskTemplate, TemplateRegistry, validate_context


def load_for_request(registry: TemplateRegistry, request: TaskRequest) -> TaskTemplate:
    """The template of ``request`` (latest version when none is named), context checked.

    Raises:
        UnknownTemplate: no such namespace, name or version.
        InvalidContext: the context fails the template's ``input_schema`` (with its path).
    """
    template = registry.get(request.namespace, request.name, request.version)
    validate_context(template, request.context)
    return template
