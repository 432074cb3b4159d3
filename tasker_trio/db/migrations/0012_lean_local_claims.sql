-- Claims in a plan's own transaction without reading back what the plan just wrote.
--
-- `tasker.send_and_claim` (migration 0009) claimed each step a plan enqueued for the
-- process's own workers with `tasker.claim_step`, which locks the step, checks its state,
-- reads the task and gathers the ancestors' results with a recursive query — all of which
-- the plan's process already has: the step is locked by the plan (`tasker.apply_plan`, or
-- created by `tasker.create_task`), it was enqueued by this very transaction, and the
-- process holds the task's view the plan was made on. The claim is now one UPDATE (still
-- conditional on the step being `enqueued`) and its audit record; each claim returns the
-- step's new `attempts` (NULL if the step was not claimable), and the process builds the
-- claimed step, its task and its dependency results from its view.

CREATE OR REPLACE FUNCTION tasker.send_and_claim(p jsonb) RETURNS jsonb
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
