"""The bridge's asyncio loop runs ready callbacks in batches, in order, and starves nobody."""

from __future__ import annotations

import asyncio

import trio
import trio.lowlevel
import trio_asyncio  # type: ignore[import-untyped]

from tasker_trio.db.loop import BATCH, batched, open_asyncio_loop


async def test_the_loop_batches_with_the_installed_trio_asyncio() -> None:
    async with open_asyncio_loop() as loop:
        assert batched(loop)


async def test_callbacks_run_in_the_order_asyncio_gives_them() -> None:
    order: list[str] = []

    async def on_asyncio() -> None:
        running = asyncio.get_running_loop()
        done = running.create_future()

        def chain(n: int) -> None:
            order.append(f"chain{n}")
            if n < 3:
                running.call_soon(chain, n + 1)
            else:
                done.set_result(None)

        running.call_soon(chain, 0)
        running.call_soon(order.append, "second")
        running.call_later(0, order.append, "timer")
        await done
        await asyncio.sleep(0.01)

    async with open_asyncio_loop() as loop:
        await trio_asyncio.aio_as_trio(on_asyncio, loop=loop)()

    assert order.index("chain0") < order.index("second") < order.index("chain1")
    assert "timer" in order
    assert [o for o in order if o.startswith("chain")] == [f"chain{n}" for n in range(4)]


async def test_an_endless_asyncio_chain_leaves_trio_tasks_their_turn() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.lowlevel.checkpoint()
            ticks += 1

    async def flood() -> int:
        running = asyncio.get_running_loop()
        count = 0
        flooding = True

        def again() -> None:
            nonlocal count
            count += 1
            if flooding:
                running.call_soon(again)

        running.call_soon(again)
        await asyncio.sleep(0.05)
        flooding = False
        return count

    async with open_asyncio_loop() as loop, trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        flooded = await trio_asyncio.aio_as_trio(flood, loop=loop)()
        nursery.cancel_scope.cancel()

    assert flooded > BATCH
    assert ticks > flooded // (2 * BATCH)  # a Trio pass at least every BATCH callbacks
