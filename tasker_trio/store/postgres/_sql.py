"""The SQL statements of the PostgreSQL store, and the state names they take as parameters.

Most statements call the ``tasker.*`` functions the migrations install
(``tasker_trio/db/migrations``), so an operation is one round trip.
"""

from __future__ import annotations

from tasker_trio.state_machine import StepEvent, StepState, TaskState, transition

VIEW = "SELECT tasker.task_view($1)"
# The batch comes as JSON text its plans' callers encoded (`PlanWriter`).
APPLY_MANY = "SELECT tasker.apply_many($1::text::jsonb)"
APPLY_MANY_NOTIFYING = "SELECT tasker.apply_many($1::text::jsonb, $2::text[], $3::text[])"
# The same, committed without waiting for the WAL flush (durability="outcomes"): the setting
# is local to the statement's own transaction.
RELAXED = ", set_config('synchronous_commit', 'off', true)"
DELETE_CONSUMED = """
SELECT tasker.q_delete(c.value->>'queue', (c.value->>'msg_id')::bigint)
FROM jsonb_array_elements($1::jsonb) c
"""
CLAIM = "SELECT tasker.claim_step($1::jsonb)"
CLAIM_FROM_QUEUE = "SELECT * FROM tasker.claim_from_queue($1::jsonb)"
READ_WITH_VIEWS = "SELECT * FROM tasker.read_with_views($1, $2, $3, $4)"
EXTEND = """
UPDATE tasker.steps
SET lease_expires_at = $3,
    data = data || jsonb_build_object('lease_expires_at', tasker.jnum($3))
WHERE step_uuid = $1 AND attempts = $2 AND state = $4
RETURNING true
"""
TASK = "SELECT data FROM tasker.tasks WHERE task_uuid = $1"
STEP = "SELECT data FROM tasker.steps WHERE step_uuid = $1"
TASKS = "SELECT data FROM tasker.tasks ORDER BY seq"
TASKS_IN = "SELECT data FROM tasker.tasks WHERE state = ANY($1::text[]) ORDER BY seq"
TRANSITIONS = """
SELECT 'task' AS entity_kind, task_uuid AS entity_id, from_state, to_state, event, at,
       processor_id, metadata, sort_key, most_recent
FROM tasker.task_transitions WHERE task_uuid = $1
UNION ALL
SELECT 'step', step_uuid, from_state, to_state, event, at, processor_id, metadata, sort_key,
       most_recent
FROM tasker.step_transitions WHERE step_uuid = $1
ORDER BY sort_key
"""
RESULTS = "SELECT data FROM tasker.step_results WHERE step_uuid = $1 ORDER BY id"
RETRY_TIMES = """
SELECT s.task_uuid, min(s.next_retry_at) AS due
FROM tasker.steps s JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
WHERE s.state = $1 AND s.next_retry_at IS NOT NULL AND NOT (t.state = ANY($2::text[]))
GROUP BY s.task_uuid
"""
DUE = f"SELECT task_uuid FROM ({RETRY_TIMES}) r WHERE due <= $3 ORDER BY task_uuid"
EARLIEST = f"SELECT min(due) FROM ({RETRY_TIMES}) r"
DEAD_COLUMNS = """entry_id, task_uuid, reason, details, snapshot, created_at, status,
                   resolved_at, resolution"""
DEAD_LETTERS = f"""
SELECT {DEAD_COLUMNS} FROM tasker.dead_letters
WHERE $1 OR status = 'pending' ORDER BY seq
"""
RESOLVE = f"""
UPDATE tasker.dead_letters SET status = 'resolved', resolved_at = $2, resolution = $3
WHERE entry_id = $1
RETURNING {DEAD_COLUMNS}
"""

TERMINAL = [str(s) for s in TaskState if s.is_terminal]
SATISFIED = [str(StepState.COMPLETE), str(StepState.RESOLVED_MANUALLY)]
SUCCEEDED = transition(StepState.IN_PROGRESS, StepEvent.SUBMIT_SUCCESS)
FAILED = transition(StepState.IN_PROGRESS, StepEvent.SUBMIT_FAILURE)
CLAIMED = transition(StepState.ENQUEUED, StepEvent.START)
