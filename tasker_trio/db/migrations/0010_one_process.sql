-- One process running orchestration and workers: a step crosses the database once.
--
-- A step used to cross the database four times on its critical path: the plan enqueued it,
-- a worker read and claimed it, the worker recorded its result, and orchestration read the
-- result before applying the next plan. When one process does both, three of those
-- crossings only move the work back into the process it came from:
--
-- `tasker.apply_plan_claiming(p)` applies a plan like `tasker.apply_plan`, then sends the
-- step messages of `p.local.messages` (which the caller left out of `p.messages`) hidden for
-- `p.local.lease` seconds and claims their steps at once (`tasker.send_and_claim`): the step
-- goes pending -> enqueued -> in_progress in one transaction, both transitions in its audit
-- trail. The claim is one UPDATE, still conditional on the step being `enqueued`, and its
-- audit record: the step is locked by the plan, and the process builds the claimed step, its
-- task and its dependency results from the view its plan was made on. Each claim comes back
-- as `{msg_id, read_ct, enqueued_at, visible_at, message, attempts}` (`attempts` NULL if the
-- step was not claimable). The message stays hidden while the claiming worker renews its
-- lease and is deleted with the step's result; if that process dies, it turns visible when
-- the lease runs out and any worker reclaims the step, as after any claim.
-- `tasker.create_task_claiming(p)` does the same for a new task's first steps.
--
-- `tasker.record_result(p)` takes `p.hold`: the result notice is sent hidden for that many
-- seconds, and the answer adds its `msg_id`, its `message` and the step as recorded, so the
-- process can process the result without reading it. It takes `p.silent` too: the result is
-- recorded (fenced as ever) and no notice is sent.
--
-- `tasker.apply_plan_recording(p)` records the results of `p.records` silently — payloads of
-- `tasker.record_result`, sorted by step, after locking the task's row (the lock order of
-- every plan: task, then steps in step order) — and, if every one was accepted, applies the
-- plan, which the process made on the steps as those records leave them. If a record or the
-- plan is refused, the accepted records still commit and their notices are sent, held, for
-- the process's next plan to consume. Returns `tasker.apply_plan_claiming`'s answer (or
-- `{applied: false, claims: []}`) with `records`: each record's answer, in order (with the
-- `msg_id` of its notice when one was sent).

CREATE FUNCTION tasker.send_and_claim(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_now double precision := (p->>'now')::float8;
    v_lease double precision := (p->'local'->>'lease')::float8;
    v_claim jsonb := p->'local'->'claim';
    v_claimable text := v_claim->>'claimable_state';
    v_target text := v_claim->>'target_state';
    item jsonb;
    id bigint;
    claimed integer;
    claims jsonb := '[]'::jsonb;
BEGIN
    FOR item IN SELECT value FROM jsonb_array_elements(coalesce(p->'local'->'messages', '[]'))
    LOOP
        id := tasker.q_send(item->>'queue', item->'payload', v_now, v_lease);
        UPDATE tasker.steps
        SET state = v_target,
            attempts = attempts + 1,
            lease_expires_at = v_now + v_lease,
            data = data || jsonb_build_object(
                'state', v_target, 'attempts', attempts + 1,
                'lease_expires_at', tasker.jnum(v_now + v_lease),
                'updated_at', tasker.jnum(v_now))
        WHERE task_uuid = p->>'task_uuid'
          AND step_uuid = item->'payload'->>'step_uuid'
          AND state = v_claimable
        RETURNING attempts INTO claimed;
        IF FOUND THEN
            PERFORM tasker.append_step_transition(
                item->'payload'->>'step_uuid', v_claimable, v_target, v_claim->>'event', v_now,
                v_claim->>'processor_id',
                jsonb_build_object('attempt', claimed, 'worker_id', v_claim->'worker_id',
                                   'reclaim', false));
        ELSE
            claimed := NULL;
        END IF;
        claims := claims || jsonb_build_array(jsonb_build_object(
            'msg_id', id, 'read_ct', 1, 'enqueued_at', tasker.jnum(v_now),
            'visible_at', tasker.jnum(v_now + v_lease), 'message', item->'payload',
            'attempts', claimed));
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
    IF p ? 'silent' THEN
        -- Recorded with the plan that processes it (`tasker.apply_plan_recording`): no
        -- notice, unless that plan is refused (it then sends one).
        RETURN jsonb_build_object('accepted', true, 'step', recorded);
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

CREATE FUNCTION tasker.apply_plan_recording(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    rec jsonb;
    answer jsonb;
    answers jsonb := '[]'::jsonb;
    accepted jsonb := '[]'::jsonb;
    outcome jsonb;
    i integer;
    id bigint;
    notice jsonb;
BEGIN
    PERFORM 1 FROM tasker.tasks t WHERE t.task_uuid = p->>'task_uuid' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('applied', NULL, 'claims', '[]'::jsonb, 'records', answers);
    END IF;
    FOR rec IN SELECT value FROM jsonb_array_elements(p->'records') LOOP
        answer := tasker.record_result(rec || '{"silent": true}'::jsonb);
        answers := answers || jsonb_build_array(answer);
        IF (answer->>'accepted')::boolean THEN
            accepted := accepted || jsonb_build_array(rec);
        END IF;
    END LOOP;
    IF jsonb_array_length(accepted) = jsonb_array_length(p->'records') THEN
        outcome := tasker.apply_plan_claiming(p);
        IF (outcome->>'applied')::boolean THEN
            RETURN outcome || jsonb_build_object('records', answers);
        END IF;
    ELSE
        outcome := jsonb_build_object('applied', false, 'claims', '[]'::jsonb);
    END IF;
    -- Not processed here: the accepted records' notices go out, held, for the next plan.
    FOR i IN 0 .. jsonb_array_length(answers) - 1 LOOP
        IF (answers->i->>'accepted')::boolean THEN
            rec := p->'records'->i;
            SELECT rec->'notice' || jsonb_build_object('task_uuid', t.task_uuid,
                                                       'correlation_id', t.data->'correlation_id')
            INTO notice FROM tasker.tasks t WHERE t.task_uuid = p->>'task_uuid';
            id := tasker.q_send(rec->>'result_queue', notice, (rec->>'now')::float8,
                                coalesce((rec->>'hold')::float8, 0));
            answers := jsonb_set(answers, ARRAY[i::text, 'msg_id'], to_jsonb(id));
        END IF;
    END LOOP;
    RETURN outcome || jsonb_build_object('records', answers);
END
$$;
