"""Measure how fast another process's NOTIFY wakes a waiter here (not a test; run it).

    .venv/bin/python -m tests.postgres.measure_wakeup_latency [N]

Process A listens (hybrid mode); process B (its own `open_database`) runs
``SELECT pg_notify('tasker_queues', ...)``. For each round: ``send_to_wake`` is from B issuing
the statement to A's waiter running again; ``statement`` is B's round trip alone; ``after``
is from B's statement returning to A's waiter running (negative when the notification beats
B's own reply).
"""

from __future__ import annotations

import statistics
import sys
import time

import trio
import trio.lowlevel

from tasker_trio.db.signals import queue_key
from tests.postgres._database import fresh_database, open_process

NOTIFY = "SELECT pg_notify('tasker_queues', 'latency')"


async def main(rounds: int) -> None:
    async with fresh_database() as db, open_process(db.dsn, wakeups="poll") as b:
        send_to_wake, statement, after = [], [], []
        for _ in range(rounds):
            event = db.signals.event(queue_key("latency"))
            woke_at = 0.0

            async def waiter(event: trio.Event = event) -> None:
                nonlocal woke_at
                await event.wait()
                woke_at = time.perf_counter()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                await trio.lowlevel.checkpoint()
                start = time.perf_counter()
                await b.db.fetchval(NOTIFY)
                returned = time.perf_counter()
            send_to_wake.append(woke_at - start)
            statement.append(returned - start)
            after.append(woke_at - returned)
        for name, values in [
            ("send_to_wake", send_to_wake),
            ("statement", statement),
            ("after", after),
        ]:
            ms = sorted(v * 1000 for v in values)
            print(
                f"{name:13} p50 {statistics.median(ms):.3f} ms   "
                f"p95 {ms[int(len(ms) * 0.95)]:.3f} ms   (n={len(ms)})"
            )


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 500)
