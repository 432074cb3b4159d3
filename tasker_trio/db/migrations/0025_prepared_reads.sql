-- Queue reads go straight to their queue's static statement, as sends and deletes do.
--
-- `tasker.q_read` built its statement with `EXECUTE format(...)` on every call: PostgreSQL
-- parsed and planned the read (a locking sub-select and an UPDATE) each time, ~0.3-0.5 ms
-- of a worker's read-and-claim (`tasker.claim_from_queue`, every 16 steps) and of every
-- read of the orchestration queues by separate processes (`track_functions`: ~600 us a
-- call, ~540 of it its own). `tasker.q_write_dispatchers` (migrations 0012, 0019, 0022)
-- now also writes `tasker.q_read_prepared`, the read of each prepared queue whose table
-- exists as a static statement (planned once per connection); a queue that does not exist
-- reads nothing, as before, and one not prepared yet is prepared and read again.
-- `tasker.q_read` calls it; its answers are unchanged.

CREATE OR REPLACE FUNCTION tasker.q_write_dispatchers() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sends text := '';
    rows text := '';
    reads text := '';
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
        rows := rows || format($b$
            ELSIF queue = %L AND to_regclass(%L) IS NOT NULL THEN
                RETURN QUERY
                INSERT INTO pgmq.%I AS m (enqueued_at, vt, message)
                SELECT to_timestamp((e.value->>'now')::float8),
                       to_timestamp((e.value->>'now')::float8
                                    + greatest(coalesce((e.value->>'delay')::float8, 0), 0)),
                       e.value->'message'
                FROM jsonb_array_elements(sent) WITH ORDINALITY e
                ORDER BY e.ordinality
                RETURNING m.msg_id, m.message;$b$,
            q.queue_name, format('pgmq.%I', q.qtable), q.qtable);
        reads := reads || format($b$
            ELSIF queue = %L AND to_regclass(%L) IS NOT NULL THEN
                RETURN QUERY
                WITH cte AS (
                    SELECT m.msg_id FROM pgmq.%I m
                    WHERE m.vt <= to_timestamp(at)
                    ORDER BY m.msg_id
                    LIMIT qty
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE pgmq.%I m
                SET last_read_at = to_timestamp(at), vt = to_timestamp(at + hidden_for),
                    read_ct = m.read_ct + 1
                FROM cte
                WHERE m.msg_id = cte.msg_id
                RETURNING m.msg_id, m.read_ct, extract(epoch FROM m.enqueued_at)::float8,
                          extract(epoch FROM m.vt)::float8, m.message;$b$,
            q.queue_name, format('pgmq.%I', q.qtable), q.qtable, q.qtable);
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
        CREATE OR REPLACE FUNCTION tasker.q_send_rows(queue text, sent jsonb)
        RETURNS TABLE (msg_id bigint, message jsonb)
        LANGUAGE plpgsql AS $d$
        #variable_conflict use_column
        BEGIN
            IF queue IS NULL THEN
                RAISE EXCEPTION 'no queue named';%s
            ELSE
                -- As for sends: created and prepared now, here or by another connection.
                PERFORM tasker.q_ensure(queue);
                RETURN QUERY SELECT * FROM tasker.q_send_rows(queue, sent);
            END IF;
        END
        $d$
    $f$, rows);
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION tasker.q_read_prepared(
            queue text, qty integer, hidden_for double precision, at double precision)
        RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at double precision,
                       visible_at double precision, message jsonb)
        LANGUAGE plpgsql AS $d$
        #variable_conflict use_column
        BEGIN
            IF queue IS NULL THEN
                RAISE EXCEPTION 'no queue named';%s
            ELSIF NOT tasker.q_exists(queue) THEN
                RETURN;
            ELSE
                -- As for sends: prepared now, here or by another connection.
                PERFORM tasker.q_prepare(queue);
                RETURN QUERY SELECT * FROM tasker.q_read_prepared(queue, qty, hidden_for, at);
            END IF;
        END
        $d$
    $f$, reads);
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

SELECT tasker.q_write_dispatchers();

CREATE OR REPLACE FUNCTION tasker.q_read(queue text, qty integer, vt double precision,
                                         now double precision)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at double precision,
               visible_at double precision, message jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT * FROM tasker.q_read_prepared(queue, qty, vt, now);
END
$$;
