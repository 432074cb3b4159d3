-- A worker's results written together, as a batch's plans are (migration 0022).
--
-- A `worker` process records each result through its `PlanWriter`, and under load a batch
-- carries several (`kind: result`), which `tasker.apply_many` recorded one by one with
-- `tasker.record_result`: ~330 us a result in separate processes (`track_functions`), one
-- of the two largest server items there with the worker's claims. `tasker.record_set(ps)`
-- takes each result of the batch that `tasker.record_result` would accept — its step
-- recorded once in the batch, by no plan of the batch's tasks (those keep their order in
-- the batch), not of an expired lease, its step in progress on the result's attempt (the
-- steps locked by task, then step, as everyone locks them) — and writes them with one
-- statement per table, in the order `tasker.record_result` wrote one: the results, the
-- steps' rows, their audit records, the deletes of their messages, and the notices to
-- the result queues (each visible when its own record's hold ends, `tasker.q_send_rows`).
-- It answers, by position, what `tasker.record_result` would have. The others go one by
-- one after them, as before.

CREATE FUNCTION tasker.record_set(ps jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_seqscan = off
AS $$
DECLARE
    candidates bigint[];
    taken bigint[];
    recorded jsonb;
    sent jsonb := '{}';
    batch record;
    answers jsonb;
BEGIN
    SELECT array_agg(c.o) INTO candidates
    FROM (SELECT x.ordinality AS o, x.value->>'kind' AS kind, x.value->'p' AS p,
                 count(*) FILTER (WHERE x.value->>'kind' <> 'result')
                     OVER (PARTITION BY x.value->'p'->>'task_uuid') AS plans,
                 count(*) FILTER (WHERE x.value->>'kind' = 'result')
                     OVER (PARTITION BY x.value->'p'->>'step_uuid') AS records
          FROM jsonb_array_elements(ps) WITH ORDINALITY x) c
    WHERE c.kind = 'result' AND c.plans = 0 AND c.records = 1
      AND NOT c.p ? 'expired_by';
    IF candidates IS NULL THEN
        RETURN '{}';
    END IF;
    PERFORM 1 FROM tasker.steps s
    WHERE s.step_uuid = ANY (ARRAY(SELECT x.value->'p'->>'step_uuid'
                                   FROM jsonb_array_elements(ps) WITH ORDINALITY x
                                   WHERE x.ordinality = ANY (candidates)))
    ORDER BY s.task_uuid, s.step_uuid
    FOR UPDATE;
    SELECT array_agg(x.ordinality) INTO taken
    FROM jsonb_array_elements(ps) WITH ORDINALITY x
    JOIN tasker.steps s ON s.step_uuid = x.value->'p'->>'step_uuid'
    WHERE x.ordinality = ANY (candidates)
      AND s.state = x.value->'p'->>'in_progress_state'
      AND s.attempts = (x.value->'p'->'result'->>'attempt')::integer;
    IF taken IS NULL THEN
        RETURN '{}';
    END IF;

    INSERT INTO tasker.step_results (step_uuid, attempt, accepted, data)
    SELECT x.value->'p'->>'step_uuid', (x.value->'p'->'result'->>'attempt')::integer, true,
           x.value->'p'->'result'
    FROM jsonb_array_elements(ps) WITH ORDINALITY x
    WHERE x.ordinality = ANY (taken)
    ORDER BY x.ordinality;
    -- Their audit records.
    INSERT INTO tasker.step_transition_log
        (step_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key)
    SELECT a.step_uuid, a.p->>'in_progress_state',
           CASE WHEN a.success THEN a.p->>'success_state' ELSE a.p->>'failure_state' END,
           CASE WHEN a.success THEN a.p->>'success_event' ELSE a.p->>'failure_event' END,
           (a.p->>'now')::float8, a.p->>'processor_id',
           jsonb_build_object('attempt', (a.p->'result'->>'attempt')::integer,
                              'worker_id', a.p->'result'->'worker_id')
           || CASE WHEN a.success THEN '{}'::jsonb
                   ELSE jsonb_build_object('error', a.p->'result'->'error') END,
           coalesce((SELECT max(l.sort_key) FROM tasker.step_transition_log l
                     WHERE l.step_uuid = a.step_uuid), 0) + 1
    FROM (SELECT x.ordinality AS o, x.value->'p' AS p, x.value->'p'->>'step_uuid' AS step_uuid,
                 (x.value->'p'->'result'->>'success')::boolean AS success
          FROM jsonb_array_elements(ps) WITH ORDINALITY x
          WHERE x.ordinality = ANY (taken)) a
    ORDER BY a.o;
    WITH updated AS (
        UPDATE tasker.steps s
        SET state = c.target,
            lease_expires_at = NULL,
            data = s.data || jsonb_build_object(
                'state', c.target, 'lease_expires_at', NULL, 'updated_at', tasker.jnum(c.now))
                || c.fields
        FROM (SELECT x.value->'p'->>'step_uuid' AS step_uuid,
                     (x.value->'p'->>'now')::float8 AS now,
                     CASE WHEN (x.value->'p'->'result'->>'success')::boolean
                          THEN x.value->'p'->>'success_state'
                          ELSE x.value->'p'->>'failure_state' END AS target,
                     CASE WHEN (x.value->'p'->'result'->>'success')::boolean
                          THEN jsonb_build_object('results', x.value->'p'->'result'->'result')
                          ELSE jsonb_build_object('last_error', x.value->'p'->'result'->'error')
                     END AS fields
              FROM jsonb_array_elements(ps) WITH ORDINALITY x
              WHERE x.ordinality = ANY (taken)
              OFFSET 0) c
        WHERE s.step_uuid = c.step_uuid
        RETURNING s.step_uuid, s.data
    )
    SELECT jsonb_object_agg(u.step_uuid, u.data) INTO recorded FROM updated u;
    -- Their messages, done with.
    PERFORM tasker.q_delete_prepared(d.queue, d.ids)
    FROM (SELECT x.value->'p'->>'queue' AS queue,
                 array_agg((x.value->'p'->>'msg_id')::bigint) AS ids
          FROM jsonb_array_elements(ps) WITH ORDINALITY x
          WHERE x.ordinality = ANY (taken) AND x.value->'p'->>'msg_id' IS NOT NULL
          GROUP BY 1) d;
    -- The notices (but for results recorded with their plan's, `silent`).
    FOR batch IN
        SELECT x.value->'p'->>'result_queue' AS queue,
               jsonb_agg(jsonb_build_object(
                   'message', x.value->'p'->'notice'
                              || jsonb_build_object('task_uuid', s.task_uuid,
                                                    'correlation_id',
                                                    t.data->'correlation_id'),
                   'now', x.value->'p'->'now',
                   'delay', coalesce((x.value->'p'->>'hold')::float8, 0))
                   ORDER BY x.ordinality) AS sent
        FROM jsonb_array_elements(ps) WITH ORDINALITY x
        JOIN tasker.steps s ON s.step_uuid = x.value->'p'->>'step_uuid'
        LEFT JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
        WHERE x.ordinality = ANY (taken) AND NOT x.value->'p' ? 'silent'
        GROUP BY 1
        ORDER BY min(x.ordinality)
    LOOP
        SELECT sent || jsonb_object_agg(q.message->>'step_uuid', to_jsonb(q.msg_id)) INTO sent
        FROM tasker.q_send_rows(batch.queue, batch.sent) q;
        PERFORM tasker.notify('tasker_queues', batch.queue);
    END LOOP;
    -- What each would have answered alone.
    SELECT jsonb_object_agg(x.ordinality::text, CASE
        WHEN x.value->'p' ? 'silent' THEN jsonb_build_object(
            'accepted', true, 'step', recorded->(x.value->'p'->>'step_uuid'))
        WHEN NOT x.value->'p' ? 'hold' THEN '{"accepted": true}'::jsonb
        ELSE jsonb_build_object(
            'accepted', true,
            'msg_id', sent->(x.value->'p'->>'step_uuid'),
            'enqueued_at', tasker.jnum((x.value->'p'->>'now')::float8),
            'visible_at', tasker.jnum((x.value->'p'->>'now')::float8
                                      + (x.value->'p'->>'hold')::float8),
            'message', x.value->'p'->'notice'
                       || jsonb_build_object('task_uuid', s.task_uuid,
                                             'correlation_id', t.data->'correlation_id'),
            'step', recorded->(x.value->'p'->>'step_uuid'))
        END)
    INTO answers
    FROM jsonb_array_elements(ps) WITH ORDINALITY x
    JOIN tasker.steps s ON s.step_uuid = x.value->'p'->>'step_uuid'
    LEFT JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
    WHERE x.ordinality = ANY (taken);
    RETURN answers;
END
$$;

-- The batch: `tasker.apply_set`'s plans and `tasker.record_set`'s results, then the others
-- one by one in the batch's order.
CREATE OR REPLACE FUNCTION tasker.apply_many(ps jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    item record;
    unknown jsonb;
    applied jsonb;
    answers jsonb := '[]'::jsonb;
BEGIN
    SELECT i.value->'kind' INTO unknown FROM jsonb_array_elements(ps) i
    WHERE NOT i.value->>'kind' = ANY (ARRAY['create', 'claim', 'record', 'result'])
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'tasker.apply_many: unknown kind %', unknown;
    END IF;
    applied := tasker.apply_set(ps) || tasker.record_set(ps);
    FOR item IN SELECT i.value, i.ordinality FROM jsonb_array_elements(ps) WITH ORDINALITY i
                ORDER BY i.ordinality
    LOOP
        answers := answers || jsonb_build_array(coalesce(applied->(item.ordinality::text),
            CASE item.value->>'kind'
                WHEN 'create' THEN tasker.create_task_claiming(item.value->'p')
                WHEN 'claim' THEN tasker.apply_plan_claiming(item.value->'p')
                WHEN 'record' THEN tasker.apply_plan_recording(item.value->'p')
                WHEN 'result' THEN tasker.record_result(item.value->'p')
            END));
    END LOOP;
    RETURN answers;
END
$$;
