-- A plan, the results it records and the steps it claims, written at once.
--
-- `tasker.apply_plan_recording` (0010) wrote a result, a plan and a local claim as three
-- calls run one after the other: the result's record updated its step and appended its audit
-- record, the plan rewrote that step and the steps it enqueued, and the claim updated those
-- again, each step row two or three times per transaction, each audit record with a
-- statement pair of its own, each queue message with a dynamic statement of its own.
-- Profiling the one-process path (pg_stat_statements, perf) showed the server spending most
-- of a step's time starting those statements.
--
-- `tasker.apply_plan_at_once(p)` takes the same payload. Under the task's row lock and the
-- row locks of every step the plan or a record touches (in step order), it checks what the
-- three calls would have checked one by one: the task's version; each record's step still in
-- progress on the recorded attempt; each step the plan rewrites as the plan saw it, the
-- recorded steps as their records leave them. If all hold, and the records' steps and the
-- locally claimed steps are among the steps the plan rewrites (the normal path), it writes
-- everything with one statement per table: the step results; each step's final row (the
-- plan's, with the claim on top for the steps claimed here); the task; every audit record,
-- the records' first, then the plan's, then the claims' (`tasker.write_plan_effects`, which
-- now takes an `at` and a `processor_id` per record); one send per queue for the claimed
-- steps' messages and one delete per queue for the consumed messages and the recorded steps'
-- messages. It answers as `tasker.apply_plan_recording` does. Otherwise it writes nothing
-- and answers NULL, and `tasker.apply_plan_recording` / `tasker.apply_plan_claiming` go
-- the stepwise way of 0010 (renamed `*_stepwise`), whose outcome is the same.
--
-- Cheaper helpers, each seen in the profile: `tasker.q_exists` becomes PL/pgSQL (an SQL
-- function with a sub-select is never inlined, so each call parsed and planned its body),
-- as does `tasker.is_step_message` by losing its sub-select (the keys are checked by
-- removing the six known ones and finding nothing left).

CREATE OR REPLACE FUNCTION tasker.q_exists(queue text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM pgmq.meta m WHERE m.queue_name = queue);
END
$$;

