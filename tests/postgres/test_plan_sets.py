"""A batch's plans and a worker's results applied as sets (`tasker.apply_set`,
`tasker.record_set`: migrations 0022 and 0026).

A batch takes the plans it can apply together — one statement per table for all of them —
and applies the others one by one after them. Whatever it takes, each plan must answer and
write what it would have answered and written alone: here every batch of a real workload
is first applied twice on its own connection, each time rolled back — as a batch, and plan
by plan as before 0022 — and both must leave the same rows and give the same answers; so
is each batch with its first plan twice (a task's two plans in one batch), with its first
plan stale, and with an earlier batch's new task again (its identity taken).
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trio

from tasker_trio import TaskState, open_engine
from tasker_trio.db import Database
from tasker_trio.store.postgres._batches import PlanWriter, _Plan
from tests.postgres._workloads import NAMESPACE, expected_results, write_templates

ONE_BY_ONE = """
CREATE FUNCTION pg_temp.one_by_one(ps jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    item jsonb;
    answers jsonb := '[]';
BEGIN
    FOR item IN SELECT i.value FROM jsonb_array_elements(ps) WITH ORDINALITY i
                ORDER BY i.ordinality
    LOOP
        answers := answers || jsonb_build_array(CASE item->>'kind'
            WHEN 'create' THEN tasker.create_task_claiming(item->'p')
            WHEN 'claim' THEN tasker.apply_plan_claiming(item->'p')
            WHEN 'record' THEN tasker.apply_plan_recording(item->'p')
            WHEN 'result' THEN tasker.record_result(item->'p')
        END);
    END LOOP;
    RETURN answers;
END
$$
"""

# Every row a plan writes, but for the numbers sequences give (ids, message ids).
ROWS = """
SELECT concat_ws(E'\\n',
    (SELECT string_agg(t::text, ',' ORDER BY t.task_uuid)
     FROM (SELECT task_uuid, state, version, updated_at, data FROM tasker.tasks) t),
    (SELECT string_agg(s::text, ',' ORDER BY s.step_uuid)
     FROM (SELECT step_uuid, state, attempts, next_retry_at, lease_expires_at, data
           FROM tasker.steps) s),
    (SELECT string_agg(l::text, ',' ORDER BY l.step_uuid, l.sort_key)
     FROM (SELECT step_uuid, sort_key, from_state, to_state, event, at, processor_id, metadata
           FROM tasker.step_transition_log) l),
    (SELECT string_agg(l::text, ',' ORDER BY l.task_uuid, l.sort_key)
     FROM (SELECT task_uuid, sort_key, from_state, to_state, event, at, processor_id, metadata
           FROM tasker.task_transition_log) l),
    (SELECT string_agg(r::text, ',' ORDER BY r::text)
     FROM (SELECT step_uuid, attempt, accepted, data FROM tasker.step_results) r),
    (SELECT string_agg(d::text, ',' ORDER BY d::text)
     FROM (SELECT task_uuid, reason, details, snapshot, created_at, status
           FROM tasker.dead_letters) d))
"""


# What the batch's set takes: the answers by position.
TAKEN = "SELECT tasker.apply_set($1::text::jsonb) || tasker.record_set($1::text::jsonb)"

TABLES = [
    "tasker.tasks",
    "tasker.steps",
    "tasker.step_transition_log",
    "tasker.task_transition_log",
    "tasker.step_results",
    "tasker.dead_letters",
]


def _queue_rows(queues: list[str]) -> str:
    """The messages of ``queues``, but for their ids."""
    parts = [
        f"(SELECT '{q}:' || coalesce(string_agg(m::text, ',' ORDER BY m::text), '')"
        f" FROM (SELECT enqueued_at, vt, read_ct, message FROM pgmq.q_{q}) m)"
        for q in queues
    ]
    return "SELECT concat_ws(E'\\n', ''" + "".join(", " + part for part in parts) + ")"


def _canonical(answers: Any) -> str:
    """The answers as JSON text (``false`` is not ``0``), but for their message ids."""
    return json.dumps(_without_ids(answers), sort_keys=True)


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "msg_id"}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


class Comparison:
    """Applies each batch twice before it goes, rolled back; counts what it saw."""

    def __init__(self) -> None:
        self.batches = 0
        self.skipped = 0
        self.mixed = 0  # batches with plans taken as a set and plans left to go one by one
        self.taken = 0
        self.created: list[dict[str, Any]] = []  # the new tasks of the batches sent
        self.differences: list[str] = []

    async def compare(self, conn: Any, batch: list[_Plan]) -> None:
        """The batch as it goes; with its first plan twice (a task's two plans in one batch:
        neither is taken, the second is refused); with its first plan stale (refused); with
        an earlier batch's new task again (its identity exists: not created)."""
        items = [json.loads(p.encoded) for p in sorted(batch, key=lambda p: p.task_uuid)]
        stale = copy.deepcopy(items[0])
        stale["p"]["version"] = 10**6
        variants = [items, [items[0], *items], [stale, *items[1:]]]
        if self.created:
            variants.append([*items, self.created[-1]])
        for variant in variants:
            await self._compare(conn, variant)
        self.created += [item for item in items if item["kind"] == "create"]

    async def _compare(self, conn: Any, batch: list[dict[str, Any]]) -> None:
        items = json.dumps(batch)
        if not await conn.fetchval("SELECT to_regproc('pg_temp.one_by_one') IS NOT NULL"):
            await conn.execute(ONE_BY_ONE)
        queues = sorted(
            r["queue_name"] for r in await conn.fetch("SELECT queue_name FROM pgmq.meta")
        )
        rows = f"SELECT ({ROWS}) || ({_queue_rows(queues)})"
        tables = ", ".join([*TABLES, *(f"pgmq.q_{q}" for q in queues)])
        try:
            async with conn.transaction():
                # Both on the same rows: the engine's other connections wait meanwhile (or
                # this batch goes uncompared, rather than deadlock with one of them).
                await conn.execute("SET LOCAL lock_timeout = '500ms'")
                await conn.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
                taken = await _rolled_back(conn, TAKEN, items)
                together = await _rolled_back(
                    conn, "SELECT tasker.apply_many($1::text::jsonb)", items, rows
                )
                alone = await _rolled_back(
                    conn, "SELECT pg_temp.one_by_one($1::text::jsonb)", items, rows
                )
        except asyncpg.LockNotAvailableError:
            self.skipped += 1
            return
        self.batches += 1
        self.taken += len(taken or {})
        self.mixed += 0 < len(taken or {}) < len(batch)
        if _canonical(together[0]) != _canonical(alone[0]):
            self.differences.append(f"answers of {items}:\n{together[0]}\n{alone[0]}")
        if together[1] != alone[1]:
            self.differences.append(f"rows after {items}")


async def _rolled_back(conn: Any, statement: str, items: str, rows: str | None = None) -> Any:
    """What ``statement`` returns, and then the ``rows`` query, in a savepoint rolled back."""
    savepoint = conn.transaction()
    await savepoint.start()
    try:
        answer = await conn.fetchval(statement, items)
        return answer if rows is None else (answer, await conn.fetchval(rows))
    finally:
        await savepoint.rollback()


@pytest.mark.parametrize("split", [False, True], ids=["one engine", "orchestrator and worker"])
async def test_a_batch_answers_and_writes_what_its_plans_would_one_by_one(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool
) -> None:
    # Split, as `serve` and `worker` processes: the worker records every result in batches
    # of its own, and the orchestrator's plans consume the notices.
    comparison = Comparison()
    send = PlanWriter._send

    async def compared(self: PlanWriter, batch: list[_Plan], conn: Any) -> None:
        await comparison.compare(conn, batch)
        await send(self, batch, conn)

    monkeypatch.setattr(PlanWriter, "_send", compared)
    shapes = ["fanout", "diamond", "linear"] * 4
    templates = write_templates(tmp_path / "templates")
    async with contextlib.AsyncExitStack() as stack:
        engine = await stack.enter_async_context(
            open_engine(templates, database=database, worker_concurrency=16, workers=not split)
        )
        if split:
            await stack.enter_async_context(
                open_engine(
                    database=database,
                    orchestration=False,
                    namespaces=[NAMESPACE],
                    worker_concurrency=16,
                )
            )
        uuids: list[tuple[str, int, str]] = []

        async def submit(n: int, shape: str) -> None:
            submitted = await engine.submit(NAMESPACE, shape, {"n": n})
            uuids.append((shape, n, submitted.task_uuid))

        async with trio.open_nursery() as nursery:
            for n, shape in enumerate(shapes):
                nursery.start_soon(submit, n, shape)
        for shape, n, task_uuid in uuids:
            task = await engine.wait_for_task(task_uuid, timeout=60)
            assert task.state == TaskState.COMPLETE
            results = {s.name: s.results["value"] for s in await engine.get_steps(task_uuid)}
            assert results == expected_results(shape, n)

    assert comparison.differences == []
    # The workload made batches of both kinds of plans: taken as a set, and left to go alone
    # (new tasks, a task's second plan in the same batch).
    assert comparison.batches > comparison.skipped
    assert comparison.taken > 0
    assert comparison.mixed > 0
