-- Room for HOT updates of steps and tasks.
--
-- A step's row is rewritten two or three times in its life and a task's once per plan.
-- PostgreSQL can update a row in place of its page, touching no index (a HOT update), when
-- no indexed column changes and the page has room. Neither held: every step update changes
-- `state`, which the retry timer's partial index named in its predicate, and both tables
-- filled their pages. So every update wrote a new entry into each index: two for a step,
-- four for a task.
--
-- The retry timer's index now covers the steps with a `next_retry_at` (which its query
-- asks for), so only a change of that column (scheduling or leaving a retry) touches it,
-- and both tables leave a quarter of each page free for updated rows. Pages already full
-- keep no room until their rows move (VACUUM FULL or CLUSTER would repack them); new ones
-- do.

DROP INDEX tasker.steps_waiting_for_retry_idx;
CREATE INDEX steps_retry_due_idx ON tasker.steps (next_retry_at, task_uuid)
    WHERE next_retry_at IS NOT NULL;
ALTER TABLE tasker.steps SET (fillfactor = 75);
ALTER TABLE tasker.tasks SET (fillfactor = 75);
