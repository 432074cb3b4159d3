"""Benchmark of the actor runtime's ask path against a direct call and a bare channel floor.

Prints one JSON object. Every figure is measured in the same run, on the same machine:

- ``floor``: the bare Trio memory-channel round trip a hand-written RPC would do — the client
  sends ``(payload, reply_channel)`` on a bounded request channel and awaits its own
  one-slot reply channel; one server task ``async for``-s the requests and sends the reply.
- ``direct``: ``await actor.handler(msg)`` — the same work with no messaging at all.
- ``ask``: ``await ref.ask(msg)`` to an actor with one handler task (``ask_c8_handlers8``:
  eight handler tasks).

Latency (p50, p99, in microseconds) is per round trip with one caller; throughput (per
second) is with 1 and with 8 concurrent callers. ``ratios`` compares ``ask`` to the floor:
the targets are ``ask_p50_over_floor <= 2`` and ``ask_c8_throughput_over_floor >= 0.5``.

Run with ``PYTHONPATH=. .venv/bin/python bench/actors.py [--rounds N]`` from the repository
root (or plain ``python bench/actors.py`` once the package is installed).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from tasker_trio.actors import Actor, Message, handles, open_registry


@attrs.frozen(kw_only=True)
class Echo(Message[int]):
    """A request whose reply is its payload plus one."""

    payload: int


class EchoActor(Actor[None]):
    """Replies to `Echo` at once."""

    mailbox_capacity = 64

    @handles(Echo)
    async def echo(self, msg: Echo) -> int:
        return msg.payload + 1


class WideEchoActor(EchoActor):
    """`EchoActor` with eight handler tasks."""

    concurrency = 8


RoundTrip = Callable[[int], Awaitable[Any]]


async def _latencies(round_trip: RoundTrip, rounds: int) -> dict[str, float]:
    """Per-call latency of ``round_trip`` with one caller, in microseconds."""
    for i in range(min(1000, rounds)):  # warm up
        await round_trip(i)
    samples = []
    clock = time.perf_counter
    for i in range(rounds):
        began = clock()
        await round_trip(i)
        samples.append(clock() - began)
    samples.sort()
    return {
        "p50_us": round(samples[len(samples) // 2] * 1e6, 2),
        "p99_us": round(samples[int(len(samples) * 0.99)] * 1e6, 2),
        "mean_us": round(statistics.fmean(samples) * 1e6, 2),
    }


async def _throughput(make_caller: Callable[[], RoundTrip], callers: int, rounds: int) -> float:
    """Round trips per second with ``callers`` concurrent callers sharing ``rounds`` calls."""
    per_caller = rounds // callers

    async def run(round_trip: RoundTrip) -> None:
        for i in range(per_caller):
            await round_trip(i)

    round_trips = [make_caller() for _ in range(callers)]
    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for round_trip in round_trips:
            nursery.start_soon(run, round_trip)
    return round(per_caller * callers / (time.perf_counter() - began), 1)


async def _measure(rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        requests, incoming = trio.open_memory_channel[tuple[int, Any]](64)

        async def serve() -> None:
            async for payload, reply in incoming:
                await reply.send(payload + 1)

        nursery.start_soon(serve)

        def floor_caller() -> RoundTrip:
            reply_send, reply_receive = trio.open_memory_channel[int](1)

            async def round_trip(i: int) -> int:
                await requests.send((i, reply_send))
                return await reply_receive.receive()

            return round_trip

        results["floor"] = await _latencies(floor_caller(), rounds)
        results["floor"]["c1_per_s"] = await _throughput(floor_caller, 1, rounds)
        results["floor"]["c8_per_s"] = await _throughput(floor_caller, 8, rounds)
        nursery.cancel_scope.cancel()

    actor = EchoActor(None)

    def direct_caller() -> RoundTrip:
        async def round_trip(i: int) -> int:
            return await actor.echo(Echo(payload=i))

        return round_trip

    results["direct"] = await _latencies(direct_caller(), rounds)
    results["direct"]["c1_per_s"] = await _throughput(direct_caller, 1, rounds)

    async with open_registry(None, [EchoActor, WideEchoActor]) as registry:
        for key, actor_type in (("ask", EchoActor), ("ask_c8_handlers8", WideEchoActor)):
            ref = registry.ref(actor_type)

            def ask_caller(ref: Any = ref) -> RoundTrip:
                async def round_trip(i: int) -> int:
                    return int(await ref.ask(Echo(payload=i)))

                return round_trip

            results[key] = await _latencies(ask_caller(), rounds)
            results[key]["c1_per_s"] = await _throughput(ask_caller, 1, rounds)
            results[key]["c8_per_s"] = await _throughput(ask_caller, 8, rounds)
        results["ask"]["handle_latency_p50_us"] = round(
            (registry.ref(EchoActor).statistics().latency_p50 or 0) * 1e6, 2
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000, help="round trips per figure")
    args = parser.parse_args()
    results = trio.run(_measure, args.rounds)
    floor, ask = results["floor"], results["ask"]
    results["ratios"] = {
        "ask_p50_over_floor": round(ask["p50_us"] / floor["p50_us"], 3),
        "ask_p99_over_floor": round(ask["p99_us"] / floor["p99_us"], 3),
        "ask_c1_throughput_over_floor": round(ask["c1_per_s"] / floor["c1_per_s"], 3),
        "ask_c8_throughput_over_floor": round(ask["c8_per_s"] / floor["c8_per_s"], 3),
        "direct_p50_over_floor": round(results["direct"]["p50_us"] / floor["p50_us"], 3),
    }
    results["targets_met"] = (
        results["ratios"]["ask_p50_over_floor"] <= 2.0
        and results["ratios"]["ask_c8_throughput_over_floor"] >= 0.5
    )
    results["rounds"] = args.rounds
    results["python"] = platform.python_version()
    results["trio"] = trio.__version__
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
