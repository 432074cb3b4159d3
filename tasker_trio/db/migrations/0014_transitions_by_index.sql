-- `tasker.write_plan_effects` (migration 0011) cleared the previous `most_recent` step
-- transitions with one UPDATE over `step_uuid = ANY (...)`. PL/pgSQL keeps that statement's
-- plan, made while the table was small, and PostgreSQL planned it as a scan of the whole
-- `step_transitions` table: a plan got slower with every step the database held. Each
-- step's previous transition is now cleared by its own statement on the step's uuid, which
-- the partial unique index answers whatever the table's size; the new rows are still
-- inserted with one statement.

CREATE OR REPLACE FUNCTION tasker.write_plan_effects(p jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_task text := p->>'task_uuid';
    v_now double precision := (p->>'now')::float8;
    v_processor text := p->>'processor_id';
    v_steps jsonb := coalesce(p->'step_transitions', '[]');
    v_tasks jsonb := coalesce(p->'task_transitions', '[]');
    previous jsonb := '{}'::jsonb;
    v_step text;
    last_key integer;
    batch record;
BEGIN
    IF jsonb_array_length(v_steps) > 0 THEN
        FOR v_step IN SELECT DISTINCT i.value->>'step_uuid' FROM jsonb_array_elements(v_steps) i
        LOOP
            UPDATE tasker.step_transitions t SET most_recent = false
            WHERE t.step_uuid = v_step AND t.most_recent
            RETURNING t.sort_key INTO last_key;
            IF FOUND THEN
                previous := previous || jsonb_build_object(v_step, last_key);
            END IF;
        END LOOP;
        INSERT INTO tasker.step_transitions
            (step_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key,
             most_recent)
        SELECT n.step_uuid, n.item->>'from_state', n.item->>'to_state', n.item->>'event',
               v_now, v_processor, coalesce(n.item->'metadata', '{}'),
               coalesce((previous->>n.step_uuid)::integer, 0) + n.k, n.k = n.total
        FROM (
            SELECT i.value AS item, i.value->>'step_uuid' AS step_uuid, i.ordinality AS n,
                   row_number() OVER w AS k,
                   count(*) OVER (PARTITION BY i.value->>'step_uuid') AS total
            FROM jsonb_array_elements(v_steps) WITH ORDINALITY i
            WINDOW w AS (PARTITION BY i.value->>'step_uuid' ORDER BY i.ordinality)
        ) n
        ORDER BY n.n;
    END IF;
    IF jsonb_array_length(v_tasks) > 0 THEN
        last_key := NULL;
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
