"""AsyncBatcher (async-batcher's API on the in-process engine), beyond async-batcher's own suite.

async-batcher 0.2.2's tests run unchanged but for the port edits in tests/vendor/async_batcher.
These check what that suite does not: the generic subscript, sync and keyword-only
``process_batch``, the unlimited values, stopping with and without force, the queue-full
exception, splitting on error, and callers on two event loops sharing one batch.

No test sleeps to wait for something: batches are held on a gate (a ``threading.Event``) and
released by the test, and a batch leaves either full or when ``stop()`` drains the queue
(``max_queue_time=3600`` keeps the timer out of the way). Waits have bounds (30 s) so that a
broken batcher fails the test instead of hanging it; no assertion is about time.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from batch_requests.dynamic import (
    AsyncBatcher,
    BatcherStoppedError,
    QueueFullError,
    ResultLengthError,
    loop_thread,
)
from batch_requests.dynamic.async_batcher import QueueFullException

LONG = 3600.0  # max_queue_time that never fires during a test: batches leave full or on stop
BOUND = 30.0  # the longest any wait may take before the test fails


class Doubler(AsyncBatcher[int, int]):
    """Records every batch it is given and the thread it ran on."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches: list[list[int]] = []
        self.threads: list[threading.Thread] = []
        self.in_home_loop: list[bool] = []

    async def process_batch(self, batch: list[int]) -> list[int]:
        self.batches.append(list(batch))
        self.threads.append(threading.current_thread())
        self.in_home_loop.append(loop_thread.in_loop_thread())
        return [item * 2 for item in batch]


