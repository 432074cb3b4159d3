-- Queue writes in batches: one statement per queue instead of one per message.
--
-- A plan that enqueues a fan-out's 100 steps sent 100 messages one statement at a time
-- (each one dynamic SQL, planned anew), and a plan that processes a batch of results
-- deleted each result message likewise. `tasker.q_send_many` sends a queue's messages with
-- one INSERT (in the order given, so `msg_id`s follow it) and `tasker.q_delete_many`
-- deletes a queue's messages with one DELETE; `tasker.write_plan_effects` and
-- `tasker.apply_plan` use them, one call per queue (per queue and delay for sends).

CREATE FUNCTION tasker.q_send_many(queue text, messages jsonb, now double precision, delay double precision)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tasker.q_ensure(queue);
    EXECUTE format(
        'INSERT INTO pgmq.%I (enqueued_at, vt, message)'
        ' SELECT to_timestamp($1), to_timestamp($2), m.value'
        ' FROM jsonb_array_elements($3) WITH ORDINALITY m ORDER BY m.ordinality',
        pgmq.format_table_name(queue, 'q'))
    USING now, now + greatest(coalesce(delay, 0), 0), messages;
    PERFORM tasker.notify('tasker_queues', queue);
END
$$;

CREATE FUNCTION tasker.q_delete_many(queue text, ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        RETURN;
    END IF;
    EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = ANY ($1)', pgmq.format_table_name(queue, 'q'))
    USING ids;
END
$$;

CREATE OR REPLACE FUNCTION tasker.write_plan_effects(p jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_task text := p->>'task_uuid';
    v_now double precision := (p->>'now')::float8;
    v_processor text := p->>'processor_id';
    v_steps jsonb := coalesce(p->'step_transitions', '[]');
    v_tasks jsonb := coalesce(p->'task_transitions', '[]');
    previous jsonb;
    last_key integer;
    batch record;
BEGIN
    IF jsonb_array_length(v_steps) > 0 THEN
        WITH cleared AS (
            UPDATE tasker.step_transitions t SET most_recent = false
            WHERE t.most_recent
              AND t.step_uuid = ANY (ARRAY(SELECT DISTINCT i.value->>'step_uuid'
                                           FROM jsonb_array_elements(v_steps) i))
            RETURNING t.step_uuid, t.sort_key
        )
        SELECT coalesce(jsonb_object_agg(c.step_uuid, c.sort_key), '{}') INTO previous
        FROM cleared c;
        INSERT INTO tasker.step_transitions
            (step_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key,
             most_recent)
        SELECT n.step_uuid, n.item->>'from_state', n.item->>'to_state', n.item->>'event',
               v_now, v_processor, coalesce(n.item->'metadata', '{}'),
               coalesce((previous->>n.step_uuid)::integer, 0) + n.k, n.k = n.total
        FROM (
            SELECT i.value AS item, i.value->>'step_uuid' AS step_uuid, i.ordinality AS n,
                   row_number() OVER w AS k, count(*) OVER (PARTITION BY i.value->>'step_uuid') AS total
            FROM jsonb_array_elements(v_steps) WITH ORDINALITY i
            WINDOW w AS (PARTITION BY i.value->>'step_uuid' ORDER BY i.ordinality)
        ) n
        ORDER BY n.n;
    END IF;
    IF jsonb_array_length(v_tasks) > 0 THEN
        UPDATE tasker.task_transitions SET most_recent = false
        WHERE task_uuid = v_task AND most_recent
        RETURNING sort_key INTO last_key;
        INSERT INTO tasker.task_transitions
            (task_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key,
             most_recent)
        SELECT v_task, i.value->>'from_state', i.value->>'to_state', i.value->>'event',
               v_now, v_processor, coalesce(i.value->'metadata', '{}'),
               coalesce(last_key, 0) + i.ordinality, i.ordinality = jsonb_array_length(v_tasks)
        FROM jsonb_array_elements(v_tasks) WITH ORDINALITY i
        ORDER BY i.ordinality;
    END IF;
    FOR batch IN
        SELECT m.value->>'queue' AS queue, (m.value->>'delay')::float8 AS delay,
               jsonb_agg(m.value->'payload' ORDER BY m.ordinality) AS payloads
        FROM jsonb_array_elements(coalesce(p->'messages', '[]')) WITH ORDINALITY m
        GROUP BY 1, 2
        ORDER BY min(m.ordinality)
    LOOP
        PERFORM tasker.q_send_many(batch.queue, batch.payloads, v_now, batch.delay);
    END LOOP;
    IF jsonb_typeof(p->'dead_letter') = 'object' THEN
        INSERT INTO tasker.dead_letters (task_uuid, reason, details, snapshot, created_at)
        VALUES (v_task, p->'dead_letter'->>'reason', p->'dead_letter'->'details',
                p->'dead_letter'->'snapshot', v_now);
    END IF;
    IF jsonb_array_length(v_tasks) > 0 THEN
        PERFORM tasker.notify('tasker_tasks', v_task);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION tasker.apply_plan(p jsonb) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_task text := p->>'task_uuid';
    current_version bigint;
BEGIN
    SELECT t.version INTO current_version FROM tasker.tasks t WHERE t.task_uuid = v_task
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF current_version <> (p->>'version')::bigint THEN
        RETURN false;
    END IF;
    -- The steps it rewrites, locked in step order (as `tasker.claim_from_queue` takes them),
    -- must be as the plan saw them: a worker may have moved them since.
    PERFORM 1 FROM tasker.steps s
    WHERE s.task_uuid = v_task
      AND s.step_uuid = ANY (ARRAY(SELECT e.value->>'step_uuid'
                                   FROM jsonb_array_elements(coalesce(p->'expect', '[]')) e))
    ORDER BY s.step_uuid
    FOR UPDATE;
    IF EXISTS (
        SELECT 1 FROM jsonb_array_elements(coalesce(p->'expect', '[]')) e
        JOIN tasker.steps s ON s.step_uuid = e.value->>'step_uuid'
        WHERE s.task_uuid = v_task
          AND (s.state IS DISTINCT FROM e.value->>'state'
               OR s.attempts IS DISTINCT FROM (e.value->>'attempts')::integer)
    ) THEN
        RETURN false;
    END IF;
    UPDATE tasker.steps s
    SET state = i.value->>'state',
        attempts = (i.value->>'attempts')::integer,
        next_retry_at = (i.value->>'next_retry_at')::float8,
        lease_expires_at = (i.value->>'lease_expires_at')::float8,
        data = i.value
    FROM jsonb_array_elements(p->'steps') i
    WHERE s.task_uuid = v_task AND s.step_uuid = i.value->>'step_uuid';
    UPDATE tasker.tasks t
    SET version = t.version + 1,
        state = coalesce(p->'task'->>'state', t.state),
        updated_at = coalesce((p->'task'->>'updated_at')::float8, t.updated_at),
        -- A plan that changes no task field sends no task (absent, or JSON null: not SQL
        -- NULL, which coalesce would need; tasks.data once became `null` that way).
        data = coalesce(nullif(p->'task', 'null'::jsonb), t.data)
    WHERE t.task_uuid = v_task;
    PERFORM tasker.write_plan_effects(p);
    PERFORM tasker.q_delete_many(c.queue, c.ids)
    FROM (SELECT e.value->>'queue' AS queue, array_agg((e.value->>'msg_id')::bigint) AS ids
          FROM jsonb_array_elements(coalesce(p->'consumed', '[]'::jsonb)) e
          GROUP BY 1) c;
    RETURN true;
END
$$;
