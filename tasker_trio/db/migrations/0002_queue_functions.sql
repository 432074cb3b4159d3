-- Queue operations on PGMQ's tables (pgmq.q_<queue>, pgmq.a_<queue>) with explicit times.
--
-- PGMQ's own read/send/set_vt decide visibility with clock_timestamp(). The engine decides
-- it with its own clock (wall-clock time in production, a test's mock clock in the suites),
-- so these functions take `now` (seconds) and do what PGMQ's functions do with it; queues
-- are still created by pgmq.create and keep PGMQ's layout, so PGMQ tooling reads them.
-- Every queue is created on its first send. Sends notify channel `tasker_queues`.

CREATE FUNCTION tasker.jnum(value double precision) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    -- float8 -> text is shortest-exact; float8 -> numeric directly keeps only 15 digits.
    SELECT CASE WHEN value IS NULL THEN 'null'::jsonb ELSE to_jsonb(value::text::numeric) END
$$;

CREATE FUNCTION tasker.q_exists(queue text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pgmq.meta m WHERE m.queue_name = queue)
$$;

CREATE FUNCTION tasker.q_ensure(queue text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        PERFORM pgmq.create(queue);  -- takes PGMQ's per-queue advisory lock
    END IF;
END
$$;

CREATE FUNCTION tasker.q_send(queue text, message jsonb, now double precision, delay double precision)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM tasker.q_ensure(queue);
    EXECUTE format(
        'INSERT INTO pgmq.%I (enqueued_at, vt, message) VALUES (to_timestamp($1), to_timestamp($2), $3)'
        ' RETURNING msg_id',
        pgmq.format_table_name(queue, 'q'))
    INTO id USING now, now + greatest(coalesce(delay, 0), 0), message;
    PERFORM pg_notify('tasker_queues', queue);
    RETURN id;
END
$$;

CREATE FUNCTION tasker.q_read(queue text, qty integer, vt double precision, now double precision)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at double precision,
               visible_at double precision, message jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    qtable text := pgmq.format_table_name(queue, 'q');
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH cte AS (
            SELECT m.msg_id FROM pgmq.%I m
            WHERE m.vt <= to_timestamp($1)
            ORDER BY m.msg_id
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        UPDATE pgmq.%I m
        SET last_read_at = to_timestamp($1), vt = to_timestamp($1 + $3), read_ct = m.read_ct + 1
        FROM cte
        WHERE m.msg_id = cte.msg_id
        RETURNING m.msg_id, m.read_ct, extract(epoch FROM m.enqueued_at)::float8,
                  extract(epoch FROM m.vt)::float8, m.message
    $q$, qtable, qtable) USING now, qty, vt;
END
$$;

CREATE FUNCTION tasker.q_set_vt(queue text, id bigint, vt double precision, now double precision)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    found_id bigint;
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        RETURN false;
    END IF;
    EXECUTE format('UPDATE pgmq.%I SET vt = to_timestamp($1) WHERE msg_id = $2 RETURNING msg_id',
                   pgmq.format_table_name(queue, 'q'))
    INTO found_id USING now + vt, id;
    RETURN found_id IS NOT NULL;
END
$$;

CREATE FUNCTION tasker.q_delete(queue text, id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    found_id bigint;
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        RETURN false;
    END IF;
    EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = $1 RETURNING msg_id',
                   pgmq.format_table_name(queue, 'q'))
    INTO found_id USING id;
    RETURN found_id IS NOT NULL;
END
$$;

CREATE FUNCTION tasker.q_archive(queue text, id bigint, reason text, now double precision)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    found_id bigint;
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        RETURN false;
    END IF;
    EXECUTE format($q$
        WITH archived AS (
            DELETE FROM pgmq.%I WHERE msg_id = $1
            RETURNING msg_id, vt, read_ct, enqueued_at, last_read_at, message, headers
        )
        INSERT INTO pgmq.%I (msg_id, vt, read_ct, enqueued_at, last_read_at, archived_at,
                             message, headers)
        SELECT msg_id, vt, read_ct, enqueued_at, last_read_at, to_timestamp($2), message, headers
        FROM archived
        RETURNING msg_id
    $q$, pgmq.format_table_name(queue, 'q'), pgmq.format_table_name(queue, 'a'))
    INTO found_id USING id, now;
    IF found_id IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO tasker.archive_reasons (queue_name, msg_id, reason) VALUES (queue, id, reason)
    ON CONFLICT (queue_name, msg_id) DO UPDATE SET reason = excluded.reason;
    RETURN true;
END
$$;

CREATE FUNCTION tasker.q_archived(queue text)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at double precision,
               archived_at double precision, message jsonb, reason text)
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format($q$
        SELECT a.msg_id, a.read_ct, extract(epoch FROM a.enqueued_at)::float8,
               extract(epoch FROM a.archived_at)::float8, a.message, r.reason
        FROM pgmq.%I a
        LEFT JOIN tasker.archive_reasons r ON r.queue_name = $1 AND r.msg_id = a.msg_id
        ORDER BY a.archived_at, r.seq, a.msg_id
    $q$, pgmq.format_table_name(queue, 'a')) USING queue;
END
$$;

CREATE FUNCTION tasker.q_statistics(queue text, now double precision)
RETURNS TABLE (depth bigint, visible bigint, archived bigint, sent_total bigint,
               next_visible_at double precision)
LANGUAGE plpgsql AS $$
DECLARE
    qtable text := pgmq.format_table_name(queue, 'q');
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        RETURN QUERY SELECT 0::bigint, 0::bigint, 0::bigint, 0::bigint, NULL::float8;
        RETURN;
    END IF;
    -- sent_total is the msg_id sequence, as pgmq.metrics reports total_messages.
    RETURN QUERY EXECUTE format($q$
        SELECT (SELECT count(*) FROM pgmq.%1$I),
               (SELECT count(*) FROM pgmq.%1$I WHERE vt <= to_timestamp($1)),
               (SELECT count(*) FROM pgmq.%2$I),
               (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM pgmq.%3$I),
               (SELECT extract(epoch FROM min(vt))::float8 FROM pgmq.%1$I)
    $q$, qtable, pgmq.format_table_name(queue, 'a'), qtable || '_msg_id_seq') USING now;
END
$$;
