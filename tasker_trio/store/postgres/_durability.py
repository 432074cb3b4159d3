"""Which commits wait for the disk: the store's ``durability``.

``full`` (the default): every commit waits until the write-ahead log is on disk.

``outcomes``: the plans that only move a task along — a result recorded, the next steps
claimed (`PostgresStore.apply` with ``durable=False``), and a worker's result records —
commit without waiting (`PlanWriter` sets ``synchronous_commit`` off for their batch's
transaction); a task's creation, its end (finished, or blocked with a dead letter) and
everything else still wait. PostgreSQL keeps a prefix of its commits through a crash, and a
waited-for commit takes every earlier one to the disk with it: a crash of the server may
lose the last moments of a task's progress, which is then done again (the steps' messages
reappear after their visibility timeout, as after a worker's crash), and never what a
client was told.
"""

from __future__ import annotations

from tasker_trio.state_machine import TaskState
from tasker_trio.store.plan import Plan, TaskView

DURABILITY_MODES = ("full", "outcomes")


def check_durability(durability: str) -> str:
    """``durability`` if it is one of `DURABILITY_MODES` (else `ValueError`)."""
    if durability not in DURABILITY_MODES:
        raise ValueError(
            f"unknown durability {durability!r}: use one of {', '.join(DURABILITY_MODES)}"
        )
    return durability


def relaxes(durability: str, plan: Plan, after: TaskView) -> bool:
    """Whether a plan that only moves its task along may commit without waiting for the
    disk: under ``outcomes``, unless it ends the task or dead-letters it."""
    state = after.task.state
    return (
        durability == "outcomes"
        and not state.is_terminal
        and state != TaskState.BLOCKED_BY_FAILURES
        and plan.dead_letter is None
    )
