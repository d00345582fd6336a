"""The in-process batcher: batching, timer, errors, cancellation, backpressure, shutdown."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from dynamic_helpers import wait_until

from batch_requests.dynamic import (
    BatcherStoppedError,
    BatchTimeoutError,
    InProcessBatcher,
    QueueFullError,
    ResultLengthError,
    batched,
)


class Recorder:
    """An async batch function that doubles items and records each batch it was given.

    It runs on the batcher's home loop (another thread), so the gate and the "started" signal
    are thread-safe events, awaited from a loop through a worker thread.
    """

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.gate = gate
        self.started = threading.Event()

    async def __call__(self, items: list[Any]) -> list[Any]:
        self.batches.append(list(items))
        self.started.set()
        if self.gate is not None:
            assert await asyncio.to_thread(self.gate.wait, 30), "gate never opened"
        return [item * 2 for item in items]

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.wait, 30), "no batch started"


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


def test_with_split_off_an_exception_raised_by_the_function_reaches_every_caller() -> None:
    calls: list[list[int]] = []

    async def func(items: list[int]) -> list[int]:
        calls.append(items)
        if 3 in items:
            raise ValueError("model exploded")
        return items

    batcher = InProcessBatcher(func, max_batch_size=2, max_wait=30, split_on_error=False)

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.acall(i) for i in range(4)), return_exceptions=True)

    results = asyncio.run(main())
    assert results[:2] == [0, 1]
    assert all(isinstance(r, ValueError) and str(r) == "model exploded" for r in results[2:])
    assert calls == [[0, 1], [2, 3]]


def poison_function(poison: set[int], calls: list[list[int]]):
    def func(items: list[int]) -> list[int]:
        calls.append(list(items))
        bad = poison.intersection(items)
        if bad:
            raise ValueError(f"cannot score {sorted(bad)}")
        return [i * 10 for i in items]

    return func


@pytest.mark.parametrize(("size", "poison_at"), [(64, 0), (64, 37), (64, 63), (50, 17), (3, 2)])
def test_one_poison_item_fails_only_its_caller_within_the_bisection_bound(
    size: int, poison_at: int
) -> None:
    import math

    calls: list[list[int]] = []
    batcher = InProcessBatcher(poison_function({poison_at}, calls), max_batch_size=size,
                               max_wait=3600)

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.acall(i) for i in range(size)),
                                    return_exceptions=True)

    results = asyncio.run(main())
    batcher.stop()
    failed = [i for i, r in enumerate(results) if isinstance(r, ValueError)]
    assert failed == [poison_at]
    assert str(results[poison_at]) == f"cannot score [{poison_at}]"
    assert [r for i, r in enumerate(results) if i != poison_at] == [
        i * 10 for i in range(size) if i != poison_at
    ]
    assert calls[0] == list(range(size))
    assert len(calls) <= 1 + 2 * math.ceil(math.log2(size))
    singles = [call[0] for call in calls if len(call) == 1]
    assert poison_at in singles and len(singles) <= 3, "only the poison's last group is split"


def test_every_item_failing_costs_at_most_two_n_minus_one_calls_and_fails_each() -> None:
    calls: list[list[int]] = []
    batcher = InProcessBatcher(poison_function(set(range(8)), calls), max_batch_size=8,
                               max_wait=3600)

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.acall(i) for i in range(8)),
                                    return_exceptions=True)

    results = asyncio.run(main())
    batcher.stop()
    assert [str(r) for r in results] == [f"cannot score [{i}]" for i in range(8)]
    assert len(calls) == 2 * 8 - 1


def test_split_on_error_can_be_turned_off_in_settings() -> None:
    from django.test import override_settings

    calls: list[list[int]] = []
    with override_settings(BATCH_REQUESTS={"DYNAMIC": {"SPLIT_ON_ERROR": False}}):
        batcher = InProcessBatcher(poison_function({1}, calls), max_batch_size=4, max_wait=3600)

        async def main() -> list[Any]:
            return await asyncio.gather(*(batcher.acall(i) for i in range(4)),
                                        return_exceptions=True)

        results = asyncio.run(main())
    batcher.stop()
    assert all(isinstance(r, ValueError) for r in results)
    assert calls == [[0, 1, 2, 3]]


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
        recorder = Recorder(gate=threading.Event())
        batcher = InProcessBatcher(recorder, max_batch_size=3, max_wait=30)
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(3)]
        await recorder.wait_started()
        tasks[0].cancel()
        recorder.gate.set()
        return await asyncio.gather(*tasks[1:])

    assert asyncio.run(main()) == [2, 4]


def test_callers_beyond_max_queue_size_get_queue_full() -> None:
    async def main() -> None:
        recorder = Recorder(gate=threading.Event())
        batcher = InProcessBatcher(
            recorder, max_batch_size=1, max_wait=0, max_concurrent_batches=1, max_queue_size=2
        )
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(3)]
        await recorder.wait_started()
        wait_until(lambda: batcher.pending == 2, what="two items waiting")
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
        recorder = Recorder(gate=threading.Event())
        batcher = InProcessBatcher(recorder, max_batch_size=2, max_wait=3600)
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(3)]
        await recorder.wait_started()
        wait_until(lambda: batcher.pending == 1, what="the third item waiting")
        await batcher.astop(drain=False)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        recorder.gate.set()
        assert all(isinstance(r, BatcherStoppedError) for r in results)

    asyncio.run(main())


def test_timeout_gives_a_clear_error() -> None:
    async def main() -> None:
        recorder = Recorder(gate=threading.Event())
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


def test_callers_on_different_event_loops_and_threads_share_one_batch() -> None:
    """Async views under WSGI each run on their own loop; sync views have none: one batch."""
    recorder = Recorder()
    batcher = InProcessBatcher(recorder, max_batch_size=40, max_wait=3600)

    def loop_caller(base: int) -> list[int]:
        async def main() -> list[int]:
            return await asyncio.gather(*(batcher.acall(base + i) for i in range(10)))

        return asyncio.run(main())

    with ThreadPoolExecutor(13) as pool:
        loops = [pool.submit(loop_caller, base) for base in (0, 100, 200)]
        blocking = [pool.submit(batcher, 300 + i) for i in range(10)]
        results = [f.result(30) for f in loops] + [[f.result(30) for f in blocking]]
    batcher.stop()
    assert results == [[(base + i) * 2 for i in range(10)] for base in (0, 100, 200, 300)]
    assert len(recorder.batches) == 1
    assert sorted(recorder.batches[0]) == sorted(
        base + i for base in (0, 100, 200, 300) for i in range(10)
    )


def test_async_views_run_by_async_to_sync_share_batches() -> None:
    """What Django does for an ``async def`` view under WSGI: a fresh loop per request."""
    from asgiref.sync import async_to_sync

    recorder = Recorder()
    batcher = InProcessBatcher(recorder, max_batch_size=20, max_wait=3600)

    async def view(i: int) -> int:
        return await batcher(i)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(async_to_sync(view), range(20)))
    batcher.stop()
    assert results == [i * 2 for i in range(20)]
    assert [len(b) for b in recorder.batches] == [20]


def test_the_function_runs_on_one_home_loop_whoever_calls() -> None:
    loops: set[int] = set()

    async def func(items: list[int]) -> list[int]:
        loops.add(id(asyncio.get_running_loop()))
        return items

    batcher = InProcessBatcher(func, max_batch_size=1, max_wait=0)

    async def main() -> int:
        return await batcher.acall(1)

    assert asyncio.run(main()) == 1
    assert asyncio.run(main()) == 1
    assert batcher(1) == 1
    batcher.stop()
    assert len(loops) == 1


def test_a_blocking_caller_that_times_out_is_left_out_of_its_batch() -> None:
    recorder = Recorder(gate=threading.Event())
    batcher = InProcessBatcher(recorder, max_batch_size=1, max_wait=0, max_concurrent_batches=1)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(batcher, 1)
        assert recorder.started.wait(30)
        with pytest.raises(BatchTimeoutError):
            batcher.call(2, timeout=0.05)
        recorder.gate.set()
        assert first.result(30) == 2
    assert batcher(3) == 6
    batcher.stop()
    assert recorder.batches == [[1], [3]]


def test_shutting_the_home_loop_down_fails_waiting_callers_instead_of_hanging() -> None:
    from batch_requests.dynamic import shutdown_background_loop

    batcher = InProcessBatcher(Recorder(), max_batch_size=10, max_wait=3600)

    async def main() -> list[Any]:
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in range(3)]
        await asyncio.sleep(0)
        wait_until(lambda: batcher.pending == 3 and not batcher._home.inbox, what="queued")
        await asyncio.to_thread(shutdown_background_loop)
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)

    results = asyncio.run(main())
    assert all(isinstance(r, BatcherStoppedError) for r in results)
    with ThreadPoolExecutor(10) as pool:  # a fresh home loop serves the next full batch
        assert list(pool.map(batcher, range(10))) == [i * 2 for i in range(10)]
    batcher.stop()


def test_batched_passes_split_on_error_and_labels_metrics_with_its_name() -> None:
    from batch_requests.dynamic import metrics

    calls: list[list[int]] = []

    @batched(max_batch_size=4, max_wait=3600, backend="inprocess", split_on_error=False,
             name="tests.no-split")
    def no_split(items: list[int]) -> list[int]:
        return poison_function({2}, calls)(items)

    async def main() -> list[Any]:
        return await asyncio.gather(*(no_split(i) for i in range(4)), return_exceptions=True)

    metrics.reset()
    results = asyncio.run(main())
    no_split.stop()
    assert all(isinstance(r, ValueError) for r in results)
    assert calls == [[0, 1, 2, 3]]
    seen = metrics.snapshot()["tests.no-split"]
    assert (seen["calls"], seen["items"], seen["errors"]) == (1, 4, 1)
