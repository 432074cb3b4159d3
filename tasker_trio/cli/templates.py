"""``python -m tasker_trio templates ...``: validate templates and draw their graphs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tasker_trio.errors import TemplateError, TemplateValidationError
from tasker_trio.templates import TaskTemplate, load_template, to_mermaid, validate_paths


def register(groups: Any) -> None:
    """Add the ``templates`` group and its subcommands to the top-level parser."""
    group: argparse.ArgumentParser = groups.add_parser(
        "templates", help="validate task templates and draw their graphs"
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


def run_validate(args: argparse.Namespace) -> int:
    """Validate every path; print one line per template and every problem found."""
    failures = 0
    for path, outcome in validate_paths(args.paths):
        if isinstance(outcome, TaskTemplate):
            steps = len(outcome.steps)
            print(f"ok       {path}: {outcome.identifier} ({steps} steps)")
            for warning in outcome.warnings:
                print(f"warning  {warning}")
        else:
            failures += 1
            print(f"invalid  {path}", file=sys.stderr)
            for problem in _problems(outcome):
                print(f"  - {problem}", file=sys.stderr)
    total = len(args.paths)
    if failures:
        print(f"{failures} invalid template file(s) under {total} path(s)", file=sys.stderr)
        return 1
    return 0


def run_graph(args: argparse.Namespace) -> int:
    """Print the template's DAG as a Mermaid ``flowchart``."""
    print(to_mermaid(load_template(args.path)))
    return 0


def _problems(error: TemplateError) -> list[str]:
    if isinstance(error, TemplateValidationError):
        return [str(e) for e in error.errors]
    return [str(error)]