CREATE OR REPLACE FUNCTION tasker.is_step_message(m jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(m) = 'object' THEN
        m - ARRAY['task_uuid', 'step_uuid', 'step_name', 'namespace', 'correlation_id',
                  'attempt'] = '{}'::jsonb
        AND jsonb_typeof(m->'task_uuid') = 'string'
        AND jsonb_typeof(m->'step_uuid') = 'string'
        AND jsonb_typeof(m->'step_name') = 'string'
        AND jsonb_typeof(m->'namespace') = 'string'
        AND jsonb_typeof(m->'correlation_id') = 'string'
        AND jsonb_typeof(m->'attempt') = 'number'
        AND (m->>'attempt') ~ '^-?[0-9]+$'
    ELSE false END
$$;

-- Send `messages` (a JSON array of payloads) to `queue` in their order, all visible after
-- `delay` seconds; returns each message's id with its payload.
CREATE FUNCTION tasker.q_send_each(queue text, messages jsonb, now double precision,
                                   delay double precision)
RETURNS TABLE (msg_id bigint, message jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tasker.q_ensure(queue);
    RETURN QUERY EXECUTE format(
        'INSERT INTO pgmq.%I (enqueued_at, vt, message)'
        ' SELECT to_timestamp($1), to_timestamp($2), m.value'
        ' FROM jsonb_array_elements($3) WITH ORDINALITY m ORDER BY m.ordinality'
        ' RETURNING msg_id, message',
        pgmq.format_table_name(queue, 'q'))
    USING now, now + greatest(coalesce(delay, 0), 0), messages;
    PERFORM tasker.notify('tasker_queues', queue);
END
$$;

-- As in 0009, but an audit record may carry its own `at` and `processor_id` (the records
-- of results written with their plan keep the worker's), and no statement runs for what
-- the plan does not have.
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
               coalesce((n.item->>'at')::float8, v_now),
               coalesce(n.item->>'processor_id', v_processor),
               coalesce(n.item->'metadata', '{}'),
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

CREATE FUNCTION tasker.apply_plan_at_once(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_task text := p->>'task_uuid';
    v_now double precision := (p->>'now')::float8;
    v_records jsonb := coalesce(p->'records', '[]');
    v_plan_steps jsonb := coalesce(p->'steps', '[]');
    v_local jsonb := coalesce(p->'local'->'messages', '[]');
    v_claim jsonb := coalesce(p->'local'->'claim', '{}');
    v_lease double precision := (p->'local'->>'lease')::float8;
    current_version bigint;
    -- Each recorded step's state once recorded, and each step's state once planned.
    recorded jsonb;
    planned jsonb;
    sent jsonb := '{}'::jsonb;
    claims jsonb;
    transitions jsonb;
    batch record;
BEGIN
    SELECT t.version INTO current_version FROM tasker.tasks t WHERE t.task_uuid = v_task
    FOR UPDATE;
    IF NOT FOUND OR current_version <> (p->>'version')::bigint THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(jsonb_object_agg(
               r.value->>'step_uuid',
               CASE WHEN (r.value->'result'->>'success')::boolean
                    THEN r.value->>'success_state' ELSE r.value->>'failure_state' END), '{}')
    INTO recorded FROM jsonb_array_elements(v_records) r;
    SELECT coalesce(jsonb_object_agg(i.value->>'step_uuid', i.value->>'state'), '{}')
    INTO planned FROM jsonb_array_elements(v_plan_steps) i;
    -- Another way to go: an expired lease's record, a record or a claim of a step the plan
    -- does not rewrite (each written on its own by the stepwise functions).
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_records) r
               WHERE r.value ? 'expired_by' OR NOT planned ? (r.value->>'step_uuid'))
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_local) m
                  WHERE NOT planned ? (m.value->'payload'->>'step_uuid')) THEN
        RETURN NULL;
    END IF;
    -- The steps written, locked in step order (as every plan and claim takes them).
    PERFORM 1 FROM tasker.steps s
    WHERE s.task_uuid = v_task
      AND s.step_uuid = ANY (ARRAY(
          SELECT e.value->>'step_uuid' FROM jsonb_array_elements(coalesce(p->'expect', '[]')) e
          UNION
          SELECT r.key FROM jsonb_each_text(recorded) r))
    ORDER BY s.step_uuid
    FOR UPDATE;
    IF EXISTS (
        SELECT 1 FROM jsonb_array_elements(v_records) r
        LEFT JOIN tasker.steps s ON s.task_uuid = v_task AND s.step_uuid = r.value->>'step_uuid'
        WHERE s.step_uuid IS NULL
           OR s.state <> r.value->>'in_progress_state'
           OR s.attempts <> (r.value->'result'->>'attempt')::integer
    ) OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(coalesce(p->'expect', '[]')) e
        JOIN tasker.steps s ON s.task_uuid = v_task AND s.step_uuid = e.value->>'step_uuid'
        WHERE coalesce(recorded->>s.step_uuid, s.state) IS DISTINCT FROM e.value->>'state'
           OR s.attempts IS DISTINCT FROM (e.value->>'attempts')::integer
    ) THEN
        RETURN NULL;
    END IF;

    IF jsonb_array_length(v_records) > 0 THEN
        INSERT INTO tasker.step_results (step_uuid, attempt, accepted, data)
        SELECT r.value->>'step_uuid', (r.value->'result'->>'attempt')::integer, true,
               r.value->'result'
        FROM jsonb_array_elements(v_records) WITH ORDINALITY r
        ORDER BY r.ordinality;
    END IF;
    -- The claimed steps' messages, hidden for the lease while their worker runs them.
    IF jsonb_array_length(v_local) > 0 THEN
        FOR batch IN
            SELECT m.value->>'queue' AS queue,
                   jsonb_agg(m.value->'payload' ORDER BY m.ordinality) AS payloads
            FROM jsonb_array_elements(v_local) WITH ORDINALITY m
            GROUP BY 1
            ORDER BY min(m.ordinality)
        LOOP
            SELECT sent || jsonb_object_agg(q.message->>'step_uuid', q.msg_id) INTO sent
            FROM tasker.q_send_each(batch.queue, batch.payloads, v_now, v_lease) q;
        END LOOP;
    END IF;
    -- Each step's final row: the plan's, and the claim on top of it for a step claimed here
    -- (if the plan left it claimable).
    UPDATE tasker.steps s
    SET state = c.d->>'state',
        attempts = (c.d->>'attempts')::integer,
        next_retry_at = (c.d->>'next_retry_at')::float8,
        lease_expires_at = (c.d->>'lease_expires_at')::float8,
        data = c.d
    FROM (
        SELECT CASE WHEN sent ? (i.value->>'step_uuid')
                         AND i.value->>'state' = v_claim->>'claimable_state'
                    THEN i.value || jsonb_build_object(
                        'state', v_claim->>'target_state',
                        'attempts', (i.value->>'attempts')::integer + 1,
                        'lease_expires_at', tasker.jnum(v_now + v_lease),
                        'updated_at', tasker.jnum(v_now))
                    ELSE i.value END AS d
        FROM jsonb_array_elements(v_plan_steps) i
    ) c
    WHERE s.task_uuid = v_task AND s.step_uuid = c.d->>'step_uuid';
    UPDATE tasker.tasks t
    SET version = t.version + 1,
        state = coalesce(p->'task'->>'state', t.state),
        updated_at = coalesce((p->'task'->>'updated_at')::float8, t.updated_at),
        data = coalesce(nullif(p->'task', 'null'::jsonb), t.data)
    WHERE t.task_uuid = v_task;

    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'msg_id', (sent->>(m.value->'payload'->>'step_uuid'))::bigint,
               'read_ct', 1,
               'enqueued_at', tasker.jnum(v_now),
               'visible_at', tasker.jnum(v_now + v_lease),
               'message', m.value->'payload',
               'attempts', CASE WHEN planned->>(m.value->'payload'->>'step_uuid')
                                     = v_claim->>'claimable_state'
                                THEN (i.value->>'attempts')::integer + 1 END)
               ORDER BY m.ordinality), '[]')
    INTO claims
    FROM jsonb_array_elements(v_local) WITH ORDINALITY m
    JOIN jsonb_array_elements(v_plan_steps) i
      ON i.value->>'step_uuid' = m.value->'payload'->>'step_uuid';
    -- The audit trail: each record's, then the plan's, then each claim's.
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'step_uuid', r.value->>'step_uuid',
               'from_state', r.value->>'in_progress_state',
               'to_state', recorded->>(r.value->>'step_uuid'),
               'event', CASE WHEN (r.value->'result'->>'success')::boolean
                             THEN r.value->>'success_event' ELSE r.value->>'failure_event' END,
               'at', r.value->'now',
               'processor_id', r.value->'processor_id',
               'metadata', jsonb_build_object(
                   'attempt', (r.value->'result'->>'attempt')::integer,
                   'worker_id', r.value->'result'->'worker_id')
                   || CASE WHEN (r.value->'result'->>'success')::boolean THEN '{}'::jsonb
                           ELSE jsonb_build_object('error', r.value->'result'->'error') END)
               ORDER BY r.ordinality), '[]')
    INTO transitions FROM jsonb_array_elements(v_records) WITH ORDINALITY r;
    transitions := transitions || coalesce(p->'step_transitions', '[]');
    SELECT transitions || coalesce(jsonb_agg(jsonb_build_object(
               'step_uuid', c.value->'message'->>'step_uuid',
               'from_state', v_claim->>'claimable_state',
               'to_state', v_claim->>'target_state',
               'event', v_claim->>'event',
               'processor_id', v_claim->'processor_id',
               'metadata', jsonb_build_object('attempt', (c.value->>'attempts')::integer,
                                              'worker_id', v_claim->'worker_id',
                                              'reclaim', false))
               ORDER BY c.ordinality), '[]')
    INTO transitions
    FROM jsonb_array_elements(claims) WITH ORDINALITY c
    WHERE c.value->>'attempts' IS NOT NULL;
    PERFORM tasker.write_plan_effects(p || jsonb_build_object('step_transitions', transitions));
    -- The consumed messages, and the recorded steps' own messages (done with).
    PERFORM tasker.q_delete_many(d.queue, d.ids)
    FROM (SELECT e.queue, array_agg(e.msg_id) AS ids
          FROM (SELECT c.value->>'queue' AS queue, (c.value->>'msg_id')::bigint AS msg_id
                FROM jsonb_array_elements(coalesce(p->'consumed', '[]')) c
                UNION ALL
                SELECT r.value->>'queue', (r.value->>'msg_id')::bigint
                FROM jsonb_array_elements(v_records) r
                WHERE r.value->>'msg_id' IS NOT NULL) e
          GROUP BY 1) d;
    RETURN jsonb_build_object(
        'applied', true, 'claims', claims,
        'records', (SELECT coalesce(jsonb_agg('{"accepted": true}'::jsonb), '[]')
                    FROM jsonb_array_elements(v_records)));
