"""The PostgreSQL store (`PostgresStore`); pairs with `tasker_trio.messaging.pgmq.PgmqBroker`."""

from tasker_trio.store.postgres._commit import default_processor_id as default_processor_id
from tasker_trio.store.postgres._durability import DURABILITY_MODES as DURABILITY_MODES
from tasker_trio.store.postgres.store import APPLY_ATTEMPTS as APPLY_ATTEMPTS
from tasker_trio.store.postgres.store import PostgresStore as PostgresStore
