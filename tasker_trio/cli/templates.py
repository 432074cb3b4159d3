"""``python -m tasker_trio templates ...``: validate templates, draw them, register them.

``validate`` and ``graph`` work on files. ``register`` puts valid template files in a
PostgreSQL database, where every ``serve`` and ``worker`` process finds them; ``list`` shows
what a database has registered.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from tasker_trio.cli.common import add_database_argument, open_client, run_trio, settings_from
from tasker_trio.db.opening import redact
from tasker_trio.errors import TemplateError, TemplateValidationError
from tasker_trio.store.postgres.templates import (
    register_templates,
    registered_templates,
    registrant,
)
from tasker_trio.templates import (
    TaskTemplate,
    TemplateRegistry,
    load_template,
    to_mermaid,
    validate_paths,
)


def register(groups: Any) -> None:
    """Add the ``templates`` group and its subcommands to the top-level parser."""
    group: argparse.ArgumentParser = groups.add_parser(
        "templates", help="validate task templates, draw their graphs, register them"
    )
    group.set_defaults(group_parser=group)
    commands = group.add_subparsers(title="subcommands", metavar="SUBCOMMAND")

    validate = commands.add_parser(
        "validate",
        help="check template files (and directories of them); exit 1 if any is invalid",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH", help="template file or directory")
    validate.set_defaults(handler=run_validate)

    graph = commands.add_parser("graph", help="print a template's DAG as a Mermaid flowchart")
    graph.add_argument("path", metavar="PATH", help="template file")
    graph.set_defaults(handler=run_graph)

    put = commands.add_parser(
        "register",
        help="validate template files and register them in a PostgreSQL database",
        description=(
            "Validate every template file under the paths, then register them all in the "
            "database (in one transaction), where every serve and worker process finds "
            "them. Registering the same template again changes nothing; a changed template "
            "needs a new version: a registered version never changes."
        ),
    )
    put.add_argument("paths", nargs="+", metavar="PATH", help="template file or directory")
    add_database_argument(put, what="the PostgreSQL database to register the templates in")
    put.set_defaults(handler=run_register)

    show = commands.add_parser("list", help="list the templates registered in a database")
    add_database_argument(show, what="the PostgreSQL database to look in")
    show.set_defaults(handler=run_list)


def run_validate(args: argparse.Namespace) -> int:
    """Validate every path; print one line per template and every problem found."""
    templates = _validated(args.paths)
    return 0 if templates is not None else 1


def run_graph(args: argparse.Namespace) -> int:
    """Print the template's DAG as a Mermaid ``flowchart``."""
    print(to_mermaid(load_template(args.path)))
    return 0


def run_register(args: argparse.Namespace) -> int:
    """Validate the files, then register every template; exit 1 (nothing registered) if not."""
    url = settings_from(args, database_required=True).database_url
    assert url is not None
    templates = _validated(args.paths, quiet=True)
    if templates is None:
        print("nothing registered", file=sys.stderr)
        return 1
    return run_trio(_register, url, templates)


def run_list(args: argparse.Namespace) -> int:
    """Print the registered templates, one line each."""
    url = settings_from(args, database_required=True).database_url
    assert url is not None
    return run_trio(_list, url)


async def _register(url: str, templates: list[TaskTemplate]) -> int:
    async with open_client(url) as backend:
        assert backend.database is not None
        outcomes = await register_templates(
            backend.database, templates, registered_by=registrant("templates register")
        )
    for outcome in outcomes:
        template = outcome.template
        what = f"{template.source_file}: {template.identifier} ({len(template.steps)} steps)"
        if outcome.created:
            print(f"registered  {what}")
        else:
            print(
                f"unchanged   {what}: registered {_when(outcome.registered_at)} by "
                f"{outcome.registered_by}"
            )
    created = sum(outcome.created for outcome in outcomes)
    print(
        f"{redact(url)}: {created} template(s) registered, "
        f"{len(outcomes) - created} already registered"
    )
    return 0


async def _list(url: str) -> int:
    async with open_client(url) as backend:
        assert backend.database is not None
        found = await registered_templates(backend.database)
    if not found:
        print(
            f"{redact(url)}: no task templates registered; register some with "
            f"`python -m tasker_trio templates register PATH --database {redact(url)}`",
            file=sys.stderr,
        )
        return 0
    order = TemplateRegistry.from_templates(r.template for r in found).list()
    by_key = {r.template.key: r for r in found}
    width = max(len(t.identifier) for t in order)
    for template in order:
        entry = by_key[template.key]
        source = f"  from {entry.source}" if entry.source else ""
        print(
            f"{template.identifier:<{width}}  {len(template.steps)} steps  registered "
            f"{_when(entry.registered_at)} by {entry.registered_by}{source}"
        )
    return 0


def _validated(paths: list[str], *, quiet: bool = False) -> list[TaskTemplate] | None:
    """The templates under ``paths``, or None when any is invalid (each problem printed)."""
    failures = 0
    templates = []
    for path, outcome in validate_paths(paths):
        if isinstance(outcome, TaskTemplate):
            templates.append(outcome)
            if not quiet:
                print(f"ok       {path}: {outcome.identifier} ({len(outcome.steps)} steps)")
            for warning in outcome.warnings:
                print(f"warning  {warning}", file=sys.stderr if quiet else sys.stdout)
        else:
            failures += 1
            print(f"invalid  {path}", file=sys.stderr)
            for problem in _problems(outcome):
                print(f"  - {problem}", file=sys.stderr)
    if failures:
        total = len(paths)
        print(f"{failures} invalid template file(s) under {total} path(s)", file=sys.stderr)
        return None
    return templates


def _when(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S %Z}"


def _problems(error: TemplateError) -> list[str]:
    if isinstance(error, TemplateValidationError):
        return [str(e) for e in error.errors]
    return [str(error)]
