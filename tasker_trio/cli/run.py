"""``python -m tasker_trio run TEMPLATE``: run one task to its end in this process.

The engine is embedded (in memory) unless ``--database`` (or ``TASKER_DATABASE_URL``) names a
PostgreSQL database; then the schema is migrated on start if needed, and the task and its
audit trail stay in the database afterwards.

The command loads the template, imports the ``--handlers`` modules (so their
``@step_handler`` registrations happen), checks that every step's handler resolves, opens
an engine, submits the ``--context``, and follows the task: each step's state changes are
printed on standard error as they happen, the results as JSON on standard output. The exit
code is 0 when the task completes, 1 otherwise (with the reason on standard error).
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
from tasker_trio.models import WorkflowStep
from tasker_trio.state_machine import StepState, TaskState
from tasker_trio.templates import TaskTemplate, load_template
from tasker_trio.worker.handlers import HandlerResolver

POLL_SECONDS = 0.01
"""How often the progress display looks for new state changes."""

HAND_OVER_STATES = frozenset(
    {StepState.ENQUEUED_FOR_ORCHESTRATION, StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION}
)
"""Brief states between a worker and orchestration; the progress display skips them."""


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


class Progress:
    """Prints each step's new state changes, one line per step per look."""

    def __init__(self, engine: Engine, start: float) -> None:
        self._engine = engine
        self._start = start
        self._seen: dict[str, int] = {}  # step uuid -> sort_key of the last transition shown
        self._shown: dict[str, str] = {}  # step uuid -> the last state shown

    async def update(self, task_uuid: str) -> None:
        """Print what changed since the last call."""
        steps = await self._engine.get_steps(task_uuid)
        width = max((len(s.name) for s in steps), default=0)
        for step in steps:
            line = await self._changes(step)
            if line is not None:
                at, text = line
                print(f"[{at - self._start:8.3f}s] {step.name:<{width}}  {text}", file=sys.stderr)

    async def _changes(self, step: WorkflowStep) -> tuple[float, str] | None:
        last = self._seen.get(step.step_uuid, 0)
        if step.state == StepState.PENDING and last == 0:
            return None
        new = [
            t
            for t in await self._engine.get_transitions(step.step_uuid)
            if t.sort_key > last and t.to_state not in HAND_OVER_STATES
        ]
        if not new:
            return None
        self._seen[step.step_uuid] = max(t.sort_key for t in new)
        chain = [self._shown.get(step.step_uuid, new[0].from_state)]
        chain += [t.to_state for t in new]
        self._shown[step.step_uuid] = chain[-1]
        text = " → ".join(chain)
        attempt = next(
            (t.metadata["attempt"] for t in reversed(new) if "attempt" in t.metadata), None
        )
        if attempt is not None:
            text += f" (attempt {attempt})"
        error = step.last_error
        final = new[-1]
        if final.to_state in (StepState.WAITING_FOR_RETRY, StepState.ERROR) and error is not None:
            text += f": {error.error_type}: {error.message}"
            retry_at = final.metadata.get("next_retry_at")
            if final.to_state == StepState.WAITING_FOR_RETRY and retry_at is not None:
                text += f"; retry in {max(retry_at - final.at, 0.0):.3f}s"
        return final.at, text


async def report(engine: Engine, task_uuid: str, state: TaskState, start: float) -> int:
    """Print the results (complete) or why the task did not complete; the exit code."""
    elapsed = engine.now() - start
    steps = await engine.get_steps(task_uuid)
    if state == TaskState.COMPLETE:
        print(json.dumps({s.name: s.results for s in steps}, indent=2))
        print(f"task {task_uuid} complete: {len(steps)} steps in {elapsed:.3f}s", file=sys.stderr)
        return 0
    print(f"task {task_uuid} ended {state.value} after {elapsed:.3f}s", file=sys.stderr)
    for step in steps:
        if step.state in (StepState.ERROR, StepState.CANCELLED) or (
            step.last_error is not None and not step.state.satisfies_children
        ):
            print(f"  failed:  {describe_failure(step)}", file=sys.stderr)
    waiting = [s.name for s in steps if s.state == StepState.PENDING]
    if waiting:
        print(f"  blocked: {', '.join(waiting)} (waiting for the failed steps)", file=sys.stderr)
    for entry in await engine.dead_letters():
        if entry.task_uuid == task_uuid:
            print(
                f"  dead-letter entry {entry.entry_id} ({entry.reason}): an operator can "
                "reset, resolve or complete the failed steps (see docs/running.md)",
                file=sys.stderr,
            )
    return 1


def describe_failure(step: WorkflowStep) -> str:
    """``name (state after N attempts): ErrorType: message``."""
    plural = "attempt" if step.attempts == 1 else "attempts"
    text = f"{step.name} ({step.state.value} after {step.attempts} {plural})"
    if step.last_error is not None:
        text += f": {step.last_error.error_type}: {step.last_error.message}"
    return text
