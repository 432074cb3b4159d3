"""The top-level parser of ``python -m tasker_trio`` and `main`, which runs a command.

Each command group (``templates``, ...) lives in its own module and adds its subcommands to
the parser; a subcommand's handler takes the parsed arguments and returns the exit code.
Errors a user can cause (`TaskerError`) are printed as one clear message with exit code 1,
never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tasker_trio import __version__
from tasker_trio.cli import db, run, serve, tasks, templates, worker
from tasker_trio.errors import TaskerError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command group."""
    parser = argparse.ArgumentParser(
        prog="python -m tasker_trio",
        description="tasker_trio: workflow orchestration on Trio's structured concurrency.",
    )
    parser.add_argument("--version", action="version", version=f"tasker_trio {__version__}")
    groups = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    run.register(groups)
    serve.register(groups)
    worker.register(groups)
    db.register(groups)
    templates.register(groups)
    tasks.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # A group without its subcommand (or no command at all): show what is available.
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return 2
    try:
        code: int = handler(args)
    except TaskerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code
