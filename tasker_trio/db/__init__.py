"""PostgreSQL plumbing: the Trio-asyncio bridge, errors, and schema migrations."""

from tasker_trio.db.bridge import Database as Database
from tasker_trio.db.errors import DatabaseConflict as DatabaseConflict
from tasker_trio.db.errors import DatabaseError as DatabaseError
from tasker_trio.db.errors import DatabaseUnavailable as DatabaseUnavailable
from tasker_trio.db.errors import MigrationError as MigrationError
from tasker_trio.db.migrations import MigrationStatus as MigrationStatus
from tasker_trio.db.migrations import check_schema as check_schema
from tasker_trio.db.migrations import migrate as migrate
from tasker_trio.db.migrations import status as status
from tasker_trio.db.opening import open_database as open_database
