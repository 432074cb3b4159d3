-- A step result recorded twice is kept once.
--
-- The store retries a write whose connection was lost (`tasker_trio.db.retry`); a record
-- whose commit went through but whose answer was lost therefore runs again, finds its step
-- moved on and answers `superseded`, as before, but it also kept the same result a second
-- time in `tasker.step_results`, as not accepted: the audit showed a rejected copy of the
-- accepted result. `tasker.record_result` now keeps a result that is not accepted only if
-- no row of that step and attempt holds the very same result. A different result for the
-- same attempt (a duplicate that is not a replay) is still kept, as not accepted.

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
        -- Kept in the audit, unless the very same result is there already: a record
        -- retried after its commit's answer was lost.
        IF NOT (p ? 'expired_by') AND NOT EXISTS (
            SELECT 1 FROM tasker.step_results r
            WHERE r.step_uuid = v_step AND r.attempt = v_attempt AND r.data = v_result
        ) THEN
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

