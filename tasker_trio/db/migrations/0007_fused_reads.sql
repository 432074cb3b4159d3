-- Fewer round trips for workers and result processing, and one lock order.
--
-- The task's row belongs to orchestration. `tasker.claim_step` and `tasker.record_result`
-- (the workers' writes) no longer bump the task's version, nor lock its row: they lock
-- their step's row only. Before, every claim and every result of a task waited for the
-- task's row lock and held it through its commit, so the 100 branches of a fan-out ran
-- their claims and results one at a time (and a claim, step then task, could deadlock with
-- a plan, task then steps). `tasker.apply_plan` now checks, besides the task's version,
-- that every step it rewrites is still in the state and attempt its plan was made on
-- (`p.expect`), under those steps' row locks taken in step order; a plan made on a view
-- that a worker has since changed in a step it touches is re-planned. Steps a plan does not
-- touch may have moved on since its view (enqueued -> in_progress -> enqueued for
-- orchestration: a worker's moves); orchestration treats all of those as "in flight", and
-- the result notice of the last one brings a new evaluation, so no decision is lost.
-- It also keeps the task's data when a plan sends none (a JSON null `p.task` used to
-- replace it: a plan that changed steps only left the task unreadable).
--
-- `tasker.claim_from_queue` is a worker's read and claims in one statement: it reads up to
-- `p.qty` messages of `p.queue` like `tasker.q_read`, and claims the step of each message
-- that is a well-formed step message (`tasker.is_step_message`) with `tasker.claim_step`,
-- in (task, step) order: the order `tasker.apply_plan` locks a task's steps in, and the same
-- for every worker's batch, so no two of them wait on each other in a cycle. Each row is the
-- message and its claim outcome; NULL for a message that is not a step message, which the
-- worker then hydrates and archives as poison.
--
-- `tasker.read_with_views` reads like `tasker.q_read` and adds the `tasker.task_view` of
-- each message's `task_uuid` (on the first message of each task in the batch; NULL on the
-- others and without one), so processing a step result needs no read of its own: the plan
-- is still written by `tasker.apply_plan`, which checks the view's version and steps (a
-- change since the read makes the store read again and re-plan).

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
    -- Only the step's row is locked: the task's row is left to orchestration (see the top).
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

CREATE OR REPLACE FUNCTION tasker.record_result(p jsonb) RETURNS jsonb
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
    -- Only the step's row is locked: the task's row is left to orchestration (see the top).
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
    SELECT t.data->'correlation_id' INTO correlation FROM tasker.tasks t
    WHERE t.task_uuid = s.task_uuid;
    PERFORM tasker.q_send(
        p->>'result_queue',
        p->'notice' || jsonb_build_object('task_uuid', s.task_uuid, 'correlation_id', correlation),
        v_now, 0);
    RETURN jsonb_build_object('accepted', true);
END
$$;

CREATE FUNCTION tasker.is_step_message(m jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_typeof(m) = 'object'
        AND (SELECT count(*) FROM jsonb_object_keys(m)) = 6
        AND jsonb_typeof(m->'task_uuid') = 'string'
        AND jsonb_typeof(m->'step_uuid') = 'string'
        AND jsonb_typeof(m->'step_name') = 'string'
        AND jsonb_typeof(m->'namespace') = 'string'
        AND jsonb_typeof(m->'correlation_id') = 'string'
        AND jsonb_typeof(m->'attempt') = 'number'
        AND (m->>'attempt') ~ '^-?[0-9]+$'
$$;

CREATE FUNCTION tasker.claim_from_queue(p jsonb)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at double precision,
               visible_at double precision, message jsonb, claim jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT q.* FROM tasker.q_read(p->>'queue', (p->>'qty')::integer,
                                      (p->>'vt')::float8, (p->>'now')::float8) q
        ORDER BY CASE WHEN tasker.is_step_message(q.message) THEN q.message->>'task_uuid' END,
                 CASE WHEN tasker.is_step_message(q.message) THEN q.message->>'step_uuid' END,
                 q.msg_id
    LOOP
        msg_id := r.msg_id;
        read_ct := r.read_ct;
        enqueued_at := r.enqueued_at;
        visible_at := r.visible_at;
        message := r.message;
        claim := NULL;
        IF tasker.is_step_message(r.message) THEN
            claim := tasker.claim_step(p || jsonb_build_object(
                'step_uuid', r.message->>'step_uuid', 'msg_id', r.msg_id));
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE FUNCTION tasker.read_with_views(queue text, qty integer, vt double precision, now double precision)
RETURNS TABLE (msg_id bigint, read_ct integer, enqueued_at double precision,
               visible_at double precision, message jsonb, view jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_task text;
    seen text[] := '{}';
BEGIN
    -- The views are read by statements of their own, after the read: each takes a fresh
    -- snapshot, which holds everything committed before its message was sent (one
    -- statement with q_read in it would read them in a snapshot older than the messages).
    FOR r IN SELECT * FROM tasker.q_read(queue, qty, vt, now) q ORDER BY q.msg_id LOOP
        msg_id := r.msg_id;
        read_ct := r.read_ct;
        enqueued_at := r.enqueued_at;
        visible_at := r.visible_at;
        message := r.message;
        view := NULL;
        IF jsonb_typeof(r.message->'task_uuid') = 'string' THEN
            v_task := r.message->>'task_uuid';
            IF NOT v_task = ANY (seen) THEN  -- one view per task: on its first message
                seen := seen || v_task;
                view := tasker.task_view(v_task);
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
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
    WHERE s.step_uuid IN (SELECT e.value->>'step_uuid'
                          FROM jsonb_array_elements(coalesce(p->'expect', '[]')) e)
    ORDER BY s.step_uuid
    FOR UPDATE;
    IF EXISTS (
        SELECT 1 FROM jsonb_array_elements(coalesce(p->'expect', '[]')) e
        JOIN tasker.steps s ON s.step_uuid = e.value->>'step_uuid'
        WHERE s.state IS DISTINCT FROM e.value->>'state'
           OR s.attempts IS DISTINCT FROM (e.value->>'attempts')::integer
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
    WHERE s.step_uuid = i.value->>'step_uuid';
    UPDATE tasker.tasks t
    SET version = t.version + 1,
        state = coalesce(p->'task'->>'state', t.state),
        updated_at = coalesce((p->'task'->>'updated_at')::float8, t.updated_at),
        -- A plan that changes no task field sends no task (absent, or JSON null: not SQL
        -- NULL, which coalesce would need; tasks.data once became `null` that way).
        data = coalesce(nullif(p->'task', 'null'::jsonb), t.data)
    WHERE t.task_uuid = v_task;
    PERFORM tasker.write_plan_effects(p);
    PERFORM tasker.q_delete(c.value->>'queue', (c.value->>'msg_id')::bigint)
    FROM jsonb_array_elements(coalesce(p->'consumed', '[]'::jsonb)) c;
    RETURN true;
END
$$;
