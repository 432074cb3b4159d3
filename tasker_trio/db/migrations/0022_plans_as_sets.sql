-- A batch's plans applied together: one statement per table for all of them.
--
-- `tasker.apply_many` applied its plans one after another, each by
-- `tasker.apply_plan_at_once`: ~16 statements per plan, each starting an executor whose
-- set-up (its nodes, its expressions) cost more than the few rows it wrote. Timed statement
-- by statement (PL/pgSQL checkpoints; a batch of real plans applied and rolled back again
-- and again): ~560 us per plan, where the same writes cost ~230 us by the fewest plain
-- statements and ~170 us per plan by one statement per table for 8 plans at once.
--
-- `tasker.apply_set(ps)` now takes the batch first. It locks, in task order, the task of
-- every `claim` and `record` plan of the batch (also of those it leaves to the others'
-- way, so that batches still lock tasks in one order), and takes as its own each plan that
-- `tasker.apply_plan_at_once` would have written at once: a `claim` or `record` plan, alone
-- of its task in the batch, whose task is at the plan's version; whose records' and local
-- claims' steps are steps it rewrites, and whose records are not of an expired lease; the
-- steps it rewrites (locked in step order, the batch's together) as it saw them, each
-- recorded step in progress on the recorded attempt. For those it writes, one statement
-- per table for them all, in the order `tasker.apply_plan_at_once` wrote one plan's: the
-- step results; the local claims' messages (one send per queue, each message hidden until
-- its own plan's lease ends: `tasker.q_send_rows`); each step's final row; the tasks; the
-- audit records (each plan's records', then its plan's, then its claims', numbered after
-- their entity's last); the plans' messages and dead letters; the deletes of consumed and
-- recorded messages, one per queue. It answers, by the plan's position in the batch, what
-- `tasker.apply_plan_recording` or `tasker.apply_plan_claiming` would have. Every other
-- plan goes as before, one by one and in the batch's order, after them.
--
-- Its statements join the batch's JSON to the tables by key. Planned generically, the
-- batch's arrays count as 100 rows each, and an UPDATE of the steps joined to 10 plans'
-- steps (1,000 rows, for the planner) became a hash join over every row of `tasker.steps`:
-- hash and merge joins and sequential scans are off for the function, which leaves index
-- look-ups.
--
-- The steps' final rows are computed once per row (`OFFSET 0`): a sub-select flattened into
-- the UPDATE ran the claim's `jsonb ||` once for each column set from it.

-- Send rows of `{message, now, delay}` to `queue` in their order, each sent at its `now` and
-- visible `delay` seconds later; each message's id and payload. The static statement of each prepared queue, as `tasker.q_send_prepared` (0019),
-- written by `tasker.q_write_dispatchers` beside the other two.
CREATE OR REPLACE FUNCTION tasker.q_write_dispatchers() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sends text := '';
    rows text := '';
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

-- The plans of `ps` (`tasker.apply_many`'s items) that it applies, applied: their answers by
-- their position in `ps` (from 1, as text). See the head of this file.
CREATE FUNCTION tasker.apply_set(ps jsonb) RETURNS jsonb
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
    -- The steps they rewrite or record, locked in step order.
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
    ORDER BY s.step_uuid
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

-- The batch: `tasker.apply_set`'s plans, then the others one by one in the batch's order.
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
    applied := tasker.apply_set(ps);
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
