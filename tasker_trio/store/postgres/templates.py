"""Task templates registered in the database: register them, load them, list their namespaces.

Every process on a database sees the same templates: an engine registers the templates it
was given when it starts, ``python -m tasker_trio templates register`` registers files, and
orchestration loads every registered template (`load_registry`), refreshing from the
database when a request names one it does not know yet (`DatabaseTemplates`).

A registered version is immutable. Registering the same content again changes nothing;
registering *different* content under a registered (namespace, name, version) raises
`TemplateVersionConflict` and registers nothing of the batch — tasks already running were
built from the registered DAG, and silently replacing it would make the same version mean
two things (tasker-core replaces it; this is deliberately stricter). Change the version.
"Same content" is template equality (`TaskTemplate.__eq__`), so a file reformatted or moved
is the same template; the stored ``content_hash`` (SHA-256 of the canonical JSON form)
settles most comparisons without loading the stored template.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs

from tasker_trio.db.bridge import Connection, Database
from tasker_trio.errors import DuplicateTemplate, TemplateError
from tasker_trio.templates import TaskTemplate, TemplateRegistry
from tasker_trio.templates.registry import TemplateKey

_INSERT_NAMESPACES = """
INSERT INTO tasker.namespaces (name, registered_by)
SELECT DISTINCT n, $2 FROM unnest($1::text[]) AS n
ON CONFLICT (name) DO NOTHING
"""
_INSERT_TEMPLATES = """
INSERT INTO tasker.task_templates
    (namespace, name, version, template, content_hash, registered_by, source)
SELECT i.namespace, i.name, i.version, i.template, i.content_hash, $2, i.source
FROM jsonb_to_recordset($1::jsonb) AS i(
    namespace text, name text, version text, template jsonb, content_hash text, source text)
ON CONFLICT (namespace, name, version) DO NOTHING
RETURNING namespace, name, version
"""
_SELECT_KEYS = """
SELECT t.namespace, t.name, t.version, t.template, t.content_hash, t.registered_at,
       t.registered_by, t.source
FROM tasker.task_templates t
JOIN jsonb_to_recordset($1::jsonb) AS k(namespace text, name text, version text)
    USING (namespace, name, version)
"""
_SELECT_ALL_BUT = """
SELECT t.namespace, t.name, t.version, t.template, t.content_hash, t.registered_at,
       t.registered_by, t.source
