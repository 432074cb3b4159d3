-- Step results recorded in batches.
--
-- A worker process without orchestration records each result on its own
-- (`tasker.record_result`): one round trip and one commit per step, the largest share of
-- the server's transactions when workers and orchestrators run apart. `tasker.apply_many`
-- now takes such records too (kind `result`), so a worker's `PlanWriter` sends every result
-- finished while the previous batch was on its way in one transaction. Each record answers
-- as it would alone: it locks only its step's row, as before.

CREATE OR REPLACE FUNCTION tasker.apply_many(ps jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    item jsonb;
    answers jsonb := '[]'::jsonb;
BEGIN
    FOR item IN SELECT i.value FROM jsonb_array_elements(ps) WITH ORDINALITY i
                ORDER BY i.ordinality
    LOOP
        IF NOT item->>'kind' = ANY (ARRAY['create', 'claim', 'record', 'result']) THEN
            RAISE EXCEPTION 'tasker.apply_many: unknown kind %', item->'kind';
        END IF;
        answers := answers || jsonb_build_array(CASE item->>'kind'
            WHEN 'create' THEN tasker.create_task_claiming(item->'p')
            WHEN 'claim' THEN tasker.apply_plan_claiming(item->'p')
            WHEN 'record' THEN tasker.apply_plan_recording(item->'p')
            WHEN 'result' THEN tasker.record_result(item->'p')
        END);
    END LOOP;
    RETURN answers;
END
$$;
