"""What the engine commands (``run``, ``serve``, ``worker``, ``db``, ``tasks``...) share.

The database and engine options and how they become `Settings`; opening the database of a
short-lived command (`open_client`); running a Trio main so that a `TaskerError` — even one
that crossed a nursery — reaches the user as one clear line; and running until Ctrl-C or
SIGTERM, then shutting down gracefully.
"""

from __future__ import annotations

import argparse
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from tasker_trio.backend import Backend, open_backend
from tasker_trio.config import DATABASE_ENV, Settings
from tasker_trio.errors import ConfigurationError, TaskerError

T = TypeVar("T")

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop ``serve`` and ``worker`` gracefully."""


def add_templates_argument(parser: argparse.ArgumentParser) -> None:
    """``--templates PATH`` (repeatable): the templates of a ``serve`` or ``worker`` process."""
    parser.add_argument(
        "--templates",
        action="append",
        default=[],
        metavar="PATH",
        help="task template files or directories (repeatable); they are registered in the "
        "database on start, beside those registered already (default: only the registered "
        "ones)",
    )


def add_handlers_argument(parser: argparse.ArgumentParser) -> None:
    """``--handlers MODULE`` (repeatable): modules imported for their handlers."""
    parser.add_argument(
        "--handlers",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module (or .py file) first, for its @step_handler registrations; "
        "repeatable",
    )


def add_database_argument(parser: argparse.ArgumentParser, *, what: str) -> None:
    """``--database URL`` (else ``TASKER_DATABASE_URL``)."""
    parser.add_argument(
        "--database",
        default=None,
        metavar="URL",
        help=f"{what} (postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE; default: "
        f"${DATABASE_ENV})",
    )


def add_engine_arguments(parser: argparse.ArgumentParser, *, workers: bool) -> None:
    """The tuning options of an engine process (each also has a ``TASKER_*`` variable)."""
    parser.add_argument(
        "--pool-size", type=int, default=None, metavar="N", help="database connections (10)"
    )
    parser.add_argument(
        "--wakeups",
        default=None,
        choices=("hybrid", "event", "poll"),
        help="how other processes' messages are noticed: LISTEN/NOTIFY and polling (hybrid, "
        "the default), LISTEN/NOTIFY only (event), or polling only (poll)",
    )
    parser.add_argument(
        "--durability",
        default=None,
        choices=("full", "outcomes"),
        help="PostgreSQL: every commit waits for the disk (full, the default), or only a "
        "task's creation and end do (outcomes: a server crash may redo the last steps)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the polling fallback of every queue listener (1.0)",
    )
    if workers:
        parser.add_argument(
            "--concurrency",
            dest="worker_concurrency",
            type=int,
            default=None,
            metavar="N",
            help="steps run at once (8)",
        )
        parser.add_argument(
            "--visibility-timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="how long a claimed step stays hidden without renewal; a worker that dies "
            "is recovered after this (30)",
        )


def settings_from(args: argparse.Namespace, *, database_required: bool) -> Settings:
    """`Settings` from the parsed arguments and the environment.

    Raises:
        ConfigurationError: a malformed value, or no database where one is required.
    """
    settings = Settings.load(vars(args))
    if database_required and settings.database_url is None:
        raise ConfigurationError(
            f"this command needs a PostgreSQL database: give --database URL or set {DATABASE_ENV}"
        )
    return settings


@asynccontextmanager
async def open_client(url: str, *, wakeups: str = "poll") -> AsyncIterator[Backend]:
    """The backend of a short-lived command on ``url``: two connections, schema checked.

    Raises:
        DatabaseUnavailable: the database cannot be opened (the message says what to fix).
        ConfigurationError: its schema is not the one this code expects (run ``db migrate``).
    """
    async with open_backend(
        url, pool_size=2, wakeups=wakeups, processor_id=f"cli-{uuid.uuid4().hex[:8]}"
    ) as backend:
        yield backend


def run_trio(main: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``trio.run(main, *args)``, with a lone `TaskerError` lifted out of exception groups.

    Raises:
        TaskerError: what ``main`` raised (`cli.main` prints it as one line, exit code 1).
    """
    try:
        return trio.run(main, *args)
    except BaseExceptionGroup as group:
        errors = list(_leaves(group))
        if len(errors) == 1 and isinstance(errors[0], TaskerError):
            raise errors[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterable[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


async def wait_for_shutdown_signal() -> int:
    """Return the first SIGINT or SIGTERM's number (what Ctrl-C sends, or a supervisor)."""
    with trio.open_signal_receiver(*SHUTDOWN_SIGNALS) as signals:
        async for signum in signals:
            return int(signum)
    raise AssertionError("the signal receiver ended")  # pragma: no cover


def say(text: str) -> None:
    """One line of status on standard error."""
    print(text, file=sys.stderr, flush=True)
