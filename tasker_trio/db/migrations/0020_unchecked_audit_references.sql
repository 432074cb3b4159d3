-- The audit records and step results no longer have their entity checked on every insert.
--
-- `tasker.step_transition_log`, `tasker.task_transition_log` and `tasker.step_results`
-- referenced their step or task with a foreign key, so each of their rows (8.5 per step of a
-- linear task) ran the key's check: a look-up of the step or task row and a `FOR KEY SHARE`
-- lock on it — a row the writing plan had itself just locked and updated, so the lock wrote
-- the row's header again and a WAL record. Only the store's functions write these rows,
-- each for a step or task it holds locked (or has just created) in the same transaction:
-- the check could never fail there. Without it a plan's server time fell by ~15-20%
-- (`bench/README.md`, session 8).
--
-- Deleting a task or a step still takes its audit records and results with it: a statement
-- trigger on each does what `ON DELETE CASCADE` did, once per statement, for every row it
-- deleted (a task's steps go with it through their own foreign key, as before, and their
-- records through the steps' trigger).

ALTER TABLE tasker.step_transition_log DROP CONSTRAINT step_transitions_step_uuid_fkey;
ALTER TABLE tasker.task_transition_log DROP CONSTRAINT task_transitions_task_uuid_fkey;
ALTER TABLE tasker.step_results DROP CONSTRAINT step_results_step_uuid_fkey;

CREATE FUNCTION tasker.forget_deleted_steps() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.step_transition_log l USING deleted_steps d
    WHERE l.step_uuid = d.step_uuid;
    DELETE FROM tasker.step_results r USING deleted_steps d
    WHERE r.step_uuid = d.step_uuid;
    RETURN NULL;
END
$$;

CREATE TRIGGER steps_forget_deleted AFTER DELETE ON tasker.steps
REFERENCING OLD TABLE AS deleted_steps
FOR EACH STATEMENT EXECUTE FUNCTION tasker.forget_deleted_steps();

CREATE FUNCTION tasker.forget_deleted_tasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.task_transition_log l USING deleted_tasks d
    WHERE l.task_uuid = d.task_uuid;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_forget_deleted AFTER DELETE ON tasker.tasks
REFERENCING OLD TABLE AS deleted_tasks
FOR EACH STATEMENT EXECUTE FUNCTION tasker.forget_deleted_tasks();
