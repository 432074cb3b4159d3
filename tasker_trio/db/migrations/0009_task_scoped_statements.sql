-- Statements that keep to a task's rows, and fewer of them per plan.
--
-- Scans: the ancestors of `tasker.claim_step`, and the step locks and updates of
-- `tasker.apply_plan`, joined on step uuids alone, and PostgreSQL planned those joins as
-- scans of the whole `steps` and `edges` tables: a claim and a plan got slower with every
-- task the database held. They now filter on `task_uuid` too. `tasker.write_plan_effects`
-- clears each step's previous `most_recent` transition with its own statement on the
-- step's uuid, which the partial unique index answers whatever the table's size (a single
-- UPDATE over `step_uuid = ANY (...)` is planned as a scan of all step transitions while
-- the table is small, and PL/pgSQL keeps that plan as it grows).
--
-- Fewer statements: `tasker.write_plan_effects` inserts a plan's step transitions with one
-- statement and its task transitions with two (clear `most_recent`, insert the new rows with
-- consecutive `sort_key`s, the last of each entity being the `most_recent` one), instead of
-- a function call and two statements per transition; it sends each queue's messages with
-- one statement (`tasker.q_send_many`, in the order given, so `msg_id`s follow it), and
-- `tasker.apply_plan` deletes each queue's consumed messages with one
-- (`tasker.q_delete_many`): a fan-out's 100 step messages, or a batch of results, no longer
-- cost one dynamic statement each.
--
-- Cheaper calls: `tasker.notify` becomes PL/pgSQL (as an SQL function with a WHERE clause
-- it could not be inlined, so every call planned its body anew, mostly to find
-- `tasker.notify = deferred` and do nothing), and `tasker.jnum` STABLE, so that its body
-- (float8 -> text -> numeric; text output reads `extra_float_digits`) is inlined into the
-- statements that call it.

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

CREATE OR REPLACE FUNCTION tasker.claim_step(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_step text := p->>'step_uuid';
    v_now double precision := (p->>'now')::float8;
    v_lease double precision := (p->>'lease')::float8;
    v_target text := p->>'target_state';
    s tasker.steps%ROWTYPE;
    claimed jsonb;
    task jsonb;
    results jsonb;
BEGIN
    -- Only the step's row is locked: the task's row is left to orchestration (0007).
    SELECT * INTO s FROM tasker.steps WHERE step_uuid = v_step FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('reason', 'unknown_step');
    END IF;
    IF s.state = p->>'in_progress_state' THEN
        IF s.lease_expires_at IS NOT NULL AND s.lease_expires_at > v_now THEN
            RETURN jsonb_build_object('reason', 'lease_alive');
        END IF;
        IF s.attempts >= (s.data->'retry'->>'max_attempts')::integer THEN
            RETURN jsonb_build_object(
                'reason', 'lease_expired_on_last_attempt', 'attempts', s.attempts,
                'task_uuid', s.task_uuid);
        END IF;
    ELSIF s.state <> p->>'claimable_state' THEN
        PERFORM tasker.q_delete(p->>'queue', (p->>'msg_id')::bigint);
        RETURN jsonb_build_object('reason', 'not_enqueued');
    END IF;
    UPDATE tasker.steps
    SET state = v_target,
        attempts = s.attempts + 1,
        lease_expires_at = v_now + v_lease,
        data = data || jsonb_build_object(
            'state', v_target, 'attempts', s.attempts + 1,
            'lease_expires_at', tasker.jnum(v_now + v_lease), 'updated_at', tasker.jnum(v_now))
    WHERE step_uuid = v_step
    RETURNING data INTO claimed;
    PERFORM tasker.append_step_transition(
        v_step, s.state, v_target, p->>'event', v_now, p->>'processor_id',
        jsonb_build_object('attempt', s.attempts + 1, 'worker_id', p->'worker_id',
                           'reclaim', s.state = p->>'in_progress_state'));
    SELECT t.data INTO task FROM tasker.tasks t WHERE t.task_uuid = s.task_uuid;
    -- Within the step's task only: every scan stays on the task's own rows.
    WITH RECURSIVE ancestors(step_uuid) AS (
        SELECT e.from_step_uuid FROM tasker.edges e
        WHERE e.task_uuid = s.task_uuid AND e.to_step_uuid = v_step
        UNION
        SELECT e.from_step_uuid FROM tasker.edges e JOIN ancestors a ON e.to_step_uuid = a.step_uuid
        WHERE e.task_uuid = s.task_uuid
    )
    SELECT coalesce(jsonb_object_agg(st.name, coalesce(st.data->'results', '{}')), '{}')
    INTO results
    FROM tasker.steps st JOIN ancestors a ON st.step_uuid = a.step_uuid
    WHERE st.task_uuid = s.task_uuid
      AND st.state = ANY (ARRAY(SELECT jsonb_array_elements_text(p->'satisfied_states')));
    RETURN jsonb_build_object('step', claimed, 'task', task, 'dependency_results', results);
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
