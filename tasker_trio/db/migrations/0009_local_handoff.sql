-- Handoffs inside one process: a plan claims its ready steps for the process's own worker,
-- and a worker's result goes straight to the process's own result processing.
--
-- When one engine process runs both orchestration and workers, a step used to cross the
-- database four times on its critical path: the plan enqueued it, a worker read and claimed
-- it, the worker recorded its result, and orchestration read that result before applying
-- the next plan. Two of those crossings only moved the work back into the process it came
-- from. Now:
--
-- `tasker.apply_plan_claiming(p)` applies a plan like `tasker.apply_plan` and then sends the
-- step messages of `p.local.messages` (which the caller left out of `p.messages`) hidden
-- for `p.local.lease` seconds and claims their steps at once with `tasker.claim_step`
-- (`p.local.claim` is its payload, less the step and the message): the step goes
-- pending -> enqueued -> in_progress in one transaction, with both transitions in its
-- audit trail. It returns `{applied, claims}`: `applied` as `tasker.apply_plan` returns it,
-- and each claim as `{msg_id, read_ct, enqueued_at, visible_at, message, claim}` (the row
-- shape of `tasker.claim_from_queue`). The message stays hidden while the claiming worker
-- renews its lease, and is deleted with the step's result; if that process dies, it turns
-- visible when the lease runs out and any worker reclaims the step, as after any claim.
-- `tasker.create_task_claiming(p)` does the same for a new task's first steps.
--
-- `tasker.record_result(p)` takes `p.hold`: the result notice is sent hidden for that many
-- seconds, and the answer adds its `msg_id`, its `message` and the step's data as
-- recorded, so the process can process the result without reading it (and without reading
-- the step). No other orchestrator sees the notice unless the recording process fails to
-- process it within `p.hold` seconds; then any orchestrator reads it as usual.

CREATE FUNCTION tasker.send_and_claim(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_now double precision := (p->>'now')::float8;
    v_lease double precision := (p->'local'->>'lease')::float8;
    item jsonb;
    id bigint;
    claims jsonb := '[]'::jsonb;
BEGIN
    FOR item IN SELECT value FROM jsonb_array_elements(coalesce(p->'local'->'messages', '[]'))
    LOOP
        id := tasker.q_send(item->>'queue', item->'payload', v_now, v_lease);
        claims := claims || jsonb_build_array(jsonb_build_object(
            'msg_id', id, 'read_ct', 1, 'enqueued_at', tasker.jnum(v_now),
            'visible_at', tasker.jnum(v_now + v_lease), 'message', item->'payload',
            'claim', tasker.claim_step(p->'local'->'claim' || jsonb_build_object(
                'step_uuid', item->'payload'->>'step_uuid', 'msg_id', id,
                'queue', item->>'queue', 'now', v_now, 'lease', v_lease))));
    END LOOP;
    RETURN claims;
END
$$;

CREATE FUNCTION tasker.apply_plan_claiming(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    applied boolean;
BEGIN
    applied := tasker.apply_plan(p);
    IF applied IS NOT TRUE THEN
        RETURN jsonb_build_object('applied', applied, 'claims', '[]'::jsonb);
    END IF;
    RETURN jsonb_build_object('applied', true, 'claims', tasker.send_and_claim(p));
END
$$;

CREATE FUNCTION tasker.create_task_claiming(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    outcome jsonb;
BEGIN
    outcome := tasker.create_task(p);
    IF NOT (outcome->>'created')::boolean THEN
        RETURN outcome || jsonb_build_object('claims', '[]'::jsonb);
    END IF;
    RETURN outcome || jsonb_build_object('claims', tasker.send_and_claim(p));
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
    recorded jsonb;
    notice jsonb;
    id bigint;
BEGIN
    -- Only the step's row is locked: the task's row is left to orchestration (0007).
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
    WHERE step_uuid = v_step
    RETURNING data INTO recorded;
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
    SELECT p->'notice' || jsonb_build_object('task_uuid', s.task_uuid,
                                             'correlation_id', t.data->'correlation_id')
    INTO notice FROM tasker.tasks t WHERE t.task_uuid = s.task_uuid;
    id := tasker.q_send(p->>'result_queue', notice, v_now,
                        coalesce((p->>'hold')::float8, 0));
    IF NOT (p ? 'hold') THEN
        RETURN jsonb_build_object('accepted', true);
    END IF;
    RETURN jsonb_build_object(
        'accepted', true, 'msg_id', id, 'enqueued_at', tasker.jnum(v_now),
        'visible_at', tasker.jnum(v_now + (p->>'hold')::float8), 'message', notice,
        'step', recorded);
END
$$;


-- Every statement on steps and edges keeps to the task's own rows. The ancestors of
-- `tasker.claim_step` and the step locks and updates of `tasker.apply_plan` used to join
-- on step uuids alone, and PostgreSQL planned those joins as scans of the whole `steps`
-- and `edges` tables: a claim and a plan got slower with every task the database held.
-- Filtering on `task_uuid` keeps them on the task's index ranges.

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
    PERFORM tasker.q_delete(c.value->>'queue', (c.value->>'msg_id')::bigint)
    FROM jsonb_array_elements(coalesce(p->'consumed', '[]'::jsonb)) c;
    RETURN true;
END
$$;
