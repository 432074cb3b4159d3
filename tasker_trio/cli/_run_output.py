"""What ``run`` prints about the task it follows: progress lines, then the final report.

`Progress` prints each step's state changes on standard error as they happen; `report` prints
the step results as JSON on standard output when the task completed, or on standard error
why it did not (the failed steps, the blocked ones, and any dead-letter entry).
"""

from __future__ import annotations

import json
import sys

from tasker_trio.engine_api import Engine
from tasker_trio.models import WorkflowStep
from tasker_trio.state_machine import StepState, TaskState

HAND_OVER_STATES = frozenset(
    {StepState.ENQUEUED_FOR_ORCHESTRATION, StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION}
)
"""Brief states between a worker and orchestration; the progress display skips them."""


class Progress:
    """Prints each step's new state changes, one line per step per look."""

    def __init__(self, engine: Engine, start: float) -> None:
        self._engine = engine
        self._start = start
        self._seen: dict[str, int] = {}  # step uuid -> sort_key of the last transition shown
        self._shown: dict[str, str] = {}  # step uuid -> the last state shown

    async def update(self, task_uuid: str) -> None:
        """Print what changed since the last call."""
        steps = await self._engine.get_steps(task_uuid)
        width = max((len(s.name) for s in steps), default=0)
        for step in steps:
            line = await self._changes(step)
            if line is not None:
                at, text = line
                print(f"[{at - self._start:8.3f}s] {step.name:<{width}}  {text}", file=sys.stderr)

    async def _changes(self, step: WorkflowStep) -> tuple[float, str] | None:
        last = self._seen.get(step.step_uuid, 0)
        if step.state == StepState.PENDING and last == 0:
            return None
        new = [
            t
            for t in await self._engine.get_transitions(step.step_uuid)
            if t.sort_key > last and t.to_state not in HAND_OVER_STATES
        ]
        if not new:
            return None
        self._seen[step.step_uuid] = max(t.sort_key for t in new)
        chain = [self._shown.get(step.step_uuid, new[0].from_state)]
        chain += [t.to_state for t in new]
        self._shown[step.step_uuid] = chain[-1]
        text = " → ".join(chain)
        attempt = next(
            (t.metadata["attempt"] for t in reversed(new) if "attempt" in t.metadata), None
        )
        if attempt is not None:
            text += f" (attempt {attempt})"
        error = step.last_error
        final = new[-1]
        if final.to_state in (StepState.WAITING_FOR_RETRY, StepState.ERROR) and error is not None:
            text += f": {error.error_type}: {error.message}"
            retry_at = final.metadata.get("next_retry_at")
            if final.to_state == StepState.WAITING_FOR_RETRY and retry_at is not None:
                text += f"; retry in {max(retry_at - final.at, 0.0):.3f}s"
        return final.at, text


async def report(engine: Engine, task_uuid: str, state: TaskState, start: float) -> int:
    """Print the results (complete) or why the task did not complete; the exit code."""
    elapsed = engine.now() - start
    steps = await engine.get_steps(task_uuid)
    if state == TaskState.COMPLETE:
        print(json.dumps({s.name: s.results for s in steps}, indent=2))
        print(f"task {task_uuid} complete: {len(steps)} steps in {elapsed:.3f}s", file=sys.stderr)
        return 0
    print(f"task {task_uuid} ended {state.value} after {elapsed:.3f}s", file=sys.stderr)
    for step in steps:
        if step.state in (StepState.ERROR, StepState.CANCELLED) or (
            step.last_error is not None and not step.state.satisfies_children
        ):
            print(f"  failed:  {describe_failure(step)}", file=sys.stderr)
    waiting = [s.name for s in steps if s.state == StepState.PENDING]
    if waiting:
        print(f"  blocked: {', '.join(waiting)} (waiting for the failed steps)", file=sys.stderr)
    for entry in await engine.dead_letters():
        if entry.task_uuid == task_uuid:
            print(
                f"  dead-letter entry {entry.entry_id} ({entry.reason}): an operator can "
                "reset, resolve or complete the failed steps (see docs/running.md)",
                file=sys.stderr,
            )
    return 1


def describe_failure(step: WorkflowStep) -> str:
    """``name (state after N attempts): ErrorType: message``."""
    plural = "attempt" if step.attempts == 1 else "attempts"
    text = f"{step.name} ({step.state.value} after {step.attempts} {plural})"
    if step.last_error is not None:
        text += f": {step.last_error.error_type}: {step.last_error.message}"
    return text
