-- tasker schema, version 1: tasks, steps, edges, audit trails, results, dead letters.
--
-- Times are seconds on the engine's clock (epoch seconds in production) as double
-- precision, the same floats the models carry. Each task and step row keeps its whole model
-- as JSON in `data` (written through the models' to_json) plus copies of the fields the hot
-- queries filter on. `tasks.version` grows with every change to the task or its steps: the
-- store applies a plan only if the version it planned on is still current (compare-and-set
-- under the task's row lock).

CREATE TABLE tasker.tasks (
    task_uuid     text PRIMARY KEY,
    seq           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    identity_hash text NOT NULL UNIQUE,
    namespace     text NOT NULL,
    name          text NOT NULL,
    state         text NOT NULL,
    version       bigint NOT NULL DEFAULT 0,
    created_at    double precision NOT NULL,
    updated_at    double precision NOT NULL,
    data          jsonb NOT NULL
);
CREATE INDEX tasks_state_idx ON tasker.tasks (state, seq);

CREATE TABLE tasker.steps (
    step_uuid        text PRIMARY KEY,
    task_uuid        text NOT NULL REFERENCES tasker.tasks (task_uuid) ON DELETE CASCADE,
    position         integer NOT NULL,
    name             text NOT NULL,
    state            text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_retry_at    double precision,
    lease_expires_at double precision,
    data             jsonb NOT NULL,
    UNIQUE (task_uuid, position)
);
-- The retry timer's index: steps waiting for a retry, by when their backoff ends.
CREATE INDEX steps_waiting_for_retry_idx ON tasker.steps (next_retry_at, task_uuid)
    WHERE state = 'waiting_for_retry';

CREATE TABLE tasker.edges (
    task_uuid      text NOT NULL REFERENCES tasker.tasks (task_uuid) ON DELETE CASCADE,
    position       integer NOT NULL,
    from_step_uuid text NOT NULL REFERENCES tasker.steps (step_uuid) ON DELETE CASCADE,
    to_step_uuid   text NOT NULL REFERENCES tasker.steps (step_uuid) ON DELETE CASCADE,
    name           text NOT NULL,
    PRIMARY KEY (task_uuid, position)
);
CREATE INDEX edges_to_step_idx ON tasker.edges (to_step_uuid);

CREATE TABLE tasker.task_transitions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_uuid    text NOT NULL REFERENCES tasker.tasks (task_uuid) ON DELETE CASCADE,
    from_state   text NOT NULL,
    to_state     text NOT NULL,
    event        text NOT NULL,
    at           double precision NOT NULL,
    processor_id text,
    metadata     jsonb NOT NULL DEFAULT '{}',
    sort_key     integer NOT NULL,
    most_recent  boolean NOT NULL,
    UNIQUE (task_uuid, sort_key)
);
CREATE UNIQUE INDEX task_transitions_most_recent_idx ON tasker.task_transitions (task_uuid)
    WHERE most_recent;

CREATE TABLE tasker.step_transitions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_uuid    text NOT NULL REFERENCES tasker.steps (step_uuid) ON DELETE CASCADE,
    from_state   text NOT NULL,
    to_state     text NOT NULL,
    event        text NOT NULL,
    at           double precision NOT NULL,
    processor_id text,
    metadata     jsonb NOT NULL DEFAULT '{}',
    sort_key     integer NOT NULL,
    most_recent  boolean NOT NULL,
    UNIQUE (step_uuid, sort_key)
);
CREATE UNIQUE INDEX step_transitions_most_recent_idx ON tasker.step_transitions (step_uuid)
    WHERE most_recent;

-- Every result a worker reported, accepted or not (the audit behind Store.results_of).
CREATE TABLE tasker.step_results (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_uuid text NOT NULL REFERENCES tasker.steps (step_uuid) ON DELETE CASCADE,
    attempt   integer NOT NULL,
    accepted  boolean NOT NULL,
    data      jsonb NOT NULL
);
CREATE INDEX step_results_step_idx ON tasker.step_results (step_uuid, id);

CREATE SEQUENCE tasker.dead_letter_ids;

CREATE TABLE tasker.dead_letters (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id    text NOT NULL UNIQUE DEFAULT 'dlq-' || nextval('tasker.dead_letter_ids'),
    task_uuid   text NOT NULL REFERENCES tasker.tasks (task_uuid) ON DELETE CASCADE,
    reason      text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}',
    snapshot    jsonb NOT NULL DEFAULT '{}',
    created_at  double precision NOT NULL,
    status      text NOT NULL DEFAULT 'pending',
    resolved_at double precision,
    resolution  text
);
CREATE INDEX dead_letters_pending_idx ON tasker.dead_letters (seq) WHERE status = 'pending';

-- Why a queue message was archived: PGMQ's archive tables (pgmq.a_<queue>) have no reason
-- column, and adding one to PGMQ's own tables would break its upgrades.
CREATE TABLE tasker.archive_reasons (
    queue_name text NOT NULL,
    msg_id     bigint NOT NULL,
    reason     text NOT NULL,
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (queue_name, msg_id)
);