class GatedDoubler(Doubler):
    """Holds each batch until ``gate`` is set; ``started`` is set when a batch begins."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = threading.Event()
        self.started = threading.Event()

    async def process_batch(self, batch: list[int]) -> list[int]:
        results = await super().process_batch(batch)
        self.started.set()
        assert await asyncio.to_thread(self.gate.wait, BOUND), "gate never opened"
        return results


async def wait_event(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, BOUND), "event never set"


def test_generic_subclass_batches_and_answers_each_caller() -> None:
    assert AsyncBatcher[int, int].__args__ == (int, int)
    assert Doubler.__orig_bases__[0].__args__ == (int, int)  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        AsyncBatcher()  # type: ignore[abstract]  # process_batch is abstract
    batcher = Doubler(max_batch_size=5, max_queue_time=LONG)

    async def main() -> list[int]:
        results = await asyncio.gather(*(batcher.process(item=i) for i in range(10)))
        await batcher.stop()
        return results

    assert asyncio.run(main()) == [i * 2 for i in range(10)]
    assert batcher.batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert batcher.in_home_loop == [True, True], "async process_batch runs on the engine's loop"
    assert batcher.engine.name == f"{__name__}.Doubler"


def test_process_batch_is_called_with_the_keyword_batch_sync_or_async() -> None:
    class KeywordOnlyAsync(AsyncBatcher[int, int]):
        async def process_batch(self, *, batch: list[int]) -> list[int]:
            return [-i for i in batch]

    class KeywordOnlySync(AsyncBatcher[int, int]):
        def process_batch(self, *, batch: list[int]) -> list[int]:
            return [i + 100 for i in batch]

    async def main(batcher: AsyncBatcher[int, int]) -> list[int]:
        results = await asyncio.gather(*(batcher.process(i) for i in range(4)))
        await batcher.stop()
        return results

    assert asyncio.run(main(KeywordOnlyAsync(max_batch_size=4, max_queue_time=LONG))) == [
        0, -1, -2, -3]
    assert asyncio.run(main(KeywordOnlySync(max_batch_size=4, max_queue_time=LONG))) == [
        100, 101, 102, 103]


def test_sync_process_batch_runs_in_the_given_executor() -> None:
    seen: list[str] = []

    class Sync(AsyncBatcher[int, int]):
        def process_batch(self, batch: list[int]) -> list[int]:
            seen.append(threading.current_thread().name)
            return [i * 3 for i in batch]

    with ThreadPoolExecutor(thread_name_prefix="given-executor") as executor:
        batcher = Sync(max_batch_size=3, max_queue_time=LONG, executor=executor)

        async def main() -> list[int]:
            results = await asyncio.gather(*(batcher.process(i) for i in range(3)))
            await batcher.stop()
            return results

        assert asyncio.run(main()) == [0, 3, 6]
    assert len(seen) == 1 and seen[0].startswith("given-executor")

    default = Sync(max_batch_size=2, max_queue_time=LONG)

    async def main_default() -> list[int]:
        results = await asyncio.gather(default.process(1), default.process(2))
        await default.stop()
        return results

    assert asyncio.run(main_default()) == [3, 6]
    assert seen[1] not in (threading.current_thread().name, "batch-requests-dynamic-loop")


def test_none_from_process_batch_gives_none_to_every_caller() -> None:
    class Sink(AsyncBatcher[int, None]):
        async def process_batch(self, batch: list[int]) -> None:
            return None

    batcher = Sink(max_batch_size=3, max_queue_time=LONG)

    async def main() -> list[Any]:
        results = await asyncio.gather(*(batcher.process(i) for i in range(3)))
        await batcher.stop()
        return results

    assert asyncio.run(main()) == [None, None, None]


@pytest.mark.parametrize("concurrency", [0, -1])
def test_concurrency_zero_or_less_runs_every_batch_at_once(concurrency: int) -> None:
    """Three full batches must all be running together, or none of them can finish."""

    class Meeting(AsyncBatcher[int, int]):
        running = 0
        everyone: asyncio.Event | None = None

        async def process_batch(self, batch: list[int]) -> list[int]:
            if self.everyone is None:
                self.everyone = asyncio.Event()  # on the engine's loop, where this runs
            self.running += 1
            if self.running == 3:
                self.everyone.set()
            await asyncio.wait_for(self.everyone.wait(), BOUND)
            return batch

    batcher = Meeting(max_batch_size=2, max_queue_time=LONG, concurrency=concurrency)

    async def main() -> list[int]:
        results = await asyncio.gather(*(batcher.process(i) for i in range(6)))
        await batcher.stop()
        return results

    assert asyncio.run(main()) == list(range(6))
    assert batcher.running == 3


def test_default_batch_and_queue_sizes_are_unlimited_whatever_the_settings(settings) -> None:
    """-1 (the defaults) means no limit, not "take the DYNAMIC settings"."""
    settings.BATCH_REQUESTS = {"DYNAMIC": {"BATCH_SIZE": 2, "MAX_QUEUE_SIZE": 3}}
    batcher = Doubler(max_queue_time=LONG)
    assert (batcher.max_batch_size, batcher.max_queue_size) == (-1, -1)

    async def main() -> list[int]:
        calls = [asyncio.ensure_future(batcher.process(i)) for i in range(500)]
        stopping = asyncio.ensure_future(batcher.stop())  # drains what was handed over
        results = await asyncio.gather(*calls)
        await stopping
        return results

    assert asyncio.run(main()) == [i * 2 for i in range(500)]
    assert batcher.batches == [list(range(500))]


def test_full_queue_raises_queue_full_exception_to_the_extra_callers() -> None:
    assert QueueFullException is QueueFullError
    batcher = Doubler(max_batch_size=10, max_queue_time=LONG, max_queue_size=3)

    async def caught(item: int) -> Any:
        try:
            return await batcher.process(item)
        except QueueFullError as exc:  # the project's name catches async-batcher's
            return exc

    async def main() -> list[Any]:
        calls = [asyncio.ensure_future(caught(i)) for i in range(5)]
        stopping = asyncio.ensure_future(batcher.stop())
        results = await asyncio.gather(*calls)
        await stopping
        return results

    results = asyncio.run(main())
    assert results[:3] == [0, 2, 4]
    assert all(isinstance(r, QueueFullException) for r in results[3:]), results
    assert batcher.batches == [[0, 1, 2]]


def test_is_running_from_first_item_until_stop_and_process_after_stop_raises() -> None:
    batcher = Doubler(max_batch_size=2, max_queue_time=LONG)

    async def main() -> None:
        assert not await batcher.is_running()
        assert await asyncio.gather(batcher.process(1), batcher.process(2)) == [2, 4]
        assert await batcher.is_running()
        await batcher.stop()
        assert not await batcher.is_running()
        with pytest.raises(RuntimeError):
            await batcher.process(3)
        with pytest.raises(BatcherStoppedError):
            await batcher.process(3)
        await batcher.stop()  # twice is harmless

    asyncio.run(main())
    assert batcher.batches == [[1, 2]]


def test_stop_without_force_finishes_running_and_queued_items() -> None:
    batcher = GatedDoubler(max_batch_size=2, max_queue_time=LONG, concurrency=1)

    async def main() -> list[int]:
        first = [asyncio.ensure_future(batcher.process(i)) for i in range(2)]
        await wait_event(batcher.started)  # [0, 1] is running, held by the gate
        queued = [asyncio.ensure_future(batcher.process(i)) for i in range(2, 5)]
        stopping = asyncio.ensure_future(batcher.stop())
        asyncio.get_running_loop().call_soon(batcher.gate.set)  # after the steps above
        results = await asyncio.gather(*first, *queued)
        await stopping
        return results

    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    assert batcher.batches == [[0, 1], [2, 3], [4]]


def test_stop_with_force_fails_running_and_queued_callers() -> None:
    batcher = GatedDoubler(max_batch_size=2, max_queue_time=LONG, concurrency=1)

    async def main() -> list[Any]:
        running = [asyncio.ensure_future(batcher.process(i)) for i in range(2)]
        await wait_event(batcher.started)
        queued = [asyncio.ensure_future(batcher.process(i)) for i in range(2, 5)]
        await batcher.stop(force=True)
        results = await asyncio.gather(*running, *queued, return_exceptions=True)
        assert not await batcher.is_running()
        with pytest.raises(RuntimeError):
            await batcher.process(9)
        return results

    try:
        results = asyncio.run(main())
    finally:
        batcher.gate.set()
    assert all(isinstance(r, BatcherStoppedError) and isinstance(r, RuntimeError)
               for r in results), results
    assert batcher.batches == [[0, 1]], "queued items must not run after a forced stop"


def test_stop_timeout_raises_and_leaves_the_batch_running() -> None:
    batcher = GatedDoubler(max_batch_size=2, max_queue_time=LONG)

    async def main() -> list[int]:
        calls = [asyncio.ensure_future(batcher.process(i)) for i in range(2)]
        await wait_event(batcher.started)
        with pytest.raises(asyncio.TimeoutError):
            await batcher.stop(timeout=0.01)  # the gate is closed: it cannot finish
        batcher.gate.set()
        return await asyncio.gather(*calls)

    assert asyncio.run(main()) == [0, 2]


def test_validation_follows_async_batcher() -> None:
    for size in (0, 1, None):
        with pytest.raises(ValueError):
            Doubler(max_batch_size=size)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Doubler(concurrency=None)  # type: ignore[arg-type]
    unlimited = Doubler(max_batch_size=-5, concurrency=0, max_queue_size=0)
    assert (unlimited.max_batch_size, unlimited.concurrency) == (-5, 0)


def test_deprecated_arguments_warn_and_batch_size_still_applies() -> None:
    with pytest.warns(UserWarning, match="sleep_time"):
        Doubler(sleep_time=0.1)
    with pytest.warns(UserWarning, match="buffering_time"):
        Doubler(buffering_time=0.1)
    with pytest.warns(UserWarning, match="unknown"):
        Doubler(no_such_option=1)
    with pytest.warns(UserWarning, match="batch_size"):
        batcher = Doubler(batch_size=3, max_queue_time=LONG)
    assert batcher.max_batch_size == 3

    async def main() -> list[int]:
        results = await asyncio.gather(*(batcher.process(i) for i in range(6)))
        await batcher.stop()
        return results

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert asyncio.run(main()) == [i * 2 for i in range(6)]
    assert batcher.batches == [[0, 1, 2], [3, 4, 5]]


class Picky(AsyncBatcher[int, int]):
    """Raises for any batch holding 3; returns an exception (not raises) for 5."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[list[int]] = []

    async def process_batch(self, batch: list[int]) -> list[Any]:
        self.calls.append(list(batch))
        if 3 in batch:
            raise ValueError("cannot do 3")
        return [KeyError(i) if i == 5 else i for i in batch]


