-- Store operations, one statement (one round trip) each.
--
-- The store computes new rows in Python (pure planners, models' to_json) and these
-- functions write them: `tasker.apply_plan` checks the task's version under its row lock
-- (compare-and-set: no other change landed since the view was read) and writes the plan;
-- `tasker.create_task` inserts a task with its graph and writes its first plan;
-- `tasker.claim_step` and `tasker.record_result` are the worker's two operations, fenced by
-- the step's row lock and attempt number. State and event names come from Python (the
-- state machine), never spelled here. Task transitions notify channel `tasker_tasks`.

CREATE FUNCTION tasker.task_view(p_task text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'version', t.version,
        'task', t.data,
        'steps', coalesce(
            (SELECT jsonb_agg(s.data ORDER BY s.position)
             FROM tasker.steps s WHERE s.task_uuid = t.task_uuid), '[]'),
        'edges', coalesce(
            (SELECT jsonb_agg(jsonb_build_object(
                        'task_uuid', e.task_uuid, 'from_step_uuid', e.from_step_uuid,
                        'to_step_uuid', e.to_step_uuid, 'name', e.name) ORDER BY e.position)
             FROM tasker.edges e WHERE e.task_uuid = t.task_uuid), '[]'))
    FROM tasker.tasks t
    WHERE t.task_uuid = p_task
$$;

