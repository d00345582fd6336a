"""The in-process batcher: batching, timer, errors, cancellation, backpressure, shutdown."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from batch_requests.dynamic import (
    BatcherStoppedError,
    BatchTimeoutError,
    InProcessBatcher,
    QueueFullError,
    ResultLengthError,
    batched,
)


class Recorder:
    """An async batch function that doubles items and records each batch it was given."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.gate = gate

    async def __call__(self, items: list[Any]) -> list[Any]:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        return [item * 2 for item in items]


def test_full_batches_leave_at_max_batch_size_and_results_go_to_their_callers() -> None:
    recorder = Recorder()
    batcher = InProcessBatcher(recorder, max_batch_size=64, max_wait=0.01)

    async def main() -> list[int]:
        results = await asyncio.gather(*(batcher.acall(i) for i in range(130)))
        await batcher.astop()
        return results

    assert asyncio.run(main()) == [i * 2 for i in range(130)]
    assert [len(b) for b in recorder.batches] == [64, 64, 2]


def test_partial_batch_leaves_after_max_wait_counted_from_its_first_item() -> None:
    seen: list[float] = []

    async def func(items: list[int]) -> list[int]:
        seen.append(asyncio.get_running_loop().time())
        return items

    batcher = InProcessBatcher(func, max_batch_size=64, max_wait=0.05)

    async def main() -> tuple[float, list[int]]:
        first = asyncio.get_running_loop().time()
        task = asyncio.ensure_future(batcher.acall(1))
        await asyncio.sleep(0.02)
        results = await asyncio.gather(task, batcher.acall(2), batcher.acall(3))
        return first, results

    first, results = asyncio.run(main())
    assert results == [1, 2, 3]
    assert len(seen) == 1, "the three items should share one timer-driven batch"
    assert seen[0] - first >= 0.05 - 0.002, "a batch must not leave before max_wait"


def test_sync_function_runs_off_the_event_loop_thread() -> None:
    threads: list[int] = []

    def func(items: list[int]) -> list[int]:
        threads.append(threading.get_ident())
        return [-i for i in items]

    batcher = InProcessBatcher(func, max_batch_size=4, max_wait=0.01)

    async def main() -> list[int]:
        return await asyncio.gather(*(batcher.acall(i) for i in range(4)))

    assert asyncio.run(main()) == [0, -1, -2, -3]
    assert threads and threads[0] != threading.get_ident()


def test_an_exception_raised_by_the_function_reaches_every_caller_of_that_batch() -> None:
    calls: list[list[int]] = []

    async def func(items: list[int]) -> list[int]:
        calls.append(items)
        if 3 in items:
            raise ValueError("model exploded")
        return items

    batcher = InProcessBatcher(func, max_batch_size=2, max_wait=30)

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.acall(i) for i in range(4)), return_exceptions=True)

    results = asyncio.run(main())
    assert results[:2] == [0, 1]
    assert all(isinstance(r, ValueError) and str(r) == "model exploded" for r in results[2:])


def test_a_returned_exception_fails_only_its_own_caller() -> None:
    async def func(items: list[int]) -> list[Any]:
        return [KeyError(i) if i == 1 else i for i in items]

    batcher = InProcessBatcher(func, max_batch_size=3, max_wait=30)

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.acall(i) for i in range(3)), return_exceptions=True)

    first, second, third = asyncio.run(main())
    assert (first, third) == (0, 2)
    assert isinstance(second, KeyError)


@pytest.mark.parametrize("bad", [[1], [1, 2, 3, 4], None])
def test_a_result_of_the_wrong_length_is_a_clear_error_for_all(bad: Any) -> None:
    async def func(items: list[int]) -> Any:
        return bad

    batcher = InProcessBatcher(func, max_batch_size=3, max_wait=30)

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.acall(i) for i in range(3)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, ResultLengthError) for r in results)
    assert "batch of 3 items" in str(results[0])


def test_a_caller_cancelled_while_waiting_is_left_out_and_blocks_no_one() -> None:
    recorder = Recorder()
    batcher = InProcessBatcher(recorder, max_batch_size=4, max_wait=0.05)

    async def main() -> list[int]:
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(3)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        return await asyncio.gather(tasks[0], tasks[2])

    assert asyncio.run(main()) == [0, 4]
    assert recorder.batches == [[0, 2]]


