-- The queues' sends and deletes as static statements, planned once per connection.
--
-- PGMQ keeps each queue in a table of its own (`pgmq.q_<queue>`), so the queue functions
-- built their statements with `format` and ran them with EXECUTE, and PostgreSQL parsed
-- and planned them on every call: a step's send and delete cost more to plan than to run
-- (pgbench: 250 against 180 us for a one-message send in its own transaction).
--
-- `tasker.q_send_prepared(queue, messages, now, delay)` and
-- `tasker.q_delete_prepared(queue, ids)` hold one static INSERT and one static DELETE per
-- queue, chosen by name; PL/pgSQL keeps each one's plan for the connection. They are
-- written out again (`tasker.q_write_dispatchers`) whenever a queue joins
-- `tasker.prepared_queues` (`tasker.q_prepare`, under a transaction-level advisory lock so
-- that two connections do not race): `tasker.q_ensure` prepares a queue when it creates it,
-- or on its first send when it was created before this migration or by another tool. The
-- sends (`tasker.q_send`, `tasker.q_send_many`, `tasker.q_send_each`) and deletes
-- (`tasker.q_delete`, `tasker.q_delete_many`) call them; their behaviour is unchanged. A
-- queue dropped with PGMQ keeps its statements; it is created again on its next send, as
-- before, and they serve it again (PostgreSQL re-plans them for the new table).

CREATE TABLE tasker.prepared_queues (
    queue_name text PRIMARY KEY
);

CREATE FUNCTION tasker.q_write_dispatchers() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sends text := '';
    deletes text := '';
    q record;
BEGIN
    FOR q IN SELECT p.queue_name, pgmq.format_table_name(p.queue_name, 'q') AS qtable
             FROM tasker.prepared_queues p ORDER BY p.queue_name
    LOOP
        sends := sends || format($b$
            ELSIF queue = %L THEN
                RETURN QUERY
                INSERT INTO pgmq.%I AS m (enqueued_at, vt, message)
                SELECT to_timestamp(now), to_timestamp(now + greatest(coalesce(delay, 0), 0)),
                       e.value
                FROM jsonb_array_elements(messages) WITH ORDINALITY e
                ORDER BY e.ordinality
                RETURNING m.msg_id, m.message;$b$, q.queue_name, q.qtable);
        deletes := deletes || format($b$
            ELSIF queue = %L THEN
                DELETE FROM pgmq.%I WHERE msg_id = ANY (ids);$b$, q.queue_name, q.qtable);
    END LOOP;
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION tasker.q_send_prepared(
            queue text, messages jsonb, now double precision, delay double precision)
        RETURNS TABLE (msg_id bigint, message jsonb)
        LANGUAGE plpgsql AS $d$
        #variable_conflict use_column
        BEGIN
            IF queue IS NULL THEN
                RAISE EXCEPTION 'no queue named';%s
            ELSE
                RAISE EXCEPTION 'queue %% is not prepared (tasker.q_prepare)', queue;
            END IF;
        END
        $d$
    $f$, sends);
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION tasker.q_delete_prepared(queue text, ids bigint[])
        RETURNS integer
        LANGUAGE plpgsql AS $d$
        DECLARE
            deleted integer;
        BEGIN
            IF queue IS NULL THEN
                RAISE EXCEPTION 'no queue named';%s
            ELSE
                RAISE EXCEPTION 'queue %% is not prepared (tasker.q_prepare)', queue;
            END IF;
            GET DIAGNOSTICS deleted = ROW_COUNT;
            RETURN deleted;
        END
        $d$
    $f$, deletes);
END
$$;

CREATE FUNCTION tasker.q_prepare(queue text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tasker.q_prepare'));
    INSERT INTO tasker.prepared_queues (queue_name) VALUES (queue) ON CONFLICT DO NOTHING;
    IF FOUND THEN
        PERFORM tasker.q_write_dispatchers();
    END IF;
END
$$;

CREATE FUNCTION tasker.q_prepared(queue text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM tasker.prepared_queues p WHERE p.queue_name = queue);
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_ensure(queue text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        PERFORM pgmq.create(queue);  -- takes PGMQ's per-queue advisory lock
    END IF;
    IF NOT tasker.q_prepared(queue) THEN
        PERFORM tasker.q_prepare(queue);
    END IF;
END
$$;

-- Delete the messages `ids` of `queue`; how many there were (none if there is no queue).
CREATE FUNCTION tasker.q_remove(queue text, ids bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        RETURN 0;
    END IF;
    IF NOT tasker.q_prepared(queue) THEN
        PERFORM tasker.q_prepare(queue);
    END IF;
    RETURN tasker.q_delete_prepared(queue, ids);
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_send_each(queue text, messages jsonb, now double precision,
                                              delay double precision)
RETURNS TABLE (msg_id bigint, message jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tasker.q_ensure(queue);
    RETURN QUERY SELECT * FROM tasker.q_send_prepared(queue, messages, now, delay);
    PERFORM tasker.notify('tasker_queues', queue);
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_send(queue text, message jsonb, now double precision,
                                         delay double precision)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    id bigint;
BEGIN
    SELECT s.msg_id INTO id
    FROM tasker.q_send_each(queue, jsonb_build_array(message), now, delay) s;
    RETURN id;
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_send_many(queue text, messages jsonb, now double precision,
                                              delay double precision)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM tasker.q_send_each(queue, messages, now, delay);
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_delete(queue text, id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RETURN tasker.q_remove(queue, ARRAY[id]) > 0;
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_delete_many(queue text, ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tasker.q_remove(queue, ids);
END
$$;

-- The dispatchers, with the queues that exist already.
INSERT INTO tasker.prepared_queues (queue_name) SELECT m.queue_name FROM pgmq.meta m;
SELECT tasker.q_write_dispatchers();
