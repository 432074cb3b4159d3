-- A batch's steps locked task by task, as a worker's claims lock them.
--
-- `tasker.apply_set` (migration 0022) locked all the steps of a batch's plans in step
-- order. A worker's read claims its steps in one transaction task by task, in step order
-- within each task (`tasker.claim_from_queue`), as the plans applied one by one had locked
-- them; a batch holding a later task's step while waiting for an earlier task's step that a
-- worker's claim holds, the worker then waiting for the batch's, would deadlock until
-- PostgreSQL's deadlock detection broke it (a second's wait, one of the two rolled back
-- and retried). The batch now locks its steps in the same order as everyone else: by task,
-- then by step. The function is otherwise that of migration 0022.

CREATE OR REPLACE FUNCTION tasker.apply_set(ps jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_seqscan = off
AS $$
DECLARE
    candidates bigint[];
    taken bigint[];
    sent jsonb := '{}';
    batch record;
    answers jsonb;
BEGIN
    PERFORM 1 FROM tasker.tasks t
    WHERE t.task_uuid = ANY (ARRAY(SELECT x.value->'p'->>'task_uuid'
                                   FROM jsonb_array_elements(ps) x
                                   WHERE x.value->>'kind' IN ('claim', 'record')))
    ORDER BY t.task_uuid
    FOR UPDATE;
    SELECT array_agg(c.o) INTO candidates
    FROM (SELECT x.ordinality AS o, x.value->>'kind' AS kind, x.value->'p' AS p,
                 count(*) OVER (PARTITION BY x.value->'p'->>'task_uuid') AS plans
          FROM jsonb_array_elements(ps) WITH ORDINALITY x) c
    WHERE c.kind IN ('claim', 'record') AND c.plans = 1
      AND NOT EXISTS (
          SELECT 1 FROM jsonb_array_elements(coalesce(c.p->'records', '[]')) r
          WHERE r.value ? 'expired_by'
             OR NOT EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(c.p->'steps', '[]')) i
                            WHERE i.value->>'step_uuid' = r.value->>'step_uuid'))
      AND NOT EXISTS (
          SELECT 1 FROM jsonb_array_elements(coalesce(c.p->'local'->'messages', '[]')) m
          WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(c.p->'steps', '[]')) i
                            WHERE i.value->>'step_uuid' = m.value->'payload'->>'step_uuid'));
    IF candidates IS NULL THEN
        RETURN '{}';
    END IF;
    -- The steps they rewrite or record, locked task by task, in step order within each.
    PERFORM 1 FROM tasker.steps s
    WHERE s.step_uuid = ANY (ARRAY(
        SELECT e.value->>'step_uuid'
        FROM jsonb_array_elements(ps) WITH ORDINALITY x,
             jsonb_array_elements(coalesce(x.value->'p'->'expect', '[]')) e
        WHERE x.ordinality = ANY (candidates)
        UNION
        SELECT r.value->>'step_uuid'
        FROM jsonb_array_elements(ps) WITH ORDINALITY x,
             jsonb_array_elements(coalesce(x.value->'p'->'records', '[]')) r
        WHERE x.ordinality = ANY (candidates)))
    ORDER BY s.task_uuid, s.step_uuid
    FOR UPDATE;
    SELECT array_agg(x.ordinality) INTO taken
    FROM jsonb_array_elements(ps) WITH ORDINALITY x
    JOIN tasker.tasks t ON t.task_uuid = x.value->'p'->>'task_uuid'
    WHERE x.ordinality = ANY (candidates)
      AND t.version = (x.value->'p'->>'version')::bigint
      AND NOT EXISTS (
          SELECT 1 FROM jsonb_array_elements(coalesce(x.value->'p'->'records', '[]')) r
          LEFT JOIN tasker.steps s
            ON s.task_uuid = t.task_uuid AND s.step_uuid = r.value->>'step_uuid'
          WHERE s.step_uuid IS NULL
             OR s.state <> r.value->>'in_progress_state'
             OR s.attempts <> (r.value->'result'->>'attempt')::integer)
      AND NOT EXISTS (
          SELECT 1 FROM jsonb_array_elements(coalesce(x.value->'p'->'expect', '[]')) e
          JOIN tasker.steps s
            ON s.task_uuid = t.task_uuid AND s.step_uuid = e.value->>'step_uuid'
          LEFT JOIN jsonb_array_elements(coalesce(x.value->'p'->'records', '[]')) r
            ON r.value->>'step_uuid' = s.step_uuid
          WHERE coalesce(CASE WHEN (r.value->'result'->>'success')::boolean
                              THEN r.value->>'success_state'
                              ELSE r.value->>'failure_state' END, s.state)
                    IS DISTINCT FROM e.value->>'state'
             OR s.attempts IS DISTINCT FROM (e.value->>'attempts')::integer);
    IF taken IS NULL THEN
        RETURN '{}';
    END IF;

    INSERT INTO tasker.step_results (step_uuid, attempt, accepted, data)
    SELECT r.value->>'step_uuid', (r.value->'result'->>'attempt')::integer, true,
           r.value->'result'
    FROM jsonb_array_elements(ps) WITH ORDINALITY x,
         jsonb_array_elements(coalesce(x.value->'p'->'records', '[]')) WITH ORDINALITY r
    WHERE x.ordinality = ANY (taken)
    ORDER BY x.ordinality, r.ordinality;
    -- The claimed steps' messages, hidden for their plan's lease while their worker runs them.
    FOR batch IN
        SELECT m.value->>'queue' AS queue,
               jsonb_agg(jsonb_build_object(
                   'message', m.value->'payload',
                   'now', x.value->'p'->'now', 'delay', x.value->'p'->'local'->'lease')
                   ORDER BY x.ordinality, m.ordinality) AS sent
        FROM jsonb_array_elements(ps) WITH ORDINALITY x,
             jsonb_array_elements(coalesce(x.value->'p'->'local'->'messages', '[]'))
                 WITH ORDINALITY m
        WHERE x.ordinality = ANY (taken)
        GROUP BY 1
        ORDER BY min(x.ordinality * 100000 + m.ordinality)
    LOOP
        SELECT sent || jsonb_object_agg(q.message->>'step_uuid', q.msg_id) INTO sent
        FROM tasker.q_send_rows(batch.queue, batch.sent) q;
        PERFORM tasker.notify('tasker_queues', batch.queue);
    END LOOP;
    -- Each step's final row: its plan's, with the claim on top for a step claimed here (if
    -- the plan left it claimable).
    UPDATE tasker.steps s
    SET state = c.d->>'state',
        attempts = (c.d->>'attempts')::integer,
        next_retry_at = (c.d->>'next_retry_at')::float8,
        lease_expires_at = (c.d->>'lease_expires_at')::float8,
        data = c.d
    FROM (
        SELECT x.value->'p'->>'task_uuid' AS task_uuid,
               CASE WHEN sent ? (i.value->>'step_uuid')
                         AND i.value->>'state' = x.value->'p'->'local'->'claim'->>'claimable_state'
                    THEN i.value || jsonb_build_object(
                        'state', x.value->'p'->'local'->'claim'->>'target_state',
                        'attempts', (i.value->>'attempts')::integer + 1,
                        'lease_expires_at', tasker.jnum((x.value->'p'->>'now')::float8
                                                        + (x.value->'p'->'local'->>'lease')::float8),
                        'updated_at', tasker.jnum((x.value->'p'->>'now')::float8))
                    ELSE i.value END AS d
        FROM jsonb_array_elements(ps) WITH ORDINALITY x,
             jsonb_array_elements(coalesce(x.value->'p'->'steps', '[]')) i
        WHERE x.ordinality = ANY (taken)
        OFFSET 0
    ) c
    WHERE s.task_uuid = c.task_uuid AND s.step_uuid = c.d->>'step_uuid';
    UPDATE tasker.tasks t
    SET version = t.version + 1,
        state = coalesce(x.value->'p'->'task'->>'state', t.state),
        updated_at = coalesce((x.value->'p'->'task'->>'updated_at')::float8, t.updated_at),
        data = coalesce(nullif(x.value->'p'->'task', 'null'::jsonb), t.data)
    FROM jsonb_array_elements(ps) WITH ORDINALITY x
    WHERE x.ordinality = ANY (taken) AND t.task_uuid = x.value->'p'->>'task_uuid';
    -- The audit trail: each plan's records', then its plan's, then its claims'.
    INSERT INTO tasker.step_transition_log
        (step_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key)
    SELECT a.step_uuid, a.from_state, a.to_state, a.event, a.at, a.processor_id, a.metadata,
           coalesce((SELECT max(l.sort_key) FROM tasker.step_transition_log l
                     WHERE l.step_uuid = a.step_uuid), 0)
           + row_number() OVER (PARTITION BY a.step_uuid ORDER BY a.o, a.g, a.n)
    FROM (
        SELECT x.ordinality AS o, 1 AS g, r.ordinality AS n,
               r.value->>'step_uuid' AS step_uuid,
               r.value->>'in_progress_state' AS from_state,
               CASE WHEN (r.value->'result'->>'success')::boolean
                    THEN r.value->>'success_state' ELSE r.value->>'failure_state' END AS to_state,
               CASE WHEN (r.value->'result'->>'success')::boolean
                    THEN r.value->>'success_event' ELSE r.value->>'failure_event' END AS event,
               coalesce((r.value->>'now')::float8, (x.value->'p'->>'now')::float8) AS at,
               coalesce(r.value->>'processor_id', x.value->'p'->>'processor_id') AS processor_id,
               jsonb_build_object('attempt', (r.value->'result'->>'attempt')::integer,
                                  'worker_id', r.value->'result'->'worker_id')
               || CASE WHEN (r.value->'result'->>'success')::boolean THEN '{}'::jsonb
                       ELSE jsonb_build_object('error', r.value->'result'->'error') END
                   AS metadata
        FROM jsonb_array_elements(ps) WITH ORDINALITY x,
             jsonb_array_elements(coalesce(x.value->'p'->'records', '[]')) WITH ORDINALITY r
        WHERE x.ordinality = ANY (taken)
        UNION ALL
        SELECT x.ordinality, 2, i.ordinality, i.value->>'step_uuid', i.value->>'from_state',
               i.value->>'to_state', i.value->>'event',
               coalesce((i.value->>'at')::float8, (x.value->'p'->>'now')::float8),
               coalesce(i.value->>'processor_id', x.value->'p'->>'processor_id'),
               coalesce(i.value->'metadata', '{}')
        FROM jsonb_array_elements(ps) WITH ORDINALITY x,
             jsonb_array_elements(coalesce(x.value->'p'->'step_transitions', '[]'))
                 WITH ORDINALITY i
        WHERE x.ordinality = ANY (taken)
        UNION ALL
        SELECT x.ordinality, 3, m.ordinality, i.value->>'step_uuid',
               x.value->'p'->'local'->'claim'->>'claimable_state',
               x.value->'p'->'local'->'claim'->>'target_state',
               x.value->'p'->'local'->'claim'->>'event',
               (x.value->'p'->>'now')::float8,
               coalesce(x.value->'p'->'local'->'claim'->>'processor_id',
                        x.value->'p'->>'processor_id'),
               jsonb_build_object('attempt', (i.value->>'attempts')::integer + 1,
                                  'worker_id', x.value->'p'->'local'->'claim'->'worker_id',
                                  'reclaim', false)
        FROM jsonb_array_elements(ps) WITH ORDINALITY x,
             jsonb_array_elements(coalesce(x.value->'p'->'local'->'messages', '[]'))
                 WITH ORDINALITY m,
             jsonb_array_elements(coalesce(x.value->'p'->'steps', '[]')) i
        WHERE x.ordinality = ANY (taken)
          AND i.value->>'step_uuid' = m.value->'payload'->>'step_uuid'
          AND i.value->>'state' = x.value->'p'->'local'->'claim'->>'claimable_state'
    ) a
    ORDER BY a.o, a.g, a.n;
    INSERT INTO tasker.task_transition_log
        (task_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key)
    SELECT a.task_uuid, a.item->>'from_state', a.item->>'to_state', a.item->>'event', a.at,
           a.processor_id, coalesce(a.item->'metadata', '{}'),
           coalesce((SELECT max(l.sort_key) FROM tasker.task_transition_log l
                     WHERE l.task_uuid = a.task_uuid), 0) + a.n
    FROM (SELECT x.ordinality AS o, x.value->'p'->>'task_uuid' AS task_uuid,
                 (x.value->'p'->>'now')::float8 AS at,
                 x.value->'p'->>'processor_id' AS processor_id, i.value AS item, i.ordinality AS n
          FROM jsonb_array_elements(ps) WITH ORDINALITY x,
               jsonb_array_elements(coalesce(x.value->'p'->'task_transitions', '[]'))
                   WITH ORDINALITY i
          WHERE x.ordinality = ANY (taken)) a
    ORDER BY a.o, a.n;
    FOR batch IN
        SELECT m.value->>'queue' AS queue, (m.value->>'delay')::float8 AS delay,
               (x.value->'p'->>'now')::float8 AS now,
               jsonb_agg(m.value->'payload' ORDER BY m.ordinality) AS payloads
        FROM jsonb_array_elements(ps) WITH ORDINALITY x,
             jsonb_array_elements(coalesce(x.value->'p'->'messages', '[]')) WITH ORDINALITY m
        WHERE x.ordinality = ANY (taken)
        GROUP BY x.ordinality, 1, 2, 3
        ORDER BY x.ordinality, min(m.ordinality)
    LOOP
        PERFORM tasker.q_send_many(batch.queue, batch.payloads, batch.now, batch.delay);
    END LOOP;
    INSERT INTO tasker.dead_letters (task_uuid, reason, details, snapshot, created_at)
    SELECT x.value->'p'->>'task_uuid', x.value->'p'->'dead_letter'->>'reason',
           x.value->'p'->'dead_letter'->'details', x.value->'p'->'dead_letter'->'snapshot',
           (x.value->'p'->>'now')::float8
    FROM jsonb_array_elements(ps) WITH ORDINALITY x
    WHERE x.ordinality = ANY (taken) AND jsonb_typeof(x.value->'p'->'dead_letter') = 'object'
    ORDER BY x.ordinality;
    PERFORM tasker.notify('tasker_tasks', x.value->'p'->>'task_uuid')
    FROM jsonb_array_elements(ps) WITH ORDINALITY x
    WHERE x.ordinality = ANY (taken)
      AND jsonb_array_length(coalesce(x.value->'p'->'task_transitions', '[]')) > 0;
    -- The consumed messages, and the recorded steps' own messages (done with).
    PERFORM tasker.q_delete_prepared(d.queue, d.ids)
    FROM (SELECT e.queue, array_agg(e.msg_id) AS ids
          FROM (SELECT c.value->>'queue' AS queue, (c.value->>'msg_id')::bigint AS msg_id
                FROM jsonb_array_elements(ps) WITH ORDINALITY x,
                     jsonb_array_elements(coalesce(x.value->'p'->'consumed', '[]')) c
                WHERE x.ordinality = ANY (taken)
                UNION ALL
                SELECT r.value->>'queue', (r.value->>'msg_id')::bigint
                FROM jsonb_array_elements(ps) WITH ORDINALITY x,
                     jsonb_array_elements(coalesce(x.value->'p'->'records', '[]')) r
                WHERE x.ordinality = ANY (taken) AND r.value->>'msg_id' IS NOT NULL) e
          GROUP BY 1) d;
    -- What each would have answered alone.
    SELECT jsonb_object_agg(x.ordinality::text, jsonb_build_object(
               'applied', true,
               'claims', coalesce((
                   SELECT jsonb_agg(jsonb_build_object(
                              'msg_id', (sent->>(m.value->'payload'->>'step_uuid'))::bigint,
                              'read_ct', 1,
                              'enqueued_at', tasker.jnum((x.value->'p'->>'now')::float8),
                              'visible_at', tasker.jnum(
                                  (x.value->'p'->>'now')::float8
                                  + (x.value->'p'->'local'->>'lease')::float8),
                              'message', m.value->'payload',
                              'attempts',
                              CASE WHEN i.value->>'state'
                                        = x.value->'p'->'local'->'claim'->>'claimable_state'
                                   THEN (i.value->>'attempts')::integer + 1 END)
                              ORDER BY m.ordinality)
                   FROM jsonb_array_elements(coalesce(x.value->'p'->'local'->'messages', '[]'))
                            WITH ORDINALITY m
                   JOIN jsonb_array_elements(coalesce(x.value->'p'->'steps', '[]')) i
                     ON i.value->>'step_uuid' = m.value->'payload'->>'step_uuid'), '[]'))
           || CASE WHEN x.value->>'kind' = 'claim' THEN '{}'::jsonb
                   ELSE jsonb_build_object('records', (
                       SELECT coalesce(jsonb_agg('{"accepted": true}'::jsonb), '[]')
                       FROM jsonb_array_elements(coalesce(x.value->'p'->'records', '[]'))))
              END)
    INTO answers
    FROM jsonb_array_elements(ps) WITH ORDINALITY x
    WHERE x.ordinality = ANY (taken);
    RETURN answers;
END
$$;
