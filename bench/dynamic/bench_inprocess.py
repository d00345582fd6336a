"""In-process: batch_requests.dynamic.InProcessBatcher against async-batcher, side by side.

10,000 concurrent callers in one event loop, a trivial async batch function, batch 64, wait 10 ms.
Rounds alternate between the two systems; the median round of each is printed.
Needs ``pip install async-batcher`` (bench only; see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from measure import Run, median_run, ratio

from batch_requests.dynamic import InProcessBatcher


async def trivial(items: list[int]) -> list[int]:
    return [i + 1 for i in items]


async def measure(system: str, call: Callable[[int], Awaitable[Any]], n: int) -> Run:
    latencies: list[float] = []

    async def one(i: int) -> None:
        start = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 120)
    return Run(system, n, len(latencies), time.perf_counter() - start, latencies)


async def ours(n: int, size: int, wait: float) -> Run:
    batcher = InProcessBatcher(trivial, max_batch_size=size, max_wait=wait,
                               max_concurrent_batches=4)
    run = await measure("batch_requests", batcher.acall, n)
    await batcher.astop()
    return run


async def theirs(n: int, size: int, wait: float) -> Run:
    from async_batcher.batcher import AsyncBatcher

    class Trivial(AsyncBatcher):
        async def process_batch(self, batch: list[int]) -> list[int]:
            return await trivial(batch)

    batcher = Trivial(max_batch_size=size, max_queue_time=wait, concurrency=4)
    run = await measure("async-batcher", batcher.process, n)
    await batcher.stop()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[Run]] = {"ours": [], "theirs": []}
    for _ in range(args.rounds):
        results["ours"].append(asyncio.run(ours(args.items, 64, 0.01)))
        results["theirs"].append(asyncio.run(theirs(args.items, 64, 0.01)))
    mine, peer = median_run(results["ours"]), median_run(results["theirs"])
    print(f"in-process, {args.items} concurrent items, batch 64, wait 10 ms, "
          f"median of {args.rounds} rounds")
    print(mine.line())
    print(peer.line())
    print(ratio(mine, peer))


if __name__ == "__main__":
    main()
