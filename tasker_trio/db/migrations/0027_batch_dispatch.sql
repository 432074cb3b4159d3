-- `tasker.apply_many` runs only the set writers its batch needs.
--
-- A batch of one plan is the latency path (one task at a time): each of its ~16 statements
-- costs, and `tasker.apply_many` added three of its own to every batch — the kind check,
-- `tasker.record_set` (a query that finds no worker result in a batch of plans), and the
-- loop gathering the answers — besides `tasker.apply_set` on a batch that creates a task
-- (two queries that find no plan to write as a set). They are now skipped when a simple
-- expression on the batch says they would do nothing: `jsonb_path_exists` (no query) tells
-- whether the batch has a kind other than the four, a `claim` or `record` plan, a
-- `result`; and a batch of one plan answered by a set writer returns that answer as it is.
-- What each batch writes and answers is that of migration 0026.

CREATE OR REPLACE FUNCTION tasker.apply_many(ps jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    item record;
    unknown jsonb;
    applied jsonb := '{}';
    answers jsonb := '[]'::jsonb;
BEGIN
    IF jsonb_path_exists(
        ps, '$[*] ? (!(@.kind == "create" || @.kind == "claim" || @.kind == "record"
                       || @.kind == "result"))') THEN
        SELECT i.value->'kind' INTO unknown FROM jsonb_array_elements(ps) i
        WHERE NOT coalesce(i.value->>'kind' = ANY (ARRAY['create', 'claim', 'record', 'result']),
                           false)
        LIMIT 1;
        RAISE EXCEPTION 'tasker.apply_many: unknown kind %', unknown;
    END IF;
    IF jsonb_path_exists(ps, '$[*] ? (@.kind == "claim" || @.kind == "record")') THEN
        applied := tasker.apply_set(ps);
    END IF;
    IF jsonb_path_exists(ps, '$[*] ? (@.kind == "result")') THEN
        applied := applied || tasker.record_set(ps);
    END IF;
    IF jsonb_array_length(ps) = 1 AND applied ? '1' THEN
        RETURN jsonb_build_array(applied->'1');
    END IF;
    FOR item IN SELECT i.value, i.ordinality FROM jsonb_array_elements(ps) WITH ORDINALITY i
                ORDER BY i.ordinality
    LOOP
        answers := answers || jsonb_build_array(coalesce(applied->(item.ordinality::text),
            CASE item.value->>'kind'
                WHEN 'create' THEN tasker.create_task_claiming(item.value->'p')
                WHEN 'claim' THEN tasker.apply_plan_claiming(item.value->'p')
                WHEN 'record' THEN tasker.apply_plan_recording(item.value->'p')
                WHEN 'result' THEN tasker.record_result(item.value->'p')
            END));
    END LOOP;
    RETURN answers;
END
$$;
