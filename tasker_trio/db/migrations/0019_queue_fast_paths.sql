-- Queue sends and deletes go straight to their queue's static statement.
--
-- Every send checked first that its queue existed and was prepared (`tasker.q_ensure`: two
-- look-ups, three PL/pgSQL calls) and called `tasker.notify`, which does nothing while the
-- engine's connections defer notifying; every delete checked the same through
-- `tasker.q_remove`. Each PL/pgSQL statement starts an executor (~5 us here), so a
-- one-message send cost 90 us against 40 us for its dispatcher alone, and a delete 78 us
-- against 35 us: ~100 us of a plan's ~600 us.
--
-- The dispatchers (`tasker.q_send_prepared`, `tasker.q_delete_prepared`, written by
-- `tasker.q_write_dispatchers`) now take each prepared queue whose table exists (checked by
-- `to_regclass`, a catalog look-up of well under a microsecond) and, for any other queue,
-- do what the wrappers did before: a send creates and prepares the queue
-- (`tasker.q_ensure`) and calls the dispatcher again, which has it now; a delete from a
-- queue that does not exist deletes nothing, and from any other prepares it (if need be)
-- and calls again. "Has it now" holds also when another connection prepared the queue
-- after this one read the dispatcher: the call again reads the latest version. A queue dropped with PGMQ is thus still created again on its next send. The
-- wrappers call the dispatchers directly, and notify only when the connection does not
-- defer it (`tasker.notify` itself is unchanged).

CREATE OR REPLACE FUNCTION tasker.q_write_dispatchers() RETURNS void
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
            ELSIF queue = %L AND to_regclass(%L) IS NOT NULL THEN
                RETURN QUERY
                INSERT INTO pgmq.%I AS m (enqueued_at, vt, message)
                SELECT to_timestamp(now), to_timestamp(now + greatest(coalesce(delay, 0), 0)),
                       e.value
                FROM jsonb_array_elements(messages) WITH ORDINALITY e
                ORDER BY e.ordinality
                RETURNING m.msg_id, m.message;$b$,
            q.queue_name, format('pgmq.%I', q.qtable), q.qtable);
        deletes := deletes || format($b$
            ELSIF queue = %L AND to_regclass(%L) IS NOT NULL THEN
                DELETE FROM pgmq.%I WHERE msg_id = ANY (ids);$b$,
            q.queue_name, format('pgmq.%I', q.qtable), q.qtable);
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
                -- Created and prepared now (here, or by another connection since this
                -- version of the function was read): the call finds it written again.
                PERFORM tasker.q_ensure(queue);
                RETURN QUERY SELECT * FROM tasker.q_send_prepared(queue, messages, now, delay);
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
            ELSIF NOT tasker.q_exists(queue) THEN
                RETURN 0;
            ELSE
                -- As for sends: prepared now, here or by another connection.
                PERFORM tasker.q_prepare(queue);
                RETURN tasker.q_delete_prepared(queue, ids);
            END IF;
            GET DIAGNOSTICS deleted = ROW_COUNT;
            RETURN deleted;
        END
        $d$
    $f$, deletes);
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_remove(queue text, ids bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    RETURN tasker.q_delete_prepared(queue, ids);
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_delete_many(queue text, ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tasker.q_delete_prepared(queue, ids);
END
$$;

CREATE OR REPLACE FUNCTION tasker.q_send_each(queue text, messages jsonb, now double precision,
                                              delay double precision)
RETURNS TABLE (msg_id bigint, message jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT * FROM tasker.q_send_prepared(queue, messages, now, delay);
    IF coalesce(current_setting('tasker.notify', true), '') <> 'deferred' THEN
        PERFORM tasker.notify('tasker_queues', queue);
    END IF;
END
$$;

SELECT tasker.q_write_dispatchers();