def test_a_caller_cancelled_during_its_batch_does_not_hang_the_others() -> None:
    async def main() -> list[int]:
        recorder = Recorder(gate=asyncio.Event())
        batcher = InProcessBatcher(recorder, max_batch_size=3, max_wait=30)
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(3)]
        while not recorder.batches:
            await asyncio.sleep(0)
        tasks[0].cancel()
        recorder.gate.set()
        return await asyncio.gather(*tasks[1:])

    assert asyncio.run(main()) == [2, 4]


def test_callers_beyond_max_queue_size_get_queue_full() -> None:
    async def main() -> None:
        recorder = Recorder(gate=asyncio.Event())
        batcher = InProcessBatcher(
            recorder, max_batch_size=1, max_wait=0, max_concurrent_batches=1, max_queue_size=2
        )
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        assert recorder.batches == [[0]]
        with pytest.raises(QueueFullError):
            await batcher.acall(99)
        recorder.gate.set()
        assert await asyncio.gather(*tasks) == [0, 2, 4]

    asyncio.run(main())


def test_stop_with_drain_finishes_every_queued_item_then_refuses_new_ones() -> None:
    async def main() -> None:
        recorder = Recorder()
        batcher = InProcessBatcher(recorder, max_batch_size=4, max_wait=3600)
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(6)]
        await asyncio.sleep(0)
        await batcher.astop(drain=True)
        assert [t.result() for t in tasks] == [i * 2 for i in range(6)]
        with pytest.raises(BatcherStoppedError):
            await batcher.acall(1)

    asyncio.run(main())


def test_stop_without_drain_fails_queued_and_running_callers_instead_of_hanging() -> None:
    async def main() -> None:
        recorder = Recorder(gate=asyncio.Event())
        batcher = InProcessBatcher(recorder, max_batch_size=2, max_wait=3600)
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(3)]
        while not recorder.batches:
            await asyncio.sleep(0)
        await batcher.astop(drain=False)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, BatcherStoppedError) for r in results)

    asyncio.run(main())


def test_timeout_gives_a_clear_error() -> None:
    async def main() -> None:
        recorder = Recorder(gate=asyncio.Event())
        batcher = InProcessBatcher(recorder, max_batch_size=1, max_wait=0, timeout=0.05)
        with pytest.raises(BatchTimeoutError):
            await batcher.acall(1)
        recorder.gate.set()
        await batcher.astop()

    asyncio.run(main())


def test_blocking_calls_from_many_threads_share_batches_on_the_background_loop() -> None:
    recorder = Recorder()
    batcher = InProcessBatcher(recorder, max_batch_size=20, max_wait=3600)
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(batcher, range(20)))
    assert results == [i * 2 for i in range(20)]
    assert [len(b) for b in recorder.batches] == [20]
    batcher.stop()


def test_one_batcher_serves_several_event_loops_in_turn() -> None:
    recorder = Recorder()
    batcher = InProcessBatcher(recorder, max_batch_size=2, max_wait=0.01)

    async def main(base: int) -> list[int]:
        return await asyncio.gather(batcher.acall(base), batcher.acall(base + 1))

    assert asyncio.run(main(0)) == [0, 2]
    assert asyncio.run(main(10)) == [20, 22]
    assert batcher(5) == 10


def test_decorator_is_awaitable_in_async_code_and_blocking_in_sync_code() -> None:
    sizes: list[int] = []

    @batched(max_batch_size=5, max_wait=3600, backend="inprocess")
    def square(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return [i * i for i in items]

    async def main() -> list[int]:
        return await asyncio.gather(*(square(i) for i in range(5)))

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]
    with ThreadPoolExecutor(5) as pool:
        assert list(pool.map(square, range(5))) == [0, 1, 4, 9, 16]
    assert sizes == [5, 5]
    assert square.__name__ == "square"
    square.stop()


def test_blocking_call_inside_a_running_loop_is_refused() -> None:
    batcher = InProcessBatcher(Recorder(), max_batch_size=1, max_wait=0)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="await"):
            batcher.call(1)

    asyncio.run(main())
