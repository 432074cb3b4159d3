"""`TemplateRegistry`: the loaded templates, by (namespace, name, version), with "latest" lookup.

A registry may have a `TemplateProvider` behind it (the PostgreSQL backend's registered
templates): `TemplateRegistry.refresh` then adds the templates the source has gained since,
which task initialization does before it gives up on an unknown template. Without a source,
``refresh`` does nothing (the memory backend knows every template from the start).

"Latest" is by semantic-version precedence, not by string or registration order:
``1.10.0`` is newer than ``1.9.0`` and ``2.0.0-rc.1`` older than ``2.0.0``. Versions that
differ only in build metadata (``1.0.0+a``, ``1.0.0+b``) have equal precedence; the larger
string wins between them, so the answer never depends on registration order.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Iterable, Iterator
from typing import Protocol

from tasker_trio.errors import DuplicateTemplate, UnknownTemplate
from tasker_trio.templates.loader import StrPath, load_templates
from tasker_trio.templates.semver import SemVer
from tasker_trio.templates.task_template import TaskTemplate

TemplateKey = tuple[str, str, str]
"""``(namespace_name, name, version)``."""


class TemplateProvider(Protocol):
    """Where a registry finds templates registered after it was built (see `refresh`)."""

    async def load(self, *, exclude: Collection[TemplateKey] = ()) -> builtins.list[TaskTemplate]:
        """Every template the source holds, except those whose key is in ``exclude``."""
        ...


def _version_order(template: TaskTemplate) -> tuple[SemVer, str]:
    return (SemVer.parse(template.version), template.version)


class TemplateRegistry:
    """The templates an engine knows. Every method but `refresh` is synchronous and never blocks.

    Example:
        >>> registry = TemplateRegistry.from_paths(["examples/templates"])
        >>> registry.get_latest("examples", "linear_workflow").version
        '1.0.0'
    """

    def __init__(self, source: TemplateProvider | None = None) -> None:
        self._templates: dict[TemplateKey, TaskTemplate] = {}
        self._source = source

    @property
    def source(self) -> TemplateProvider | None:
        """Where `refresh` looks for new templates (None: nowhere)."""
        return self._source

    async def refresh(self) -> int:
        """Add the templates the source holds and this registry lacks; return how many.

        Templates already here are kept as they are (a registered version never changes).
        Without a source this returns 0 at once.

        Raises:
            TaskerError: whatever the source raises (e.g. `DatabaseUnavailable`, or a
                `TemplateError` for a stored template this code finds invalid).
        """
        if self._source is None:
            return 0
        added = 0
        for template in await self._source.load(exclude=set(self._templates)):
            if template.key not in self._templates:  # a concurrent refresh may have added it
                self._templates[template.key] = template
                added += 1
        return added

    @classmethod
    def from_templates(cls, templates: Iterable[TaskTemplate]) -> TemplateRegistry:
        """A registry holding ``templates``.

        Raises:
            DuplicateTemplate: two different templates share a key.
        """
        registry = cls()
        for template in templates:
            registry.register(template)
        return registry

    @classmethod
    def from_paths(cls, paths: Iterable[StrPath] | StrPath) -> TemplateRegistry:
        """A registry of every template file under ``paths`` (see `load_templates`).

        Raises:
            TemplateError: a file is invalid.
            DuplicateTemplate: two different templates share a key.
        """
        return cls.from_templates(load_templates(paths))

    def register(self, template: TaskTemplate) -> bool:
        """Add ``template``; registering an equal template again changes nothing.

        Returns:
            True when the template was added, False when an equal one was already there.

        Raises:
            DuplicateTemplate: a *different* template has the same namespace, name and version.
        """
        existing = self._templates.get(template.key)
        if existing is not None:
            if existing == template:
                return False
            raise DuplicateTemplate(
                template.namespace_name, template.name, template.version, file=existing.source_file
            )
        self._templates[template.key] = template
        return True

    def get(self, namespace: str, name: str, version: str | None = None) -> TaskTemplate:
        """The template with this namespace, name and version (the latest when omitted).

        Raises:
            UnknownTemplate: no such template.
        """
        if version is None:
            return self.get_latest(namespace, name)
        template = self._templates.get((namespace, name, version))
        if template is None:
            raise UnknownTemplate(namespace, name, version)
        return template

    def get_latest(
        self, namespace: str, name: str, *, include_prereleases: bool = True
    ) -> TaskTemplate:
        """The highest version of ``namespace/name`` by semver precedence.

        Args:
            namespace: the template's namespace.
            name: the template's name.
            include_prereleases: when False, pre-releases (``2.0.0-rc.1``) are skipped.

        Raises:
            UnknownTemplate: no (matching) version is registered.
        """
        candidates = [
            template
            for template in self.versions_of(namespace, name)
            if include_prereleases or not SemVer.parse(template.version).is_prerelease
        ]
        if not candidates:
            raise UnknownTemplate(namespace, name)
        return candidates[-1]

    def versions_of(self, namespace: str, name: str) -> builtins.list[TaskTemplate]:
        """Every version of ``namespace/name``, oldest first by semver precedence."""
        found = [t for (ns, n, _), t in self._templates.items() if (ns, n) == (namespace, name)]
        return sorted(found, key=_version_order)

    def namespaces(self) -> builtins.list[str]:
        """The namespaces of the registered templates, sorted."""
        return sorted({namespace for namespace, _, _ in self._templates})

    def list(self, namespace: str | None = None) -> builtins.list[TaskTemplate]:
        """The registered templates (of one namespace, if given), by namespace, name, version."""
        selected = [t for t in self._templates.values() if namespace in (None, t.namespace_name)]
        return sorted(selected, key=lambda t: (t.namespace_name, t.name, *_version_order(t)))

    def __contains__(self, key: object) -> bool:
        return key in self._templates

    def __iter__(self) -> Iterator[TaskTemplate]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._templates)
