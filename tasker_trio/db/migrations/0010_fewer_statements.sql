-- Fewer and cheaper statements per plan (same rows, same order, same audit trail).
--
-- `tasker.write_plan_effects` appended each transition with a call of its own (a function
-- call, an UPDATE of the previous `most_recent` row and an INSERT: three statements per
-- transition, and a plan has several per step). It now appends a plan's step transitions
-- with two statements and its task transitions with two: clear `most_recent` on the rows
-- that had it, then insert the new rows with consecutive `sort_key`s, the last of each
-- entity being the `most_recent` one.
--
-- `tasker.notify` becomes PL/pgSQL: as an SQL function with a WHERE clause it could not be
-- inlined, so each call planned its body anew (most calls only find the setting
-- `tasker.notify = deferred` and do nothing). `tasker.jnum` becomes STABLE, so that its
-- body (float8 -> text -> numeric, where text output reads `extra_float_digits`) is
-- inlined into the statements that call it instead of being planned on every call.

ALTER FUNCTION tasker.jnum(double precision) STABLE;

CREATE OR REPLACE FUNCTION tasker.notify(channel text, key text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('tasker.notify', true), '') <> 'deferred' THEN
        PERFORM pg_notify(channel,
                          key || coalesce('|' || nullif(current_setting('tasker.origin', true), ''), ''));
    END IF;
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
    item jsonb;
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
    FOR item IN SELECT value FROM jsonb_array_elements(p->'messages') LOOP
        PERFORM tasker.q_send(item->>'queue', item->'payload', v_now, (item->>'delay')::float8);
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
