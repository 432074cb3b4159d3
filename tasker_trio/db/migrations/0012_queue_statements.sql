-- Each queue's sends and deletes as functions of its own, planned once per connection.
--
-- PGMQ keeps each queue in a table of its own (`pgmq.q_<queue>`), so the queue functions
-- built their statements with `format` and ran them with EXECUTE, and PostgreSQL parsed
-- and planned them on every call: a step's send and delete cost more to plan than to run
-- (pgbench: 250 against 180 us for a one-message send in its own transaction).
--
-- `tasker.q_prepare(queue)` creates `tasker.qsend_<table>(messages, now, delay)` and
-- `tasker.qdelete_<table>(ids)` for the queue's table: PL/pgSQL with static statements,
-- whose plans each connection keeps. `tasker.q_ensure` creates them along with the queue
-- (and for queues created before this migration, or by another tool, on their first send),
-- under a transaction-level advisory lock so that two connections do not race. A queue
-- dropped with PGMQ leaves its functions behind; the queue is created again on its next
-- send, as before, and they serve it again. The
-- sends (`tasker.q_send`, `tasker.q_send_many`, `tasker.q_send_each`) and deletes
-- (`tasker.q_delete`, `tasker.q_delete_many`) call them with an EXECUTE of one function
-- call, which is quick to plan; their behaviour is unchanged.

CREATE FUNCTION tasker.q_statement(queue text, kind text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT kind || '_' || lower('q_' || queue)
$$;

CREATE FUNCTION tasker.q_prepare(queue text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    qtable text := pgmq.format_table_name(queue, 'q');
BEGIN
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION tasker.%I(messages jsonb, now double precision,
                                             delay double precision)
        RETURNS TABLE (msg_id bigint, message jsonb)
        LANGUAGE plpgsql AS $b$
        #variable_conflict use_column
        BEGIN
            RETURN QUERY
            INSERT INTO pgmq.%I AS m (enqueued_at, vt, message)
            SELECT to_timestamp(now), to_timestamp(now + greatest(coalesce(delay, 0), 0)),
                   e.value
            FROM jsonb_array_elements(messages) WITH ORDINALITY e
            ORDER BY e.ordinality
            RETURNING m.msg_id, m.message;
        END
        $b$
    $f$, tasker.q_statement(queue, 'qsend'), qtable);
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION tasker.%I(ids bigint[]) RETURNS integer
        LANGUAGE plpgsql AS $b$
        DECLARE
            deleted integer;
        BEGIN
            DELETE FROM pgmq.%I WHERE msg_id = ANY (ids);
            GET DIAGNOSTICS deleted = ROW_COUNT;
            RETURN deleted;
        END
        $b$
    $f$, tasker.q_statement(queue, 'qdelete'), qtable);
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_ensure(queue text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    send text := 'tasker.' || quote_ident(tasker.q_statement(queue, 'qsend'));
BEGIN
    IF tasker.q_exists(queue) AND to_regproc(send) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('tasker.q_ensure'), hashtext(queue));
    IF NOT tasker.q_exists(queue) THEN
        PERFORM pgmq.create(queue);  -- takes PGMQ's per-queue advisory lock
    END IF;
    IF to_regproc(send) IS NULL THEN
        PERFORM tasker.q_prepare(queue);
    END IF;
END
$$;

-- Delete the messages `ids` of `queue`; how many there were (none if there is no queue).
CREATE FUNCTION tasker.q_remove(queue text, ids bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    deleted integer;
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        RETURN 0;
    END IF;
    IF to_regproc('tasker.' || quote_ident(tasker.q_statement(queue, 'qdelete'))) IS NULL THEN
        PERFORM tasker.q_ensure(queue);
    END IF;
    EXECUTE format('SELECT tasker.%I($1)', tasker.q_statement(queue, 'qdelete'))
    INTO deleted USING ids;
    RETURN deleted;
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_send_each(queue text, messages jsonb, now double precision,
                                              delay double precision)
RETURNS TABLE (msg_id bigint, message jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tasker.q_ensure(queue);
    RETURN QUERY EXECUTE format('SELECT * FROM tasker.%I($1, $2, $3)',
                                tasker.q_statement(queue, 'qsend'))
    USING messages, now, delay;
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

-- The queues that exist already.
SELECT tasker.q_prepare(m.queue_name) FROM pgmq.meta m;