CREATE FUNCTION tasker.append_task_transition(
    p_task text, p_from text, p_to text, p_event text, p_at double precision,
    p_processor text, p_metadata jsonb
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    previous integer;
BEGIN
    UPDATE tasker.task_transitions SET most_recent = false
    WHERE task_uuid = p_task AND most_recent
    RETURNING sort_key INTO previous;
    INSERT INTO tasker.task_transitions
        (task_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key, most_recent)
    VALUES (p_task, p_from, p_to, p_event, p_at, p_processor, coalesce(p_metadata, '{}'),
            coalesce(previous, 0) + 1, true);
END
$$;

CREATE FUNCTION tasker.append_step_transition(
    p_step text, p_from text, p_to text, p_event text, p_at double precision,
    p_processor text, p_metadata jsonb
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    previous integer;
BEGIN
    UPDATE tasker.step_transitions SET most_recent = false
    WHERE step_uuid = p_step AND most_recent
    RETURNING sort_key INTO previous;
    INSERT INTO tasker.step_transitions
        (step_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key, most_recent)
    VALUES (p_step, p_from, p_to, p_event, p_at, p_processor, coalesce(p_metadata, '{}'),
            coalesce(previous, 0) + 1, true);
END
$$;

-- The audit records, messages and dead letter of a plan (`p` as built by the store).
CREATE FUNCTION tasker.write_plan_effects(p jsonb) RETURNS void
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
        PERFORM pg_notify('tasker_tasks', v_task);
    END IF;
END
$$;

-- Write a plan made on version p.version of the task; false (and nothing written) when the
-- task changed since; NULL when the task does not exist.
CREATE FUNCTION tasker.apply_plan(p jsonb) RETURNS boolean
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
    RETURN true;
END
$$;

-- Create a task with its steps and edges as the plan leaves them, then write the plan's
-- effects. A task with the same identity_hash wins: its data is returned, nothing written.
CREATE FUNCTION tasker.create_task(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_task jsonb := p->'task';
    existing jsonb;
BEGIN
    INSERT INTO tasker.tasks
        (task_uuid, identity_hash, namespace, name, state, created_at, updated_at, data)
    VALUES (v_task->>'task_uuid', v_task->>'identity_hash', v_task->>'namespace',
            v_task->>'name', v_task->>'state', (v_task->>'created_at')::float8,
            (v_task->>'updated_at')::float8, v_task)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT t.data INTO existing FROM tasker.tasks t
        WHERE t.identity_hash = v_task->>'identity_hash';
        RETURN jsonb_build_object('created', false, 'task', existing);
    END IF;
    INSERT INTO tasker.steps
        (step_uuid, task_uuid, position, name, state, attempts, next_retry_at,
         lease_expires_at, data)
    SELECT s.value->>'step_uuid', v_task->>'task_uuid', s.ordinality, s.value->>'name',
           s.value->>'state', (s.value->>'attempts')::integer,
           (s.value->>'next_retry_at')::float8, (s.value->>'lease_expires_at')::float8, s.value
    FROM jsonb_array_elements(p->'steps') WITH ORDINALITY s;
    INSERT INTO tasker.edges (task_uuid, position, from_step_uuid, to_step_uuid, name)
    SELECT v_task->>'task_uuid', e.ordinality, e.value->>'from_step_uuid',
           e.value->>'to_step_uuid', e.value->>'name'
    FROM jsonb_array_elements(p->'edges') WITH ORDINALITY e;
    PERFORM tasker.write_plan_effects(p);
    RETURN jsonb_build_object('created', true, 'task', v_task);
END
$$;

-- Claim (p.claimable: enqueued) or reclaim (in_progress, lease expired) a step for a worker.
-- Returns {reason} when not claimed; {reason: "lease_expired_on_last_attempt", attempts}
-- when the expired lease was the last attempt (the store then records that failure); or
-- {step, task, dependency_results} when claimed.
CREATE FUNCTION tasker.claim_step(p jsonb) RETURNS jsonb
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
    UPDATE tasker.tasks t SET version = t.version + 1 WHERE t.task_uuid = s.task_uuid
    RETURNING t.data INTO task;
    WITH RECURSIVE ancestors(step_uuid) AS (
        SELECT e.from_step_uuid FROM tasker.edges e WHERE e.to_step_uuid = v_step
        UNION
        SELECT e.from_step_uuid FROM tasker.edges e JOIN ancestors a ON e.to_step_uuid = a.step_uuid
    )
    SELECT coalesce(jsonb_object_agg(st.name, coalesce(st.data->'results', '{}')), '{}')
    INTO results
    FROM tasker.steps st JOIN ancestors a ON st.step_uuid = a.step_uuid
    WHERE st.state IN (SELECT jsonb_array_elements_text(p->'satisfied_states'));
    RETURN jsonb_build_object('step', claimed, 'task', task, 'dependency_results', results);
END
$$;

-- Record an attempt's result (p.result, a StepExecutionResult) fenced by the attempt: keep it
-- in the audit, and when it is the current attempt of a step in progress, move the step,
-- delete the step message and send p.notice (correlation_id filled in) to p.result_queue.
-- p.expired_by, when set, accepts only if the lease expired by then (lease-expiry failures).
CREATE FUNCTION tasker.record_result(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_step text := p->>'step_uuid';
    v_now double precision := (p->>'now')::float8;
    v_result jsonb := p->'result';
    v_attempt integer := (v_result->>'attempt')::integer;
    v_success boolean := (v_result->>'success')::boolean;
    v_target text;
    v_fields jsonb;
    v_metadata jsonb;
    s tasker.steps%ROWTYPE;
    correlation jsonb;
BEGIN
    SELECT * INTO s FROM tasker.steps WHERE step_uuid = v_step FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('accepted', false, 'reason', 'unknown_step');
    END IF;
    IF s.state <> p->>'in_progress_state' OR s.attempts <> v_attempt
       OR (p ? 'expired_by' AND s.lease_expires_at > (p->>'expired_by')::float8) THEN
        IF NOT (p ? 'expired_by') THEN
            INSERT INTO tasker.step_results (step_uuid, attempt, accepted, data)
            VALUES (v_step, v_attempt, false, v_result);
        END IF;
        IF p->>'msg_id' IS NOT NULL AND s.state <> p->>'in_progress_state' THEN
            -- Nobody else works on this message: the step moved on (cancelled, resolved...).
            PERFORM tasker.q_delete(p->>'queue', (p->>'msg_id')::bigint);
        END IF;
        RETURN jsonb_build_object('accepted', false, 'reason', 'superseded');
    END IF;
    INSERT INTO tasker.step_results (step_uuid, attempt, accepted, data)
    VALUES (v_step, v_attempt, true, v_result);
    IF v_success THEN
        v_target := p->>'success_state';
        v_fields := jsonb_build_object('results', v_result->'result');
    ELSE
        v_target := p->>'failure_state';
        v_fields := jsonb_build_object('last_error', v_result->'error');
    END IF;
    UPDATE tasker.steps
    SET state = v_target,
        lease_expires_at = NULL,
        data = data || jsonb_build_object(
            'state', v_target, 'lease_expires_at', NULL, 'updated_at', tasker.jnum(v_now))
            || v_fields
    WHERE step_uuid = v_step;
    v_metadata := jsonb_build_object('attempt', v_attempt, 'worker_id', v_result->'worker_id');
    IF NOT v_success THEN
        v_metadata := v_metadata || jsonb_build_object('error', v_result->'error');
    END IF;
    PERFORM tasker.append_step_transition(
        v_step, s.state, v_target,
        CASE WHEN v_success THEN p->>'success_event' ELSE p->>'failure_event' END,
        v_now, p->>'processor_id', v_metadata);
    IF p->>'msg_id' IS NOT NULL THEN
        PERFORM tasker.q_delete(p->>'queue', (p->>'msg_id')::bigint);
    END IF;
    UPDATE tasker.tasks t SET version = t.version + 1 WHERE t.task_uuid = s.task_uuid
    RETURNING t.data->'correlation_id' INTO correlation;
    PERFORM tasker.q_send(
        p->>'result_queue',
        p->'notice' || jsonb_build_object('task_uuid', s.task_uuid, 'correlation_id', correlation),
        v_now, 0);
    RETURN jsonb_build_object('accepted', true);
END
$$;
