"""One Redis client per process: callers on every loop and thread share it, and its batches.

Under WSGI each async view runs on its own short-lived event loop; those callers, sync callers
in threads and callers on the background loop all go through one client (one connection pool,
one reply list, one reader) on the home loop, which also survives a fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from dynamic_helpers import Recorder, wait_until  # noqa: E402

from batch_requests.dynamic import BatcherStoppedError, RedisBatcher, loop_thread  # noqa: E402


class CountingBatcher(RedisBatcher):
    """A RedisBatcher that counts the Redis clients it builds (one per home loop)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clients_made = 0

    def _new_redis(self, retries: int) -> Any:
        if retries:  # the sending side; the reader has its own connection
            self.clients_made += 1
        return super()._new_redis(retries)



def test_callers_on_many_loops_and_threads_share_one_client_and_its_batches(
    redis_url: str, worker_thread
) -> None:
    loops, threads = 20, 20
    total = loops + threads + 1
    recorder = Recorder()
    # A full batch leaves at once; the 10 s only matters when a caller is late.
    worker_thread(recorder, "shared", batch_size=total, batch_time=10)
    batcher = CountingBatcher("shared", redis_url=redis_url, timeout=60)
    start = threading.Barrier(loops + threads + 1, timeout=30)
    results: dict[int, Any] = {}

    def async_view(i: int) -> None:  # an async view under WSGI: a loop of its own
        async def view() -> Any:
            return await batcher.acall(i)

        start.wait()
        results[i] = asyncio.run(view())

    def sync_view(i: int) -> None:
        start.wait()
        results[i] = batcher.call(i)

    workers = [threading.Thread(target=async_view, args=(i,)) for i in range(loops)]
    workers += [threading.Thread(target=sync_view, args=(i,)) for i in range(loops, total - 1)]
    for thread in workers:
        thread.start()
    start.wait()
    # and one caller on the home loop itself
    home = asyncio.run_coroutine_threadsafe(batcher.acall(total - 1), loop_thread.get_loop())
    results[total - 1] = home.result(60)
    for thread in workers:
        thread.join(60)
    batcher.stop()
    assert results == {i: i * 2 for i in range(total)}
    assert batcher.clients_made == 1, "one client for every loop and thread of the process"
    assert sum(len(b) for b in recorder.batches) == total
    assert len(recorder.batches) <= 3, [len(b) for b in recorder.batches]


def test_astop_from_another_loop_waits_for_the_callers_in_flight(
    redis_url: str, worker_thread
) -> None:
    gate = threading.Event()
    entered = threading.Event()

    def func(items: list[int]) -> list[int]:
        entered.set()
        assert gate.wait(60)
        return items

    worker_thread(func, "stopping", batch_size=8, batch_time=0.02)
    batcher = RedisBatcher("stopping", redis_url=redis_url, timeout=60)

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(3)]
        await loop.run_in_executor(None, entered.wait, 30)
        stop_done = threading.Event()

        def stop_elsewhere() -> None:  # astop(drain=True) from yet another loop and thread
            asyncio.run(batcher.astop(drain=True))
            stop_done.set()

        stopper = threading.Thread(target=stop_elsewhere)
        stopper.start()
        await loop.run_in_executor(None, wait_until, lambda: batcher._stopped, 30, "the stop")
        with pytest.raises(BatcherStoppedError):
            await batcher.acall(99)  # refused at once
        assert not stop_done.is_set(), "a draining stop waits for the callers in flight"
        gate.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert await loop.run_in_executor(None, stop_done.wait, 60)
        stopper.join(10)
        return results

    assert asyncio.run(main()) == [0, 1, 2]


def test_astop_without_drain_fails_the_waiting_callers_from_another_loop(
    redis_url: str,
) -> None:
    batcher = RedisBatcher("nodrain", redis_url=redis_url, timeout=60)  # no worker at all

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(3)]
        with redis.Redis.from_url(redis_url) as client:
            await loop.run_in_executor(
                None, wait_until,
                lambda: client.xlen("batch_requests:dynamic:nodrain:requests"), 20, "sent")
        await loop.run_in_executor(
            None, lambda: asyncio.run(batcher.astop(drain=False)))
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)

    results = asyncio.run(main())
    assert all(isinstance(r, BatcherStoppedError) for r in results), results


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_builds_its_own_client(redis_url: str, worker_thread) -> None:
    worker_thread(Recorder(), "forked", batch_size=4, batch_time=0.02)
    batcher = CountingBatcher("forked", redis_url=redis_url, timeout=30)
    assert batcher.call(1) == 2
    parent_client = batcher._home
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's loop thread does not exist here
        code = 1
        try:
            os.close(read_end)
            value = batcher.call(21, timeout=20)
            fresh = batcher._home is not parent_client and batcher.clients_made == 2
            os.write(write_end, json.dumps([value, fresh]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        status = wait_until(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid and "done", 60,
                            "the child")
        assert status
        with os.fdopen(read_end, "rb") as pipe:
            answer = json.loads(pipe.read() or b"null")
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    assert answer == [42, True]
    assert batcher.call(2) == 4, "the parent's client still works"
    assert batcher.clients_made == 1
    batcher.stop()
