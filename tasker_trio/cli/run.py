"""``python -m tasker_trio run TEMPLATE``: run one task to its end in this process.

The engine is embedded (in memory) unless ``--database`` (or ``TASKER_DATABASE_URL``) names a
PostgreSQL database; then the schema is migrated on start if needed, and the task and its
audit trail stay in the database afterwards.

The command loads the template, imports the ``--handlers`` modules (so their
``@step_handler`` registrations happen), checks that every step's handler resolves, opens
an engine, submits the ``--context``, and follows the task: each step's state changes are
printed on standard error as they happen, the results as JSON on standard output (what is
printed is `tasker_trio.cli._run_output`'s job). The exit code is 0 when the task completes,
1 otherwise (with the reason on standard error).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import trio

from tasker_trio.cli._run_output import Progress, report
from tasker_trio.cli.common import (
    add_database_argument,
    add_handlers_argument,
    run_trio,
    settings_from,
)
from tasker_trio.engine import open_engine
from tasker_trio.engine_api import SETTLED_STATES, Engine
from tasker_trio.errors import (
    ConfigurationError,
    HandlerResolutionError,
    TaskerError,
    WaitTimeout,
)
from tasker_trio.state_machine import TaskState
from tasker_trio.templates import TaskTemplate, load_template
from tasker_trio.worker.handlers import HandlerResolver

POLL_SECONDS = 0.01
"""How often the progress display looks for new state changes."""


def register(groups: Any) -> None:
    """Add the ``run`` command to the top-level parser."""
    run = groups.add_parser(
        "run",
        help="run one task of a template in this process and print its results",
        description=(
            "Run one task of TEMPLATE to its end: show each step's progress on standard "
            "error, print the step results as JSON on standard output. Exit 0 when the "
            "task completes, 1 when it does not (with the reason). The engine runs in "
            "memory unless --database names a PostgreSQL database (migrated on start)."
        ),
    )
    run.add_argument("template", metavar="TEMPLATE", help="the task template file (YAML)")
    run.add_argument(
        "--context",
        default="{}",
        metavar="JSON",
        help="the task context: a JSON object, or @FILE to read it from a file (default: {})",
    )
    add_handlers_argument(run)
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up when the task has not ended after this long (default: wait)",
    )
    run.add_argument(
        "--environment",
        default=None,
        metavar="ENV",
        help="apply the template's environments: overrides for ENV (e.g. test)",
    )
    add_database_argument(run, what="run on this PostgreSQL database instead of in memory")
    run.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines; only results and errors"
    )
    run.set_defaults(handler=run_command)


@attrs.frozen(kw_only=True)
class RunRequest:
    """What ``run`` was asked to do, checked and loaded."""

    template: TaskTemplate
    context: dict[str, Any]
    timeout: float | None
    environment: str | None
    quiet: bool
    database: str | None = None


def run_command(args: argparse.Namespace) -> int:
    """Check the arguments, run the task, and return the exit code."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # so `examples.handlers...` imports from a checkout
    if args.timeout is not None and not args.timeout > 0:
        raise ConfigurationError(
            f"--timeout must be a positive number of seconds, not {args.timeout:g}"
        )
    context = parse_context(args.context)
    database = settings_from(args, database_required=False).database_url
    for module in args.handlers:
        import_handlers(module)
    template = load_template(args.template)
    if args.environment is not None and args.environment not in template.environments:
        known = ", ".join(sorted(template.environments)) or "none"
        print(
            f"warning: {args.template} has no environment {args.environment!r} "
            f"(it has: {known}); running without overrides",
            file=sys.stderr,
        )
    check_handlers(template)
    request = RunRequest(
        template=template,
        context=context,
        timeout=args.timeout,
        environment=args.environment,
        quiet=args.quiet,
        database=database,
    )
    try:
        return run_trio(run_task, request)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def parse_context(text: str) -> dict[str, Any]:
    """The ``--context`` value as a JSON object (``@FILE`` reads the file).

    Raises:
        ConfigurationError: the file cannot be read, the text is not JSON, or not an object.
    """
    source = "--context"
    if text.startswith("@"):
        path = text[1:]
        source = f"--context file {path}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read {source}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"{source} must be a JSON object ({{...}}), not {type(value).__name__}"
        )
    return value


def import_handlers(module: str) -> ModuleType:
    """Import a ``--handlers`` module (dotted name, or a path to a ``.py`` file).

    Raises:
        ConfigurationError: it cannot be imported (the message names the cause).
    """
    try:
        if module.endswith(".py"):
            path = Path(module)
            if not path.is_file():
                raise ConfigurationError(f"--handlers {module}: no such file")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise ConfigurationError(f"--handlers {module}: cannot load this file")
            loaded = importlib.util.module_from_spec(spec)
            sys.modules.setdefault(path.stem, loaded)  # never shadow an imported module
            spec.loader.exec_module(loaded)
            return loaded
        return importlib.import_module(module)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"cannot import handler module {module!r}: {type(exc).__name__}: {exc}"
        ) from None


def check_handlers(template: TaskTemplate) -> None:
    """Resolve every step's handler now, so a typo fails before any task is created.

    Raises:
        HandlerResolutionError: a handler cannot be resolved (names the step).
    """
    resolver = HandlerResolver()
    for step in template.steps:
        try:
            resolver.resolve(step.handler.callable)
        except HandlerResolutionError as exc:
            raise HandlerResolutionError(exc.callable_ref, exc.reason, step=step.name) from None


async def run_task(request: RunRequest) -> int:
    """Open an engine, submit the task, follow it to its end, and report."""
    template = request.template
    async with open_engine(
        template, environment=request.environment, database=request.database, migrate=True
    ) as engine:
        try:
            start = engine.now()
            submission = await engine.submit(
                template.namespace_name, template.name, request.context, version=template.version
            )
            progress = None if request.quiet else Progress(engine, start)
            if progress is not None:
                what = "submitted" if submission.created else "already exists"
                print(
                    f"task {submission.task_uuid} {what}: {template.identifier} "
                    f"({len(template.steps)} steps)",
                    file=sys.stderr,
                )
            task_state = await follow(engine, submission.task_uuid, request.timeout, progress)
            return await report(engine, submission.task_uuid, task_state, start)
        except TaskerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1


async def follow(
    engine: Engine, task_uuid: str, limit: float | None, progress: Progress | None
) -> TaskState:
    """Wait until the task settles, printing progress; return its final state.

    Raises:
        WaitTimeout: it did not settle within ``limit`` seconds.
    """
    deadline = math.inf if limit is None else trio.current_time() + limit
    while True:
        task = await engine.get_task(task_uuid)
        if progress is not None:
            await progress.update(task_uuid)
        if task.state in SETTLED_STATES:
            return task.state
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            raise WaitTimeout(task_uuid, limit or 0.0, task.state.value)
        wait = min(remaining, POLL_SECONDS if progress is not None else 1.0)
        with contextlib.suppress(WaitTimeout):  # it has not settled yet: look again
            await engine.wait_for_task(task_uuid, timeout=wait)