END
$$;

ALTER FUNCTION tasker.apply_plan_recording(jsonb) RENAME TO apply_plan_recording_stepwise;
ALTER FUNCTION tasker.apply_plan_claiming(jsonb) RENAME TO apply_plan_claiming_stepwise;

-- A plan with the results it records: at once when it can, else record by record.
CREATE FUNCTION tasker.apply_plan_recording(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RETURN coalesce(tasker.apply_plan_at_once(p), tasker.apply_plan_recording_stepwise(p));
END
$$;

-- A plan and the steps it claims here: at once when it can, else claim by claim.
CREATE FUNCTION tasker.apply_plan_claiming(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RETURN coalesce(tasker.apply_plan_at_once(p) - 'records',
                    tasker.apply_plan_claiming_stepwise(p));
END
$$;

-- Several plans in one transaction (`tasker_trio.store.postgres._batches`): `ps` is an
-- array of `{kind, p}`, `kind` saying which function takes `p` (`create`:
-- `tasker.create_task_claiming`, `claim`: `tasker.apply_plan_claiming`, `record`:
-- `tasker.apply_plan_recording`). Applied one after another in the order given (the caller
-- sorts them by task, so that batches lock tasks in one order); returns their answers in
-- that order.
CREATE FUNCTION tasker.apply_many(ps jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    item jsonb;
    answers jsonb := '[]'::jsonb;
BEGIN
    FOR item IN SELECT i.value FROM jsonb_array_elements(ps) WITH ORDINALITY i
                ORDER BY i.ordinality
    LOOP
        IF NOT item->>'kind' = ANY (ARRAY['create', 'claim', 'record']) THEN
            RAISE EXCEPTION 'tasker.apply_many: unknown kind %', item->'kind';
        END IF;
        answers := answers || jsonb_build_array(CASE item->>'kind'
            WHEN 'create' THEN tasker.create_task_claiming(item->'p')
            WHEN 'claim' THEN tasker.apply_plan_claiming(item->'p')
            WHEN 'record' THEN tasker.apply_plan_recording(item->'p')
        END);
    END LOOP;
    RETURN answers;
END
$$;