FROM tasker.task_templates t
WHERE NOT (t.namespace || '/' || t.name || '@' || t.version) = ANY($1::text[])
ORDER BY t.namespace, t.name, t.version
"""
_NAMESPACES = "SELECT name FROM tasker.namespaces ORDER BY name"

_log = logging.getLogger("tasker_trio.templates")


class TemplateVersionConflict(DuplicateTemplate):
    """Different content was registered under a (namespace, name, version) already in use."""

    def __init__(
        self, template: TaskTemplate, *, registered_at: datetime, registered_by: str
    ) -> None:
        super().__init__(
            template.namespace_name, template.name, template.version, file=template.source_file
        )
        self.registered_at = registered_at
        self.registered_by = registered_by
        where = f" (from {template.source_file})" if template.source_file else ""
        # The message replaces DuplicateTemplate's: it says what differs and what to do.
        self.args = (
            f"task template {template.identifier}{where} differs from the one registered "
            f"{registered_at:%Y-%m-%d %H:%M:%S %Z} by {registered_by}: a registered version "
            "never changes (running tasks were built from it); give the changed template a "
            "new version",
        )


@attrs.frozen(kw_only=True)
class RegisteredTemplate:
    """A template as the database holds it, with who registered it, when and from where."""

    template: TaskTemplate
    content_hash: str
    registered_at: datetime
    registered_by: str
    source: str | None


@attrs.frozen(kw_only=True)
class Registration:
    """What registering one template did: ``created``, or found it registered already."""

    template: TaskTemplate
    created: bool
    registered_at: datetime | None = None
    registered_by: str | None = None


def content_hash(template: TaskTemplate) -> str:
    """SHA-256 of the template's canonical JSON form (keys sorted, no whitespace)."""
    text = json.dumps(template.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def registrant(role: str) -> str:
    """Who registers: ``role`` on this host, with the process id (for ``registered_by``)."""
    return f"{role} on {socket.gethostname()} (pid {os.getpid()})"


async def register_templates(
    db: Database, templates: Iterable[TaskTemplate], *, registered_by: str
) -> list[Registration]:
    """Register ``templates`` in one transaction; return what happened to each.

    Registering a template that is already registered with the same content changes
    nothing (``created=False``).

    Raises:
        DuplicateTemplate: two different templates of ``templates`` share a key.
        TemplateVersionConflict: a template differs from the one registered under its
            namespace, name and version; nothing of this call is registered.
        DatabaseError: the database refused or failed the operation.
    """
    given: dict[TemplateKey, TaskTemplate] = {}
    for template in templates:
        first = given.setdefault(template.key, template)
        if first != template:
            raise DuplicateTemplate(*template.key, file=first.source_file)
    if not given:
        return []
    rows = [
        {
            "namespace": t.namespace_name,
            "name": t.name,
            "version": t.version,
            "template": t.to_json(),
            "content_hash": content_hash(t),
            "source": t.source_file,
        }
        # In key order, so processes registering together lock rows in one order.
        for _, t in sorted(given.items())
    ]
    namespaces = sorted({t.namespace_name for t in given.values()})

    async def op(conn: Connection) -> list[Registration]:
        async with conn.transaction():
            await conn.execute(_INSERT_NAMESPACES, namespaces, registered_by)
            inserted = {_key(r) for r in await conn.fetch(_INSERT_TEMPLATES, rows, registered_by)}
            existing = [r for r in await conn.fetch(_SELECT_KEYS, rows) if _key(r) not in inserted]
            # Raised inside the transaction, so a conflict rolls the whole batch back.
            return _outcomes(given, inserted, existing)

    # Idempotent: a second run after a lost commit finds the same content (created=False).
    return await db.run(op, where="registering task templates", idempotent=True)


def _outcomes(
    given: dict[TemplateKey, TaskTemplate],
    inserted: set[TemplateKey],
    existing: Sequence[Any],
) -> list[Registration]:
    stored = {_key(row): row for row in existing}
    outcomes = []
    for key, template in given.items():
        if key in inserted:
            outcomes.append(Registration(template=template, created=True))
            continue
        row = stored[key]
        same = row["content_hash"] == content_hash(template) or _stored_template(row) == template
        if not same:
            raise TemplateVersionConflict(
                template, registered_at=row["registered_at"], registered_by=row["registered_by"]
            )
        outcomes.append(
            Registration(
                template=template,
                created=False,
                registered_at=row["registered_at"],
                registered_by=row["registered_by"],
            )
        )
    return outcomes


async def registered_templates(
    db: Database, *, exclude: Collection[TemplateKey] = ()
) -> list[RegisteredTemplate]:
    """Every registered template (but those keyed in ``exclude``), by namespace, name, version.

    Raises:
        TemplateError: a stored template is not valid for this code (the message names it:
            e.g. registered by a newer tasker_trio).
        DatabaseError: the database failed the query.
    """
    return [
        RegisteredTemplate(
            template=_stored_template(row),
            content_hash=row["content_hash"],
            registered_at=row["registered_at"],
            registered_by=row["registered_by"],
            source=row["source"],
        )
        for row in await _rows(db, exclude)
    ]


async def registered_namespaces(db: Database) -> list[str]:
    """The namespaces of the registered templates, sorted."""
    rows = await db.fetch(_NAMESPACES, where="loading the namespaces", idempotent=True)
    return [row["name"] for row in rows]


@attrs.define
class DatabaseTemplates:
    """The registered templates as a `TemplateProvider` (``environment`` overrides applied).

    A stored template this code finds invalid (one registered by a newer tasker_trio, say,
    during a rolling upgrade) is logged once and left out, so that it cannot stop an engine
    from starting or from serving the other templates; requests for it fail as unknown.
    """

    db: Database
    environment: str | None = None
    invalid: set[TemplateKey] = attrs.field(factory=set)

    async def load(self, *, exclude: Collection[TemplateKey] = ()) -> list[TaskTemplate]:
        """Every registered template keyed neither in ``exclude`` nor in `invalid`."""
        found = []
        for row in await _rows(self.db, {*exclude, *self.invalid}):
            try:
                template = _stored_template(row)
            except TemplateError as exc:
                self.invalid.add(_key(row))
                _log.warning(
                    "registered task template %s/%s@%s is left out (not valid for this code): %s",
                    *_key(row),
                    exc,
                )
                continue
            found.append(
                template.for_environment(self.environment) if self.environment else template
            )
        return found


async def load_registry(db: Database, *, environment: str | None = None) -> TemplateRegistry:
    """A registry of every (valid) registered template that refreshes from the database.

    Raises:
        DatabaseError: the database failed the query.
    """
    registry = TemplateRegistry(DatabaseTemplates(db, environment))
    await registry.refresh()
    return registry


async def _rows(db: Database, exclude: Collection[TemplateKey]) -> list[Any]:
    skip = [f"{ns}/{name}@{version}" for ns, name, version in exclude]
    return await db.fetch(
        _SELECT_ALL_BUT, skip, where="loading the registered task templates", idempotent=True
    )


def _key(row: Any) -> TemplateKey:
    return (row["namespace"], row["name"], row["version"])


def _stored_template(row: Any) -> TaskTemplate:
    where = f"database: {row['namespace']}/{row['name']}@{row['version']}"
    template = TaskTemplate.from_json(row["template"], file=where)
    return attrs.evolve(template, source_file=row["source"])
