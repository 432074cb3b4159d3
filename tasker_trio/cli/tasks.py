"""``python -m tasker_trio tasks ...``: submit a task to the ``serve`` processes, show a task.

``tasks submit`` checks the request against the registered templates (an unknown template, a
context that fails the input schema or a missing idempotency key exit 1, nothing queued),
pins the version, queues the request in ``orchestration_task_requests``, waits until a
``serve`` process has created the task (its uuid exists only then), and prints the uuid;
``--wait`` then waits for the task to end. A request whose task exists already (same
identity) is not queued again. The task is found by the request's identity hash, or for an
``always_unique`` template by its correlation id among the tasks created after it was sent:
read-only SQL of this client (the `Store` protocol has no such lookups). ``tasks show`` prints
a task (`tasker_trio.cli._show_task`).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import attrs
import trio

from tasker_trio.cli._run_output import describe_failure
from tasker_trio.cli._show_task import show_task
from tasker_trio.cli.common import add_database_argument, open_client, run_trio, say, settings_from
from tasker_trio.cli.run import parse_context
from tasker_trio.db import Database
from tasker_trio.db.opening import redact
from tasker_trio.engine_api import wait_settled
from tasker_trio.errors import ConfigurationError, UnknownTemplate
from tasker_trio.models import ORCHESTRATION_TASK_REQUESTS, TaskRequest
from tasker_trio.models.messages import TaskRequestMessage
from tasker_trio.models.task import PRIORITY_RANGE
from tasker_trio.orchestration.services.task_initialization.workflow_builder import (
    request_identity,
)
from tasker_trio.state_machine import TaskState
from tasker_trio.store.postgres.templates import load_registry, registrant
from tasker_trio.store.protocol import Store
from tasker_trio.templates import IdentityStrategy, validate_context

CREATION_TIMEOUT = 30.0
"""Seconds ``tasks submit`` waits for a serve process to create the task, by default."""
POLL_SECONDS = 0.1
"""How often ``tasks submit`` looks for the task it requested."""

_BY_IDENTITY = "SELECT task_uuid FROM tasker.tasks WHERE identity_hash = $1"
_BY_CORRELATION = """
SELECT task_uuid FROM tasker.tasks
WHERE seq > $1 AND data->>'correlation_id' = $2 ORDER BY seq LIMIT 1
"""
_LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM tasker.tasks"
_REJECTION = "SELECT reason FROM tasker.archive_reasons WHERE queue_name = $1 AND msg_id = $2"


def register(groups: Any) -> None:
    """Add the ``tasks`` group and its subcommands to the top-level parser."""
    group: argparse.ArgumentParser = groups.add_parser(
        "tasks", help="submit tasks to the serve processes of a database, and show tasks"
    )
    group.set_defaults(group_parser=group)
    commands = group.add_subparsers(title="subcommands", metavar="SUBCOMMAND")

    submit = commands.add_parser(
        "submit",
        help="request a task from the serve processes; print its uuid once it is created",
        description=(
            "Check the request against the templates registered in the database, queue it "
            "for the serve processes, wait until one has created the task, and print the "
            "task's uuid. With --wait, also wait until the task ends (exit 0 when it "
            "completes, 1 otherwise)."
        ),
    )
    submit.add_argument("namespace", metavar="NAMESPACE", help="the template's namespace")
    submit.add_argument("name", metavar="NAME", help="the template's name")
    submit.add_argument("--version", default=None, help="the template's version (latest)")
    submit.add_argument(
        "--context", default="{}", metavar="JSON", help="a JSON object, or @FILE (default: {})"
    )
    submit.add_argument("--idempotency-key", default=None, metavar="KEY")
    submit.add_argument("--priority", type=int, default=0, help="-100..100 (default: 0)")
    submit.add_argument("--wait", action="store_true", help="wait until the task ends")
    submit.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"the most to wait in all (default: {CREATION_TIMEOUT:g} s for the task to be "
        "created; then, with --wait, no limit)",
    )
    add_database_argument(submit, what="the PostgreSQL database the serve processes run on")
    submit.set_defaults(handler=submit_command)

    show = commands.add_parser("show", help="print a task's state and its steps")
    show.add_argument("task_uuid", metavar="TASK_UUID")
    show.add_argument("--json", action="store_true", help="print the task and steps as JSON")
    add_database_argument(show, what="the PostgreSQL database the task is in")
    show.set_defaults(handler=show_command)


@attrs.frozen(kw_only=True)
class Order:
    """What ``tasks submit`` was asked to do, checked."""

    url: str
    namespace: str
    name: str
    version: str | None
    context: dict[str, Any]
    idempotency_key: str | None
    priority: int
    wait: bool
    timeout: float | None


def submit_command(args: argparse.Namespace) -> int:
    """Check the arguments, then submit; the exit code."""
    if args.priority not in PRIORITY_RANGE:
        raise ConfigurationError(f"--priority must be in -100..100, not {args.priority}")
    if args.timeout is not None and not args.timeout > 0:
        raise ConfigurationError(
            f"--timeout must be a positive number of seconds, not {args.timeout:g}"
        )
    order = Order(
        url=_url(args),
        namespace=args.namespace,
        name=args.name,
        version=args.version,
        context=parse_context(args.context),
        idempotency_key=args.idempotency_key,
        priority=args.priority,
        wait=args.wait,
        timeout=args.timeout,
    )
    return run_trio(_submit, order)


def show_command(args: argparse.Namespace) -> int:
    """Print the task; exit 1 when there is no such task."""
    return run_trio(show_task, _url(args), args.task_uuid, args.json)


async def _submit(order: Order) -> int:
    start = trio.current_time()
    async with open_client(order.url, wakeups="hybrid" if order.wait else "poll") as backend:
        assert backend.database is not None
        db = backend.database
        registry = await load_registry(db)
        try:
            template = registry.get(order.namespace, order.name, order.version)
        except UnknownTemplate as exc:
            known = ", ".join(t.identifier for t in registry.list()) or "none"
            say(f"error: {exc}; registered in {redact(order.url)}: {known}")
            return 1
        validate_context(template, order.context)
        request = TaskRequest.create(
            order.namespace,
            order.name,
            order.context,
            version=template.version,
            idempotency_key=order.idempotency_key,
            priority=order.priority,
            initiator=registrant("tasks submit"),
            source_system="tasker_trio cli",
        )
        identity: str | None = request_identity(template, request)  # caller_provided: a key
        if template.identity_strategy == IdentityStrategy.ALWAYS_UNIQUE:
            identity = None  # a random draw: only the serve process's own counts
        task_uuid = await db.fetchval(_BY_IDENTITY, identity, idempotent=True) if identity else None
        if task_uuid is None:
            floor = await db.fetchval(_LAST_SEQ, idempotent=True)  # before the request exists
            msg_id = await backend.broker.send(
                ORCHESTRATION_TASK_REQUESTS, TaskRequestMessage(request=request).to_json()
            )
            pending = Pending(
                identity=identity, correlation_id=request.correlation_id, floor=floor, msg_id=msg_id
            )
            say(
                f"request for {template.identifier} queued (message {pending.msg_id}); "
                "waiting for a serve process to create the task"
            )
            limit = CREATION_TIMEOUT if order.timeout is None else order.timeout
            task_uuid = await pending.wait_created(db, deadline=start + limit)
            if task_uuid is None:
                return 1
        else:
            say("a task for this request exists already; nothing queued")
        task = await backend.store.get_task(task_uuid)
        say(f"task {task_uuid} is {task.state}: {template.identifier}")
        print(task_uuid, flush=True)
        if not order.wait:
            return 0
        deadline = math.inf if order.timeout is None else start + order.timeout
        return await _wait_settled(backend.store, task_uuid, deadline, order.timeout or 0.0)


@attrs.frozen(kw_only=True)
class Pending:
    """A queued request, and how to find the task a serve process makes of it."""

    identity: str | None
    correlation_id: str
    floor: int
    msg_id: int

    async def wait_created(self, db: Database, *, deadline: float) -> str | None:
        """The task's uuid once it exists; None (having said why) if rejected or late."""
        while True:
            if self.identity is not None:
                found = await db.fetchval(_BY_IDENTITY, self.identity, idempotent=True)
            else:
                found = await db.fetchval(
                    _BY_CORRELATION, self.floor, self.correlation_id, idempotent=True
                )
            if found is not None:
                return str(found)
            rejected = await db.fetchval(
                _REJECTION, ORCHESTRATION_TASK_REQUESTS, self.msg_id, idempotent=True
            )
            if rejected is not None:
                say(f"error: a serve process rejected request {self.msg_id}: {rejected}")
                return None
            if trio.current_time() >= deadline:
                say(
                    f"error: no serve process has created the task yet: is one running on "
                    f"{redact(db.dsn)}? The request stays queued (message {self.msg_id}) for "
                    "the next one to take"
                )
                return None
            await trio.sleep(POLL_SECONDS)


async def _wait_settled(store: Store, task_uuid: str, deadline: float, limit: float) -> int:
    """Wait until the task ends (or is blocked); report it; 0 when it completed."""
    task = await wait_settled(store, task_uuid, deadline=deadline, limit=limit)
    view = await store.get_view(task_uuid)
    if task.state == TaskState.COMPLETE:
        say(f"task {task_uuid} complete: {len(view.steps)} steps")
        return 0
    say(f"task {task_uuid} ended {task.state}")
    for step in view.steps:
        if step.last_error is not None and not step.state.satisfies_children:
            say(f"  failed:  {describe_failure(step)}")
    return 1


def _url(args: argparse.Namespace) -> str:
    return str(settings_from(args, database_required=True).database_url)
