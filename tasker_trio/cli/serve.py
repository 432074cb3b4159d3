"""``python -m tasker_trio serve``: run orchestration on PostgreSQL until Ctrl-C or SIGTERM.

The process takes task requests from the ``orchestration_task_requests`` queue, processes
step results, wakes retries, finalizes tasks and sweeps stale ones; it runs no handlers
(start ``worker`` processes for that). It serves every template registered in the database
(``templates register``, or any engine's ``--templates``), its own ``--templates`` included,
and finds templates registered after it started. On SIGINT or SIGTERM it stops taking
messages and shuts down in order; whatever it was processing stays queued for the next
orchestrator.
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

from tasker_trio.cli.common import (
    add_database_argument,
    add_engine_arguments,
    add_templates_argument,
    run_trio,
    say,
    settings_from,
    wait_for_shutdown_signal,
)
from tasker_trio.config import Settings
from tasker_trio.db.opening import redact
from tasker_trio.engine import open_engine


def register(groups: Any) -> None:
    """Add the ``serve`` command to the top-level parser."""
    serve = groups.add_parser(
        "serve",
        help="run orchestration only, on PostgreSQL, until Ctrl-C or SIGTERM",
        description=(
            "Run orchestration (task requests, step results, retries, finalization, "
            "staleness) on a PostgreSQL database until Ctrl-C or SIGTERM; run handlers in "
            "`worker` processes. It serves every template registered in the database, "
            "and registers its --templates there first."
        ),
    )
    add_database_argument(serve, what="the PostgreSQL database to orchestrate")
    add_templates_argument(serve)
    serve.add_argument(
        "--environment", default=None, metavar="ENV", help="apply templates' overrides for ENV"
    )
    serve.add_argument(
        "--migrate", action="store_true", help="apply pending schema migrations on start"
    )
    add_engine_arguments(serve, workers=False)
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    """Run orchestration until a shutdown signal; exit code 0 after a clean shutdown."""
    settings = settings_from(args, database_required=True)
    return run_trio(serve, settings, list(args.templates), args.environment, args.migrate)


async def serve(
    settings: Settings, templates: list[str], environment: str | None, migrate: bool
) -> int:
    """Open an orchestration-only engine and keep it until SIGINT or SIGTERM."""
    options = settings.engine_options()
    options.pop("worker_concurrency")  # no workers here; the visibility timeout still
    # governs the orchestration queues (a killed orchestrator's messages return after it)
    async with open_engine(
        templates, workers=False, environment=environment, migrate=migrate, **options
    ) as engine:
        url = redact(settings.database_url or "")
        names = ", ".join(t.identifier for t in engine.templates.list())
        if not names:
            say(
                f"no task templates are registered in {url} yet: register them with "
                f"`python -m tasker_trio templates register PATH --database {url}`; this "
                "process finds them when a request names them"
            )
        say(
            f"serving orchestration on {url} (templates: {names or 'none yet'}); "
            "Ctrl-C or SIGTERM to stop"
        )
        signum = await wait_for_shutdown_signal()
        say(f"{signal.Signals(signum).name}: shutting down")
    say("stopped")
    return 0
