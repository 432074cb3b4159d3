-- A new task's steps and edges no longer have their task and steps checked on insert.
--
-- `tasker.steps` referenced its task, and `tasker.edges` its task and both its steps, with
-- foreign keys: creating a linear task of four steps ran 13 key checks (one per step, three
-- per edge) and one more when the plan claimed its first step, each a look-up and a
-- `FOR KEY SHARE` lock on a row the same transaction had just inserted (a header write and
-- a WAL record). Only `tasker.create_task` writes these rows, right after the task and the
-- steps they name, in one transaction: the checks could not fail. Without them the server
-- time of `tasker.create_task` fell from ~280 to ~150 us (`bench/README.md`, session 9),
-- as for the audit records in migration 0020.
--
-- Deleting a task or a step still takes what referenced it along: the statement triggers of
-- migration 0020 now also delete a deleted task's steps and edges (its steps' audit records
-- and results go through the steps' trigger) and the edges of a deleted step. A task's dead
-- letters keep their foreign key (a dead letter is written only when a task is stuck).

ALTER TABLE tasker.steps DROP CONSTRAINT steps_task_uuid_fkey;
ALTER TABLE tasker.edges DROP CONSTRAINT edges_task_uuid_fkey,
                         DROP CONSTRAINT edges_from_step_uuid_fkey,
                         DROP CONSTRAINT edges_to_step_uuid_fkey;

CREATE OR REPLACE FUNCTION tasker.forget_deleted_steps() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.step_transition_log l USING deleted_steps d
    WHERE l.step_uuid = d.step_uuid;
    DELETE FROM tasker.step_results r USING deleted_steps d
    WHERE r.step_uuid = d.step_uuid;
    DELETE FROM tasker.edges e USING deleted_steps d
    WHERE e.from_step_uuid = d.step_uuid OR e.to_step_uuid = d.step_uuid;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tasker.forget_deleted_tasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.task_transition_log l USING deleted_tasks d
    WHERE l.task_uuid = d.task_uuid;
    DELETE FROM tasker.edges e USING deleted_tasks d
    WHERE e.task_uuid = d.task_uuid;
    DELETE FROM tasker.steps s USING deleted_tasks d
    WHERE s.task_uuid = d.task_uuid;
    RETURN NULL;
END
$$;
