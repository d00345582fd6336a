"""The Redis backend with a real redis-server: batching, errors, timeouts, shared interface."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.test import override_settings

pytest.importorskip("redis")

from dynamic_helpers import Recorder  # noqa: E402

from batch_requests.dynamic import (  # noqa: E402
    BatchTimeoutError,
    RedisBatcher,
    RemoteBatchError,
    ResultLengthError,
    batched,
)


def run_calls(batcher: RedisBatcher, items: list[Any]) -> list[Any]:
    async def main() -> list[Any]:
        try:
            return await asyncio.gather(*(batcher.acall(i) for i in items),
                                        return_exceptions=True)
        finally:
            await batcher.astop()

    return asyncio.run(main())


def test_concurrent_callers_are_served_in_full_batches(redis_url: str, worker_thread) -> None:
    recorder = Recorder()
    batcher = RedisBatcher("double", redis_url=redis_url, timeout=20)
    worker_thread(recorder, "double", batch_size=64, batch_time=0.05)
    assert run_calls(batcher, list(range(130))) == [i * 2 for i in range(130)]
    assert sorted(len(b) for b in recorder.batches) == [2, 64, 64]


def test_requests_queued_before_the_first_worker_starts_are_served(
    redis_url: str, worker_thread
) -> None:
    recorder = Recorder()

    async def main() -> list[Any]:
        batcher = RedisBatcher("late", redis_url=redis_url, timeout=20)
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(5)]
        await asyncio.sleep(0.2)
        assert not any(t.done() for t in tasks)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: worker_thread(recorder, "late", batch_size=8, batch_time=0.05)
        )
        try:
            return await asyncio.gather(*tasks)
        finally:
            await batcher.astop()

    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    assert recorder.batches == [[0, 1, 2, 3, 4]]


def test_errors_reach_the_right_callers(redis_url: str, worker_thread) -> None:
    def func(items: list[int]) -> list[Any]:
        if 99 in items:
            raise ZeroDivisionError("whole batch failed")
        if 50 in items:
            return items[:-1]
        return [ValueError(f"bad {i}") if i == 7 else i for i in items]

    worker_thread(func, "errors", batch_size=3, batch_time=0.05)

    async def batch_of(items: list[int]) -> list[Any]:
        batcher = RedisBatcher("errors", redis_url=redis_url, timeout=20)
        try:
            return await asyncio.gather(*(batcher.acall(i) for i in items),
                                        return_exceptions=True)
        finally:
            await batcher.astop()

    ok_and_one_bad = asyncio.run(batch_of([6, 7, 8]))
    assert ok_and_one_bad[0] == 6 and ok_and_one_bad[2] == 8
    assert isinstance(ok_and_one_bad[1], RemoteBatchError)
    assert ok_and_one_bad[1].type_name == "ValueError" and ok_and_one_bad[1].message == "bad 7"

    # The batch is split and retried (SPLIT_ON_ERROR): only the item that raises on its own
    # fails; test_dynamic_redis_split.py covers the bound and the switch.
    one, raised, two = asyncio.run(batch_of([1, 99, 2]))
    assert (one, two) == (1, 2)
    assert isinstance(raised, RemoteBatchError) and raised.type_name == "ZeroDivisionError"

    short = asyncio.run(batch_of([50, 51, 52]))
    assert all(isinstance(r, ResultLengthError) and (r.expected, r.got) == (3, 2) for r in short)


def test_timeout_is_a_clear_error_and_workers_skip_expired_requests(
    redis_url: str, worker_thread
) -> None:
    recorder = Recorder()
    expired = run_calls(RedisBatcher("expiry", redis_url=redis_url, timeout=0.2), [1, 2])
    assert all(isinstance(r, BatchTimeoutError) for r in expired)
    worker_thread(recorder, "expiry", batch_size=8, batch_time=0.05)
    assert run_calls(RedisBatcher("expiry", redis_url=redis_url, timeout=20), [3]) == [6]
    assert recorder.batches == [[3]]


def test_a_cancelled_caller_does_not_block_the_others(redis_url: str, worker_thread) -> None:
    gate = threading.Event()

    def func(items: list[int]) -> list[int]:
        gate.wait(10)
        return items

    worker_thread(func, "cancel", batch_size=4, batch_time=0.05)

    async def main() -> list[int]:
        batcher = RedisBatcher("cancel", redis_url=redis_url, timeout=20)
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(4)]
        await asyncio.sleep(0.1)
        tasks[0].cancel()
        gate.set()
        try:
            return await asyncio.gather(*tasks[1:])
        finally:
            await batcher.astop()

    assert asyncio.run(main()) == [1, 2, 3]


def test_blocking_calls_from_threads_use_the_redis_backend(redis_url: str, worker_thread) -> None:
    recorder = Recorder()
    worker_thread(recorder, "threads", batch_size=10, batch_time=5)
    batcher = RedisBatcher("threads", redis_url=redis_url, timeout=20)
    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(batcher, range(10))) == [i * 2 for i in range(10)]
    batcher.stop()
    assert sum(len(b) for b in recorder.batches) == 10
    assert max(len(b) for b in recorder.batches) > 1


def triple(items: list[int]) -> list[int]:
    return [[i * 3, threading.current_thread().name] for i in items]


def test_the_same_decorated_function_switches_backend_by_setting(
    redis_url: str, worker_thread
) -> None:
    fn = batched(triple, max_batch_size=4, max_wait=0.01)

    async def call() -> Any:
        try:
            return await fn(5)
        finally:
            await fn.astop()

    local_value, local_thread = asyncio.run(call())
    assert local_value == 15 and local_thread != "redis-worker"
    dynamic = {"BACKEND": "redis", "REDIS_URL": redis_url, "TIMEOUT": 20}
    with override_settings(BATCH_REQUESTS={"DYNAMIC": dynamic}):
        worker = worker_thread(triple, fn.name, batch_size=4, batch_time=0.01)
        remote_value, remote_thread = asyncio.run(call())
    assert worker.items == 1
    assert remote_value == 15 and remote_thread != local_thread
