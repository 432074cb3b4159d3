"""Versioned schema migrations: the ``migrations/NNNN_name.sql`` files, applied in order.

`migrate` takes a session-level advisory lock, so processes starting together apply each
migration once; installs PGMQ first when the ``pgmq`` schema is missing (``CREATE EXTENSION``
where the server offers it, else the SQL the ``pgmq`` package ships); then applies every
migration not yet in ``tasker.schema_migrations``, each in its own transaction. Running it
again changes nothing.
"""

from __future__ import annotations

import re
from importlib import resources

import attrs

from tasker_trio.db.bridge import Connection, Database
from tasker_trio.db.errors import MigrationError

LOCK_KEY = 0x7461736B6572  # "tasker": the advisory lock every migrating process takes
"""The `pg_advisory_lock` key that serialises migrations (and the PGMQ install)."""

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS tasker;
CREATE TABLE IF NOT EXISTS tasker.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""
_APPLIED = "SELECT version FROM tasker.schema_migrations ORDER BY version"
_RECORD = "INSERT INTO tasker.schema_migrations (version, name) VALUES ($1, $2)"
_HAS_PGMQ = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pgmq')"
_PGMQ_AVAILABLE = "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgmq')"
_HAS_BOOKKEEPING = "SELECT to_regclass('tasker.schema_migrations') IS NOT NULL"


@attrs.frozen(kw_only=True)
class Migration:
    """One migration file: its version (the number in its name), name and SQL."""

    version: int
    name: str
    sql: str


@attrs.frozen(kw_only=True)
class MigrationStatus:
    """Which migrations a database has, and which it still needs."""

    applied: tuple[int, ...]
    pending: tuple[Migration, ...]

    @property
    def up_to_date(self) -> bool:
        """Whether every migration of this code is applied."""
        return not self.pending


def load_migrations() -> tuple[Migration, ...]:
    """The package's migrations, in version order."""
    folder = resources.files("tasker_trio.db").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(
                Migration(version=int(match[1]), name=entry.name, sql=entry.read_text("utf-8"))
            )
    return tuple(sorted(found, key=lambda m: m.version))


def pgmq_install_sql() -> str:
    """The PGMQ install script the ``pgmq`` Python package ships."""
    return resources.files("pgmq").joinpath("sql", "pgmq.sql").read_text("utf-8")


async def migrate(db: Database) -> tuple[Migration, ...]:
    """Install PGMQ if needed and apply the pending migrations; return those applied.

    Raises:
        MigrationError: a migration failed (it is rolled back; earlier ones stay applied).
        DatabaseUnavailable: the server could not be reached.
    """
    migrations = load_migrations()

    async def op(conn: Connection) -> tuple[Migration, ...]:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await _install_pgmq(conn)
            await conn.execute(_BOOKKEEPING)
            applied = {row["version"] for row in await conn.fetch(_APPLIED)}
            done = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(_RECORD, migration.version, migration.name)
                except Exception as exc:
                    raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
                done.append(migration)
            return tuple(done)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)

    return await db.run(op, where="migrating the database")


async def _install_pgmq(conn: Connection) -> None:
    if await conn.fetchval(_HAS_PGMQ):
        return
    async with conn.transaction():
        if await conn.fetchval(_PGMQ_AVAILABLE):
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pgmq")
        else:
            await conn.execute(pgmq_install_sql())


async def status(db: Database) -> MigrationStatus:
    """Which migrations are applied and which are pending (changes nothing)."""
    migrations = load_migrations()

    async def op(conn: Connection) -> tuple[int, ...]:
        if not await conn.fetchval(_HAS_BOOKKEEPING):
            return ()
        return tuple(row["version"] for row in await conn.fetch(_APPLIED))

    applied = await db.run(op, where="reading the schema version")
    return MigrationStatus(
        applied=applied, pending=tuple(m for m in migrations if m.version not in applied)
    )


async def check_schema(db: Database) -> None:
    """Raise `MigrationError` when the database lacks migrations this code needs."""
    current = await status(db)
    if not current.up_to_date:
        names = ", ".join(m.name for m in current.pending)
        raise MigrationError(
            f"the database schema is older than this code (missing {names}): "
            "run `python -m tasker_trio db migrate`"
        )
