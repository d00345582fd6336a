"""The hand-off between caller loops and the home loop: pairing, order, chunked delivery."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from batch_requests.dynamic import InProcessBatcher, handoff
from batch_requests.dynamic.split import Failed


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Threads switch every 10 µs instead of 5 ms, so producers really interleave."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


class Tag:
    """A stand-in waiter that names the item it was handed over with."""

    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item


def test_inbox_keeps_each_item_with_its_waiter_under_many_producer_threads(
    busy_switching: None,
) -> None:
    loop = asyncio.new_event_loop()
    accepted: list[tuple[Any, Tag]] = []
    drains = [0]

    def accept(items: list[Any], waiters: list[Tag]) -> None:
        drains[0] += 1
        accepted.extend(zip(items, waiters, strict=True))

    inbox = handoff.Inbox(loop, accept)
    home = threading.Thread(target=loop.run_forever)
    home.start()
    threads, per_thread = 8, 3000
    start = threading.Barrier(threads)

    def produce(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            item = (t, i)
            inbox.put(item, Tag(item))
            if i % 100 == 99:
                time.sleep(0)  # a yield point, not a wait: the GIL goes to another producer

    try:
        producers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
        for producer in producers:
            producer.start()
        for producer in producers:
            producer.join(60)

        async def last_drain() -> None:
            inbox.drain()

        asyncio.run_coroutine_threadsafe(last_drain(), loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        home.join(30)
        loop.close()
    assert len(inbox) == 0
    assert len(accepted) == threads * per_thread
    assert all(waiter.item is item for item, waiter in accepted)
    for t in range(threads):  # each producer's items in the order it put them
        assert [i for (tt, i), _ in accepted if tt == t] == list(range(per_thread))
    switches = sum(a[0][0] != b[0][0] for a, b in zip(accepted, accepted[1:], strict=False))
    assert switches > threads, "the producers never interleaved: the test proves nothing"
    assert drains[0] > 1


def test_callers_of_two_loops_share_batches_and_each_gets_its_own_result(
    busy_switching: None,
) -> None:
    batches: list[list[tuple[int, int]]] = []

    async def double(items: list[tuple[int, int]]) -> list[tuple[int, int]]:
        batches.append(list(items))
        return [(t, i * 2) for t, i in items]

    batcher = InProcessBatcher(double, max_batch_size=64, max_wait=0.05,
                               max_concurrent_batches=1)
    start = threading.Barrier(2)
    n = 2000

    def caller(t: int) -> list[tuple[int, int]]:
        async def main() -> list[tuple[int, int]]:
            start.wait(30)
            return await asyncio.gather(*(batcher.acall((t, i)) for i in range(n)))

        return asyncio.run(main())

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(caller, range(2)))
    batcher.stop()
    assert results == [[(t, i * 2) for i in range(n)] for t in range(2)]
    assert any(len({t for t, _ in batch}) == 2 for batch in batches), "no batch mixed the loops"
    for t in range(2):  # each loop's items reach the function in the order they were called
        assert [i for batch in batches for tt, i in batch if tt == t] == list(range(n))


def test_results_reach_a_caller_loop_one_chunk_per_iteration() -> None:
    """Thousands of results for one loop are resolved a chunk at a time, each chunk's callers
    running before the next chunk is set (fewer objects alive at once for the cyclic GC)."""
    n = handoff.DELIVER_CHUNK * 3 + 5

    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(n)]
        done_at_first_resume: list[int] = []

        async def wait(fut: asyncio.Future[int]) -> int:
            result = await fut
            if not done_at_first_resume:
                done_at_first_resume.append(sum(f.done() for f in futures))
            return result

        tasks = [asyncio.ensure_future(wait(f)) for f in futures]
        await asyncio.sleep(0)
        box = handoff._Mailbox(loop)
        await asyncio.to_thread(box.post, futures, list(range(n)))  # as the home loop does
        results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        assert not box.woken and not box.waiters and not box.results
        return results, done_at_first_resume[0]

    results, done = asyncio.run(main())
    assert results == list(range(n))
    assert done == handoff.DELIVER_CHUNK


def test_delivered_errors_fail_their_callers_and_cancelled_callers_are_skipped() -> None:
    async def main() -> list[asyncio.Future[Any]]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(handoff.DELIVER_CHUNK + 4)]
        futures[3].cancel()
        returned = ValueError("returned")
        results: list[Any] = [1, Failed(KeyError("raised")), returned, 4]
        results += list(range(len(futures) - 4))
        await asyncio.to_thread(handoff._mailbox(loop).post, futures, results)
        await asyncio.wait_for(asyncio.wait(futures), 30)
        assert futures[2].exception() is returned
        return futures

    futures = asyncio.run(main())
    assert futures[0].result() == 1
    with pytest.raises(KeyError):
        futures[1].result()
    assert futures[3].cancelled()
    assert [f.result() for f in futures[4:]] == list(range(len(futures) - 4))


def test_results_for_a_loop_closed_before_its_delivery_are_dropped_not_kept() -> None:
    """A loop closed with a delivery still due (its callers gone) holds no results after."""
    loop = asyncio.new_event_loop()
    box = handoff._Mailbox(loop)
    futures = [loop.create_future() for _ in range(handoff.DELIVER_CHUNK * 2)]
    box.post(futures[:handoff.DELIVER_CHUNK], list(range(handoff.DELIVER_CHUNK)))
    assert box.woken  # a deliver is scheduled on the loop, which never runs it
    loop.close()
    box.post(futures[handoff.DELIVER_CHUNK:], list(range(handoff.DELIVER_CHUNK)))
    assert not box.waiters and not box.results and not box.woken
    assert not any(f.done() for f in futures)
