"""The template loader: which template a request names, and whether its context fits.

A template the registry does not know may have been registered (in the database) by another
process after this one loaded its templates: the loader then refreshes the registry once
from its source before it reports the template unknown. A registry without a source (the
memory backend) refreshes to nothing, so the miss is reported at once.
"""

from __future__ import annotations

from tasker_trio.errors import UnknownTemplate
from tasker_trio.models import TaskRequest
from tasker_trio.templates import TaskTemplate, TemplateRegistry, validate_context


async def load_for_request(registry: TemplateRegistry, request: TaskRequest) -> TaskTemplate:
    """The template of ``request`` (latest version when none is named), context checked.

    Raises:
        UnknownTemplate: no such namespace, name or version, even after a refresh.
        InvalidContext: the context fails the template's ``input_schema`` (with its path).
        BackendError: the refresh could not reach the template source (the request may be
            tried again later).
    """
    try:
        template = registry.get(request.namespace, request.name, request.version)
    except UnknownTemplate:
        if not await registry.refresh():
            raise
        template = registry.get(request.namespace, request.name, request.version)
    validate_context(template, request.context)
    return template