def run_picky(batcher: Picky) -> list[Any]:
    async def main() -> list[Any]:
        results = await asyncio.gather(*(batcher.process(i) for i in range(8)),
                                       return_exceptions=True)
        await batcher.stop()
        return results

    return asyncio.run(main())


def test_a_raising_batch_is_split_so_only_the_bad_item_fails() -> None:
    batcher = Picky(max_batch_size=8, max_queue_time=LONG)
    results = run_picky(batcher)
    assert [r for i, r in enumerate(results) if i not in (3, 5)] == [0, 1, 2, 4, 6, 7]
    assert isinstance(results[3], ValueError) and isinstance(results[5], KeyError)
    # 1 + 2 * log2(8) calls for one poison item in 8
    assert [len(c) for c in batcher.calls] == [8, 4, 2, 2, 1, 1, 4]


def test_split_on_error_false_fails_the_whole_batch_as_async_batcher_does() -> None:
    batcher = Picky(max_batch_size=8, max_queue_time=LONG, split_on_error=False)
    results = run_picky(batcher)
    assert all(isinstance(r, ValueError) for r in results), results
    assert batcher.calls == [list(range(8))]


def test_a_result_list_of_the_wrong_length_fails_every_caller() -> None:
    class Short(AsyncBatcher[int, int]):
        async def process_batch(self, batch: list[int]) -> list[int]:
            return batch[:-1]

    batcher = Short(max_batch_size=3, max_queue_time=LONG)

    async def main() -> list[Any]:
        results = await asyncio.gather(*(batcher.process(i) for i in range(3)),
                                       return_exceptions=True)
        await batcher.stop()
        return results

    assert all(isinstance(r, ResultLengthError) for r in asyncio.run(main()))


def test_callers_on_two_event_loops_share_one_batch() -> None:
    """Needs the engine's shared home loop (issue 12, section 1).

    Two threads, each with its own ``asyncio.run``, hand over 4 items each; the batch holds 8
    and has no timer, so it can only leave if both loops' items reach the same queue.
    """
    batcher = Doubler(max_batch_size=8, max_queue_time=LONG)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def caller(offset: int) -> None:
        async def main() -> list[int]:
            calls = asyncio.gather(*(batcher.process(offset + i) for i in range(4)))
            return await asyncio.wait_for(calls, BOUND)

        try:
            results[offset] = asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(offset,)) for offset in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND + 10)
    asyncio.run(batcher.stop())
    assert not errors, errors
    assert results == {0: [0, 2, 4, 6], 100: [200, 202, 204, 206]}
    assert len(batcher.batches) == 1
    assert sorted(batcher.batches[0]) == [0, 1, 2, 3, 100, 101, 102, 103]
