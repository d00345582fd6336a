"""Redis faults with a real redis-server that the tests stop and restart on the same port.

Workers reconnect and go on serving, callers waiting through a restart get their results, the
first calls after it succeed, and a caller only ever sees a ``BatchError``, never redis-py's own
exceptions.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from dynamic_helpers import Recorder, wait_until  # noqa: E402

from batch_requests.dynamic import (  # noqa: E402
    BatchError,
    BatchTimeoutError,
    RedisBatcher,
)
from batch_requests.dynamic.errors import BackendUnavailableError  # noqa: E402
from batch_requests.dynamic.protocol import GROUP, Keys  # noqa: E402

PREFIX = "batch_requests:dynamic"



def group_exists(url: str, name: str) -> bool:
    with redis.Redis.from_url(url) as client:
        try:
            return any(g["name"] == GROUP.encode()
                       for g in client.xinfo_groups(Keys(PREFIX, name).stream))
        except redis.ResponseError:
            return False


def assert_batch_error_only(error: BaseException) -> None:
    assert isinstance(error, BatchError), repr(error)
    assert not isinstance(error, redis.exceptions.RedisError), repr(error)


def test_a_call_while_redis_is_down_fails_with_backend_unavailable(restartable_redis) -> None:
    server = restartable_redis
    batcher = RedisBatcher("down", redis_url=server.url, timeout=60)
    server.stop()

    async def acall() -> BaseException:
        with pytest.raises(BatchError) as caught:
            await batcher.acall(1)
        return caught.value

    # Both forms, from a foreign loop and from a thread without one; the 60 s timeout is not
    # what ends them: the send gives up after its bounded retry.
    errors = [asyncio.run(acall())]
    with pytest.raises(BatchError) as caught:
        batcher.call(2)
    errors.append(caught.value)
    for error in errors:
        assert isinstance(error, BackendUnavailableError), repr(error)
        assert isinstance(error, ConnectionError)
        assert_batch_error_only(error)
        assert isinstance(error.__cause__, redis.exceptions.ConnectionError)
    batcher.stop()


def test_redis_lost_while_waiting_ends_in_a_batch_error_by_the_deadline(
    restartable_redis,
) -> None:
    server = restartable_redis
    stream = Keys(PREFIX, "lost").stream

    async def main() -> BaseException:
        batcher = RedisBatcher("lost", redis_url=server.url, timeout=3)
        task = asyncio.ensure_future(batcher.acall(1))
        loop = asyncio.get_running_loop()
        with redis.Redis.from_url(server.url) as client:
            await loop.run_in_executor(None, wait_until, lambda: client.xlen(stream), 20,
                                       "the entry sent")
        await loop.run_in_executor(None, server.stop)
        try:
            with pytest.raises(BatchError) as caught:
                await asyncio.wait_for(task, 30)
            return caught.value
        finally:
            await batcher.astop()

    error = asyncio.run(main())
    assert isinstance(error, BatchTimeoutError), repr(error)  # no worker, no server: timeout
    assert_batch_error_only(error)


def test_workers_survive_a_restart_and_the_first_calls_after_it_succeed(
    restartable_redis, restartable_worker_thread
) -> None:
    server = restartable_redis
    recorder = Recorder()
    worker = restartable_worker_thread(recorder, "restart", batch_size=16, batch_time=0.02)
    batcher = RedisBatcher("restart", redis_url=server.url, timeout=60)

    async def calls(items: list[int]) -> list[Any]:
        return await asyncio.gather(*(batcher.acall(i) for i in items), return_exceptions=True)

    assert asyncio.run(calls(list(range(10)))) == [i * 2 for i in range(10)]
    server.restart(kill=True)  # everything lost: the stream, the group, the pooled connections
    # The batcher's pooled connection is stale: the send is retried on a new one; the worker
    # reconnects and creates the consumer group again.
    after = asyncio.run(calls(list(range(100, 110))))
    assert after == [i * 2 for i in range(100, 110)], after
    assert recorder.seen() >= set(range(100, 110)), "served by the same, only, worker"
    assert group_exists(server.url, "restart")
    assert worker.items >= 20
    batcher.stop()


def test_callers_waiting_through_a_restart_get_their_results(
    restartable_redis, restartable_worker_thread
) -> None:
    """One batch is in the worker's function, one entry waits in the stream, Redis dies.

    The worker keeps the finished batch's reply and delivers it once Redis is back; the waiting
    entry was lost with the server, and the caller's process sends it again.
    """
    server = restartable_redis
    entered = threading.Event()
    gate = threading.Event()
    recorder = Recorder()

    def func(items: list[int]) -> list[int]:
        if not entered.is_set():
            entered.set()
            assert gate.wait(60)
        return recorder(items)

    worker = restartable_worker_thread(func, "through", batch_size=4, batch_time=0.02)
    stream = Keys(PREFIX, "through").stream

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        batcher = RedisBatcher("through", redis_url=server.url, timeout=60, pack_size=4)
        first = [asyncio.ensure_future(batcher.acall(i)) for i in range(4)]
        await loop.run_in_executor(None, entered.wait, 30)
        second = [asyncio.ensure_future(batcher.acall(i)) for i in range(10, 14)]
        with redis.Redis.from_url(server.url) as client:
            # the first batch's entry (in hand, unacknowledged) and the second's (waiting)
            await loop.run_in_executor(None, wait_until, lambda: client.xlen(stream) >= 2, 20,
                                       "both entries in the stream")
        await loop.run_in_executor(None, server.stop, True)
        gate.set()  # the worker finishes the batch and cannot reply
        await loop.run_in_executor(None, wait_until, lambda: worker.reconnects >= 1, 30,
                                   "the worker noticing the outage")
        await loop.run_in_executor(None, server.start)
        try:
            return await asyncio.wait_for(
                asyncio.gather(*first, *second, return_exceptions=True), 60)
        finally:
            await batcher.astop()

    results = asyncio.run(main())
    assert results == [0, 2, 4, 6, 20, 22, 24, 26], results
    assert set(range(10, 14)) <= recorder.seen(), "the lost entry was sent again and served"


def test_a_worker_process_keeps_serving_across_a_restart(
    restartable_redis, worker_process, tmp_path: Path
) -> None:
    server = restartable_redis
    proc = worker_process("dynamic_workfuncs:tag_with_pid", "--name", "proc-restart",
                          "--batch-time", "0.02", url=server.url)

    def call(item: int) -> Any:
        batcher = RedisBatcher("proc-restart", redis_url=server.url, timeout=60)
        try:
            return batcher.call(item)
        finally:
            batcher.stop()

    before = call(1)
    server.restart(kill=True)
    after = call(2)
    assert before[:2] == [1, proc.pid] and after[:2] == [2, proc.pid]
    assert proc.poll() is None, "the worker must not exit when Redis goes away"
