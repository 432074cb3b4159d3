"""``python -m tasker_trio db ...``: apply the schema migrations, and show which are applied.

``db migrate`` installs PGMQ when the database lacks it and applies every pending migration
(under an advisory lock, so processes starting together do not race); running it again
changes nothing. ``db status`` lists applied and pending migrations and exits 1 while any is
pending, so scripts can check a database before starting engines on it.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tasker_trio.backend import explain_unavailable
from tasker_trio.cli.common import add_database_argument, run_trio, settings_from
from tasker_trio.db import Database, DatabaseUnavailable, migrate, open_database, status
from tasker_trio.db.migrations import load_migrations
from tasker_trio.db.opening import redact


def register(groups: Any) -> None:
    """Add the ``db`` group and its subcommands to the top-level parser."""
    group: argparse.ArgumentParser = groups.add_parser(
        "db", help="PostgreSQL schema: apply migrations, show their status"
    )
    group.set_defaults(group_parser=group)
    commands = group.add_subparsers(title="subcommands", metavar="SUBCOMMAND")

    run_migrate = commands.add_parser(
        "migrate",
        help="install PGMQ if needed and apply pending migrations (safe to run again)",
    )
    add_database_argument(run_migrate, what="the database to migrate")
    run_migrate.set_defaults(handler=migrate_command)

    show = commands.add_parser(
        "status", help="list applied and pending migrations; exit 1 if any is pending"
    )
    add_database_argument(show, what="the database to inspect")
    show.set_defaults(handler=status_command)


def migrate_command(args: argparse.Namespace) -> int:
    """Apply the pending migrations and say which."""
    url = settings_from(args, database_required=True).database_url
    assert url is not None
    return run_trio(_migrate, url)


def status_command(args: argparse.Namespace) -> int:
    """Print the migrations' status; exit code 1 while any is pending."""
    url = settings_from(args, database_required=True).database_url
    assert url is not None
    return run_trio(_status, url)


async def _migrate(url: str) -> int:
    async with _database(url) as db:
        applied = await migrate(db)
    for migration in applied:
        print(f"applied  {migration.name}")
    total = len(load_migrations())
    if applied:
        print(f"{redact(url)}: applied {len(applied)} migration(s); the schema is up to date")
    else:
        print(f"{redact(url)}: nothing to apply; the schema is up to date ({total} migrations)")
    return 0


async def _status(url: str) -> int:
    async with _database(url) as db:
        current = await status(db)
    names = {m.version: m.name for m in load_migrations()}
    for version in current.applied:
        print(f"applied  {names.get(version, f'{version:04d} (unknown to this code)')}")
    for migration in current.pending:
        print(f"pending  {migration.name}")
    if current.pending:
        print(
            f"{redact(url)}: {len(current.pending)} migration(s) pending; run "
            f"`python -m tasker_trio db migrate --database {redact(url)}`"
        )
        return 1
    print(f"{redact(url)}: the schema is up to date ({len(current.applied)} migrations)")
    return 0


@asynccontextmanager
async def _database(url: str) -> AsyncIterator[Database]:
    """One connection, no LISTEN; a failure to open says what to fix."""
    try:
        async with open_database(url, min_size=1, max_size=1, wakeups="poll") as db:
            yield db
    except DatabaseUnavailable as exc:
        raise explain_unavailable(exc) from exc
