-- A batch's notifications sent by its own transaction.
--
-- Plans, new tasks and a worker's results are written in batches (`tasker.apply_many`,
-- `tasker_trio/store/postgres/_batches.py`), and the other processes learned of them from
-- the writing process's publisher: one more transaction, and one more round trip, after
-- each batch (`tasker_trio/db/publisher.py`). The batch now names what it announces, and
-- its own transaction sends those notifications: delivered when it commits, or never when
-- it rolls back. A process has one batch on its way at a time, so few commits wait for
-- each other on the notification lock (the reason why the statements themselves leave
-- notifying to the process, migration 0008).
--
-- `channels` and `payloads` pair up as in the publisher's statement; each payload gets the
-- connection's origin appended, as `tasker.notify` does.

CREATE FUNCTION tasker.apply_many(ps jsonb, channels text[], payloads text[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    answers jsonb;
BEGIN
    answers := tasker.apply_many(ps);
    PERFORM pg_notify(n.c, n.p || coalesce('|' || nullif(current_setting('tasker.origin', true),
                                                          ''), ''))
    FROM unnest(channels, payloads) AS n(c, p);
    RETURN answers;
END
$$;
