"""``python -m tasker_trio worker``: run step handlers on PostgreSQL until Ctrl-C or SIGTERM.

The process reads the ``worker_{namespace}_queue`` of each namespace it serves, runs the
handlers, and records the results for orchestration (a ``serve`` process, or any engine
with orchestration on the same database). It serves the ``--namespace`` names, else every
namespace of its ``--templates``, else every namespace registered in the database (as they
are when it starts); handlers come from ``--handlers`` modules (their ``@step_handler``
registrations) and import paths in the templates. On SIGINT or SIGTERM it stops reading,
gives running steps a grace period, and exits; steps still running then are reclaimed by
another worker after the visibility timeout.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from tasker_trio.cli.common import (
    add_database_argument,
    add_engine_arguments,
    add_handlers_argument,
    add_templates_argument,
    run_trio,
    say,
    settings_from,
    wait_for_shutdown_signal,
)
from tasker_trio.cli.run import import_handlers
from tasker_trio.config import Settings
from tasker_trio.db.opening import redact
from tasker_trio.engine import open_engine
from tasker_trio.templates import TaskTemplate, load_templates


def register(groups: Any) -> None:
    """Add the ``worker`` command to the top-level parser."""
    worker = groups.add_parser(
        "worker",
        help="run step handlers only, on PostgreSQL, until Ctrl-C or SIGTERM",
        description=(
            "Run the step handlers of some namespaces on a PostgreSQL database until Ctrl-C "
            "or SIGTERM; orchestration runs in `serve` processes. It serves the --namespace "
            "names, else those of its --templates, else every namespace registered in the "
            "database."
        ),
    )
    add_database_argument(worker, what="the PostgreSQL database to work for")
    add_templates_argument(worker)
    worker.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="serve this namespace's queue (repeatable; default: $TASKER_NAMESPACES, else "
        "every namespace of --templates, else every namespace registered in the database)",
    )
    add_handlers_argument(worker)
    add_engine_arguments(worker, workers=True)
    worker.set_defaults(handler=worker_command)


def worker_command(args: argparse.Namespace) -> int:
    """Run workers until a shutdown signal; exit code 0 after a clean shutdown."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # so handler modules import from a checkout
    settings = settings_from(args, database_required=True)
    templates = load_templates(args.templates)
    for module in args.handlers:
        import_handlers(module)
    return run_trio(work, settings, templates)


async def work(settings: Settings, templates: list[TaskTemplate]) -> int:
    """Open a workers-only engine and keep it until SIGINT or SIGTERM."""
    async with open_engine(templates, orchestration=False, **settings.engine_options()) as engine:
        # The engine's rule: as given, else the templates', else every registered namespace.
        served = settings.namespaces or sorted(
            {t.namespace_name for t in templates} or engine.templates.namespaces()
        )
        say(
            f"working on {redact(settings.database_url or '')} for namespace(s) "
            f"{', '.join(served)} ({settings.worker_concurrency} at once); "
            "Ctrl-C or SIGTERM to stop"
        )
        signum = await wait_for_shutdown_signal()
        say(f"{signal.Signals(signum).name}: shutting down")
    say("stopped")
    return 0
