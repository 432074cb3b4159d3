-- Notifications say which process sent them.
--
-- Every pooled connection of a `Database` starts with the setting `tasker.origin` (a random
-- id of that `Database`). The payload of a `tasker_queues` / `tasker_tasks` notification
-- becomes `<queue or task uuid>|<origin>`, so a listener can skip its own process's
-- notifications: that process already woke its waiters when its statement committed, and
-- the late echo would only wake them again for nothing (and wake a waiter that started
-- after the change as if something new had happened). A connection without the setting
-- (psql, another tool) notifies with the bare key, which every listener takes.

CREATE FUNCTION tasker.notify(channel text, key text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify(channel, key || coalesce('|' || nullif(current_setting('tasker.origin', true), ''), ''));
$$;

CREATE OR REPLACE FUNCTION tasker.q_send(queue text, message jsonb, now double precision, delay double precision)
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
    PERFORM tasker.notify('tasker_queues', queue);
    RETURN id;
END
$$;

CREATE OR REPLACE FUNCTION tasker.write_plan_effects(p jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_task text := p->>'task_uuid';
    v_now double precision := (p->>'now')::float8;
    v_processor text := p->>'processor_id';
    item jsonb;
BEGIN
    FOR item IN SELECT value FROM jsonb_array_elements(p->'step_transitions') LOOP
        PERFORM tasker.append_step_transition(
            item->>'step_uuid', item->>'from_state', item->>'to_state', item->>'event',
            v_now, v_processor, item->'metadata');
    END LOOP;
    FOR item IN SELECT value FROM jsonb_array_elements(p->'task_transitions') LOOP
        PERFORM tasker.append_task_transition(
            v_task, item->>'from_state', item->>'to_state', item->>'event',
            v_now, v_processor, item->'metadata');
    END LOOP;
    FOR item IN SELECT value FROM jsonb_array_elements(p->'messages') LOOP
        PERFORM tasker.q_send(item->>'queue', item->'payload', v_now, (item->>'delay')::float8);
    END LOOP;
    IF jsonb_typeof(p->'dead_letter') = 'object' THEN
        INSERT INTO tasker.dead_letters (task_uuid, reason, details, snapshot, created_at)
        VALUES (v_task, p->'dead_letter'->>'reason', p->'dead_letter'->'details',
                p->'dead_letter'->'snapshot', v_now);
    END IF;
    IF jsonb_array_length(p->'task_transitions') > 0 THEN
        PERFORM tasker.notify('tasker_tasks', v_task);
    END IF;
END
$$;
