-- The audit trail is written append-only; `most_recent` is derived when it is read.
--
-- Every transition record was written with `most_recent = true` after an UPDATE that set the
-- entity's previous record to false. That UPDATE was the largest single cost of the audit
-- trail (bench/README.md, "Where the rest goes"): a second row version of the previous
-- record, with new entries in its indexes (a change of `most_recent` is never a HOT update:
-- the unique partial index that kept one `most_recent` per entity names the column), and a
-- dead row for vacuum, for each of the ~7 records of a step.
--
-- The records now live in `tasker.task_transition_log` and `tasker.step_transition_log`,
-- which are only ever inserted into. `tasker.task_transitions` and `tasker.step_transitions`
-- are views over them with every column as before; a record's `most_recent` is true when no
-- record of its entity has a greater `sort_key`. `UNIQUE (entity, sort_key)` makes that
-- exactly one record per entity, by construction rather than by an index that checks it.
-- Each new record's `sort_key` is one more than its entity's greatest (read from the same
-- unique index); its writer holds the entity's row lock, as before.

DROP INDEX tasker.task_transitions_most_recent_idx;
DROP INDEX tasker.step_transitions_most_recent_idx;
ALTER TABLE tasker.task_transitions DROP COLUMN most_recent;
ALTER TABLE tasker.step_transitions DROP COLUMN most_recent;
ALTER TABLE tasker.task_transitions RENAME TO task_transition_log;
ALTER TABLE tasker.step_transitions RENAME TO step_transition_log;

CREATE VIEW tasker.task_transitions AS
SELECT r.id, r.task_uuid, r.from_state, r.to_state, r.event, r.at, r.processor_id,
       r.metadata, r.sort_key,
       NOT EXISTS (SELECT 1 FROM tasker.task_transition_log n
                   WHERE n.task_uuid = r.task_uuid AND n.sort_key > r.sort_key) AS most_recent
FROM tasker.task_transition_log r;

CREATE VIEW tasker.step_transitions AS
SELECT r.id, r.step_uuid, r.from_state, r.to_state, r.event, r.at, r.processor_id,
       r.metadata, r.sort_key,
       NOT EXISTS (SELECT 1 FROM tasker.step_transition_log n
                   WHERE n.step_uuid = r.step_uuid AND n.sort_key > r.sort_key) AS most_recent
FROM tasker.step_transition_log r;

CREATE OR REPLACE FUNCTION tasker.append_task_transition(
    p_task text, p_from text, p_to text, p_event text, p_at double precision,
    p_processor text, p_metadata jsonb
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasker.task_transition_log
        (task_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key)
    VALUES (p_task, p_from, p_to, p_event, p_at, p_processor, coalesce(p_metadata, '{}'),
            coalesce((SELECT max(l.sort_key) FROM tasker.task_transition_log l
                      WHERE l.task_uuid = p_task), 0) + 1);
END
$$;

CREATE OR REPLACE FUNCTION tasker.append_step_transition(
    p_step text, p_from text, p_to text, p_event text, p_at double precision,
    p_processor text, p_metadata jsonb
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasker.step_transition_log
        (step_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key)
    VALUES (p_step, p_from, p_to, p_event, p_at, p_processor, coalesce(p_metadata, '{}'),
            coalesce((SELECT max(l.sort_key) FROM tasker.step_transition_log l
                      WHERE l.step_uuid = p_step), 0) + 1);
END
$$;

-- As in 0011, appending after each entity's greatest `sort_key` instead of clearing its
-- `most_recent` record.
CREATE OR REPLACE FUNCTION tasker.write_plan_effects(p jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_task text := p->>'task_uuid';
    v_now double precision := (p->>'now')::float8;
    v_processor text := p->>'processor_id';
    v_steps jsonb := coalesce(p->'step_transitions', '[]');
    v_tasks jsonb := coalesce(p->'task_transitions', '[]');
    batch record;
BEGIN
    IF jsonb_array_length(v_steps) > 0 THEN
        INSERT INTO tasker.step_transition_log
            (step_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key)
        SELECT n.step_uuid, n.item->>'from_state', n.item->>'to_state', n.item->>'event',
               coalesce((n.item->>'at')::float8, v_now),
               coalesce(n.item->>'processor_id', v_processor),
               coalesce(n.item->'metadata', '{}'),
               coalesce((SELECT max(l.sort_key) FROM tasker.step_transition_log l
                         WHERE l.step_uuid = n.step_uuid), 0) + n.k
        FROM (
            SELECT i.value AS item, i.value->>'step_uuid' AS step_uuid, i.ordinality AS n,
                   row_number() OVER w AS k
            FROM jsonb_array_elements(v_steps) WITH ORDINALITY i
            WINDOW w AS (PARTITION BY i.value->>'step_uuid' ORDER BY i.ordinality)
        ) n
        ORDER BY n.n;
    END IF;
    IF jsonb_array_length(v_tasks) > 0 THEN
        INSERT INTO tasker.task_transition_log
            (task_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key)
        SELECT v_task, i.value->>'from_state', i.value->>'to_state', i.value->>'event',
               v_now, v_processor, coalesce(i.value->'metadata', '{}'),
               coalesce((SELECT max(l.sort_key) FROM tasker.task_transition_log l
                         WHERE l.task_uuid = v_task), 0) + i.ordinality
        FROM jsonb_array_elements(v_tasks) WITH ORDINALITY i
        ORDER BY i.ordinality;
    END IF;
    IF jsonb_array_length(coalesce(p->'messages', '[]')) > 0 THEN
        FOR batch IN
            SELECT m.value->>'queue' AS queue, (m.value->>'delay')::float8 AS delay,
                   jsonb_agg(m.value->'payload' ORDER BY m.ordinality) AS payloads
            FROM jsonb_array_elements(p->'messages') WITH ORDINALITY m
            GROUP BY 1, 2
            ORDER BY min(m.ordinality)
        LOOP
            PERFORM tasker.q_send_many(batch.queue, batch.payloads, v_now, batch.delay);
        END LOOP;
    END IF;
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
