-- A task request's message deleted by the transaction that creates its task.
--
-- A `serve` process deleted each request it had turned into a task with a statement of its
-- own, after the task's creation committed: one more round trip and commit per task, and a
-- window in which a crash left the request to be taken again (creating nothing the second
-- time: its identity finds the task). `tasker.create_task_claiming` now deletes the
-- messages its payload names as `consumed` ([{queue, msg_id}], as a plan's), in the same
-- transaction — also when the task exists already: the request is done with either way.

CREATE OR REPLACE FUNCTION tasker.create_task_claiming(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    outcome jsonb;
    batch record;
BEGIN
    outcome := tasker.create_task(p);
    FOR batch IN
        SELECT c.value->>'queue' AS queue, array_agg((c.value->>'msg_id')::bigint) AS ids
        FROM jsonb_array_elements(coalesce(p->'consumed', '[]')) c
        GROUP BY 1
    LOOP
        PERFORM tasker.q_delete_many(batch.queue, batch.ids);
    END LOOP;
    IF NOT (outcome->>'created')::boolean THEN
        RETURN outcome || jsonb_build_object('claims', '[]'::jsonb);
    END IF;
    RETURN outcome || jsonb_build_object('claims', tasker.send_and_claim(p));
END
$$;
