"""The asyncio loop of the bridge: trio-asyncio's, running ready callbacks in batches.

trio-asyncio runs each asyncio callback in a pass of Trio's scheduler of its own: the loop
task takes one callback from its queue, runs it, and waits on the queue again — a Trio
checkpoint, and an ``epoll`` call, per callback. One asyncpg round trip is a chain of
callbacks (the task starts, the query is written, the socket turns readable, the answer is
parsed, the future resolves, the task resumes...), so a crossing cost several scheduler
passes. `open_asyncio_loop` opens trio-asyncio's loop and makes it run, after each callback
it waited for, every callback that is ready by then (up to `BATCH`), as asyncio's own loop
does in one iteration. The order of callbacks is unchanged. This halves the cost of a
crossing (`bench/README.md`).

It uses trio-asyncio internals (``_main_loop_one(no_wait=True)``, which raises
`trio.WouldBlock` on an empty queue); when the installed trio-asyncio lacks them the loop
runs unbatched, as before, and `batched` says so.
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_asyncio  # type: ignore[import-untyped]

_log = logging.getLogger("tasker_trio.db")

BATCH = 64
"""The most ready callbacks run after a waited-for one before Trio runs other tasks."""


@asynccontextmanager
async def open_asyncio_loop() -> AsyncIterator[Any]:
    """trio-asyncio's loop (``trio_asyncio.open_loop``), running ready callbacks in batches."""
    async with trio_asyncio.open_loop() as loop:
        _batch_callbacks(loop)
        yield loop


def batched(loop: Any) -> bool:
    """Whether ``loop`` runs its ready callbacks in batches."""
    return getattr(loop, "_tasker_batched", False) is True


def _batch_callbacks(loop: Any) -> None:
    one = getattr(loop, "_main_loop_one", None)
    if one is None or "no_wait" not in inspect.signature(one).parameters:
        _log.debug("trio-asyncio %s: asyncio callbacks run one per pass", trio_asyncio.__version__)
        return

    async def main_loop_one(self: Any, no_wait: bool = False) -> None:
        await one(no_wait)
        if no_wait:
            return
        for _ in range(BATCH):
            if self._timers and self._timers[0]._when <= self.time():
                return  # a due timer: the next pass takes it first, as it would have
            try:
                await one(True)
            except trio.WouldBlock:
                return

    # The loop task looks the method up on each pass: from the next one on, it batches.
    loop._main_loop_one = types.MethodType(main_loop_one, loop)
    loop._tasker_batched = True
