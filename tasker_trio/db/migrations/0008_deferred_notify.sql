-- Notifications sent after the commit, in batches, by the process that committed.
--
-- PostgreSQL serialises the commits of all transactions that NOTIFY: at commit each one
-- takes a database-wide lock and keeps it through its WAL flush. With every recorded result
-- and applied plan notifying, the engine's commits queued up behind that lock. Connections
-- of tasker_trio now start with the setting `tasker.notify = deferred`, and `tasker.notify`
-- then does nothing: the process sends the notifications itself once its transaction has
-- committed, many at once, from a transaction that writes nothing (`tasker_trio.db.publisher`).
-- Any other connection (psql, another tool, an older tasker_trio) still notifies inline.

CREATE OR REPLACE FUNCTION tasker.notify(channel text, key text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify(channel, key || coalesce('|' || nullif(current_setting('tasker.origin', true), ''), ''))
    WHERE coalesce(current_setting('tasker.notify', true), '') <> 'deferred';
$$;
