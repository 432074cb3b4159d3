-- A result recorded and processed in one transaction, when one process does both.
--
-- With the handoffs of migration 0009, a worker's result went to its own process's result
-- processing after one transaction (`tasker.record_result`), which a second one then
-- consumed (`tasker.apply_plan_claiming`). `tasker.apply_plan_recording(p)` does both in one:
-- it records each result of `p.records` (payloads of `tasker.record_result`, with their
-- `hold`), and only if every one was accepted, applies the plan — made on the steps as those
-- records leave them — consuming their notices with `p.consumed`. A record that is refused
-- (a superseded attempt) leaves the plan unapplied: the accepted records still commit, with
-- their notices held in the queue, and the process plans again on the task as it is.
--
-- Lock order as everywhere: the task's row first, then steps in step order (the caller
-- sends the records sorted by step).
--
-- Returns `tasker.apply_plan_claiming`'s answer, or `{applied: false, claims: []}`, with
-- `records`: each record's answer, in order.

CREATE FUNCTION tasker.apply_plan_recording(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    rec jsonb;
    answer jsonb;
    answers jsonb := '[]'::jsonb;
    consumed jsonb := coalesce(p->'consumed', '[]'::jsonb);
    all_accepted boolean := true;
BEGIN
    PERFORM 1 FROM tasker.tasks t WHERE t.task_uuid = p->>'task_uuid' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('applied', NULL, 'claims', '[]'::jsonb, 'records', answers);
    END IF;
    FOR rec IN SELECT value FROM jsonb_array_elements(p->'records') LOOP
        answer := tasker.record_result(rec);
        answers := answers || jsonb_build_array(answer);
        IF (answer->>'accepted')::boolean THEN
            consumed := consumed || jsonb_build_array(jsonb_build_object(
                'queue', rec->>'result_queue', 'msg_id', answer->'msg_id'));
        ELSE
            all_accepted := false;
        END IF;
    END LOOP;
    IF NOT all_accepted THEN
        RETURN jsonb_build_object('applied', false, 'claims', '[]'::jsonb, 'records', answers);
    END IF;
    RETURN tasker.apply_plan_claiming(jsonb_set(p, '{consumed}', consumed))
        || jsonb_build_object('records', answers);
END
$$;
