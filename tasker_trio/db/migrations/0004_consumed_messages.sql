-- Fewer round trips on the hot path.
--
-- `tasker.apply_plan` also deletes the queue messages the plan consumed (`p->'consumed'`:
-- `[{"queue": ..., "msg_id": ...}]`, e.g. the step result notices it processed), in the
-- same transaction as the plan: a plan that commits takes its messages with it, a plan
-- that does not (version conflict, unknown task, an error) leaves them for redelivery.
--
-- `tasker.q_next_visible` is what an idle consumer asks before it waits: when the queue's
-- next message turns visible (NULL when the queue is empty). One probe of PGMQ's `vt`
-- index, instead of `tasker.q_statistics`' counts over the whole queue and its archive.

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
    UPDATE tasker.steps s
    SET state = i.value->>'state',
        attempts = (i.value->>'attempts')::integer,
        next_retry_at = (i.value->>'next_retry_at')::float8,
        lease_expires_at = (i.value->>'lease_expires_at')::float8,
        data = i.value
    FROM jsonb_array_elements(p->'steps') i
    WHERE s.step_uuid = i.value->>'step_uuid';
    UPDATE tasker.tasks t
    SET version = t.version + 1,
        state = coalesce(p->'task'->>'state', t.state),
        updated_at = coalesce((p->'task'->>'updated_at')::float8, t.updated_at),
        data = coalesce(p->'task', t.data)
    WHERE t.task_uuid = v_task;
    PERFORM tasker.write_plan_effects(p);
    PERFORM tasker.q_delete(c.value->>'queue', (c.value->>'msg_id')::bigint)
    FROM jsonb_array_elements(coalesce(p->'consumed', '[]'::jsonb)) c;
    RETURN true;
END
$$;

CREATE FUNCTION tasker.q_next_visible(queue text) RETURNS double precision
LANGUAGE plpgsql STABLE AS $$
DECLARE
    next_at double precision;
BEGIN
    IF NOT tasker.q_exists(queue) THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT extract(epoch FROM min(vt))::float8 FROM pgmq.%I',
                   pgmq.format_table_name(queue, 'q'))
    INTO next_at;
    RETURN next_at;
END
$$;
