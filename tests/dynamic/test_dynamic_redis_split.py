"""Split-and-retry in the Redis worker: one bad item fails only itself; and the worker's metrics.

The batch function at the top is also served by ``manage.py batch_worker`` processes
(``test_dynamic_redis_split:fail_on_13``).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis")

from batch_requests.dynamic import (  # noqa: E402
    BatchProcessor,
    RedisBatcher,
    RemoteBatchError,
    ResultLengthError,
    metrics,
)
from batch_requests.dynamic.redis_worker import RedisWorker  # noqa: E402

POISON = 13


def fail_on_13(items: list[int]) -> list[int]:
    """Raise for any batch holding 13; log each call's items to ``$WORKFUNC_DIR/calls.log``."""
    with open(Path(os.environ["WORKFUNC_DIR"]) / "calls.log", "a") as log:
        log.write(json.dumps(items) + "\n")
    if POISON in items:
        raise ValueError(f"cannot score {POISON}")
    return [item * 10 for item in items]


class PoisonRecorder:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[int]) -> list[int]:
        with self.lock:
            self.calls.append(list(items))
        if POISON in items:
            raise ValueError(f"cannot score {POISON}")
        return [item * 10 for item in items]


def call_all(redis_url: str, name: str, items: list[int]) -> list[Any]:
    async def main() -> list[Any]:
        batcher = RedisBatcher(name, redis_url=redis_url, timeout=60)
        try:
            return await asyncio.wait_for(asyncio.gather(
                *(batcher.acall(i) for i in items), return_exceptions=True), 60)
        finally:
            await batcher.astop()

    return asyncio.run(main())


def test_one_poison_item_among_64_fails_only_its_caller(redis_url: str, worker_thread) -> None:
    metrics.reset()
    func = PoisonRecorder()
    # A full batch leaves at once; the 10 s only matters if the callers are slow to arrive.
    worker_thread(func, "split", batch_size=64, batch_time=10)
    results = call_all(redis_url, "split", list(range(64)))
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [POISON]
    error = results[POISON]
    assert isinstance(error, RemoteBatchError)
    assert (error.type_name, error.message) == ("ValueError", f"cannot score {POISON}")
    assert [r for i, r in enumerate(results) if i != POISON] == [
        i * 10 for i in range(64) if i != POISON]
    assert sorted(func.calls[0]) == list(range(64)), "one batch of all 64 first"
    assert len(func.calls) <= 1 + 2 * math.ceil(math.log2(64)), len(func.calls)
    assert [POISON] in func.calls, "the poison ends up alone"

    # Metrics: one observed batch per call of the function, and one error per call that raised.
    numbers = metrics.snapshot()["split"]
    raised = sum(1 for call in func.calls if POISON in call)
    assert numbers["backend"] == "redis"
    assert numbers["calls"] == len(func.calls) == numbers["batch_size"]["count"]
    assert numbers["wait_seconds"]["count"] == numbers["run_seconds"]["count"] == len(func.calls)
    assert numbers["items"] == sum(len(call) for call in func.calls)
    assert numbers["errors"] == raised


def test_with_split_off_the_whole_batch_fails_in_one_call(redis_url: str, worker_thread) -> None:
    func = PoisonRecorder()
    worker_thread(func, "nosplit", batch_size=64, batch_time=10, split_on_error=False)
    results = call_all(redis_url, "nosplit", list(range(64)))
    assert all(isinstance(r, RemoteBatchError) and r.type_name == "ValueError" for r in results)
    assert len(func.calls) == 1


def test_split_on_error_comes_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RedisWorker(fail_on_13).split_on_error is True
    monkeypatch.setenv("DYNAMIC_BATCHER__SPLIT_ON_ERROR", "0")
    assert RedisWorker(fail_on_13).split_on_error is False
    assert RedisWorker(fail_on_13, split_on_error=True).split_on_error is True


def test_a_wrong_result_length_is_not_split(redis_url: str, worker_thread) -> None:
    calls: list[list[int]] = []

    def func(items: list[int]) -> Any:
        calls.append(list(items))
        return None if 99 in items else items[:-1]

    worker_thread(func, "length", batch_size=3, batch_time=10)
    short = call_all(redis_url, "length", [1, 2, 3])
    assert all(isinstance(r, ResultLengthError) and (r.expected, r.got) == (3, 2) for r in short)
    not_a_list = call_all(redis_url, "length", [97, 98, 99])
    assert all(isinstance(r, ResultLengthError) and (r.expected, r.got) == (3, None)
               for r in not_a_list)
    assert len(calls) == 2, "a result of the wrong length is a bug of the function: no retry"


@pytest.mark.parametrize("split", [True, False], ids=["default", "no-split-on-error"])
def test_batch_worker_splits_unless_told_not_to(
    split: bool, redis_url: str, worker_process, tmp_path: Path
) -> None:
    args = [] if split else ["--no-split-on-error"]
    worker_process("test_dynamic_redis_split:fail_on_13", "--name", "cmd-split",
                   "--batch-size", "8", "--batch-time", "10", *args)
    items = list(range(8, 16))
    results = call_all(redis_url, "cmd-split", items)
    calls = [json.loads(line) for line in (tmp_path / "calls.log").read_text().splitlines()]
    assert sorted(calls[0]) == items
    if split:
        assert [i for i, r in zip(items, results, strict=True)
                if isinstance(r, RemoteBatchError)] == [POISON]
        assert 1 < len(calls) <= 1 + 2 * 3
    else:
        assert all(isinstance(r, RemoteBatchError) for r in results)
        assert len(calls) == 1


def test_batch_processor_passes_split_on_error_to_its_worker(redis_url: str) -> None:
    processor = BatchProcessor(batch_size=2, batch_time=10, split_on_error=False)
    func = PoisonRecorder()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(processor.start_daemon(func)), daemon=True)
    thread.start()
    try:
        results = call_all(redis_url, "default", [12, POISON])
    finally:
        loop.call_soon_threadsafe(processor.stop)
        thread.join(30)
    assert not thread.is_alive()
    assert processor.worker is not None and processor.worker.split_on_error is False
    assert all(isinstance(r, RemoteBatchError) for r in results)
    assert len(func.calls) == 1
