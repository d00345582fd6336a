"""The in-process batcher: callers in one process share batches of one function call.

Each event loop gets its own queue (futures cannot cross loops), so async views batch on the
server's loop and sync views batch together on the shared background loop. The cost per caller
is one future and one deque entry; the timer is armed from the oldest waiting item, so no item
waits longer than ``max_wait`` for a free slot, and a full batch leaves at once.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import conf
from .errors import BatcherStoppedError, BatchTimeoutError, QueueFullError, ResultLengthError
from .interface import BaseBatcher

BatchFunction = Callable[[list[Any]], Any]


@dataclass(frozen=True)
class Limits:
    max_batch_size: int
    max_wait: float
    max_concurrent_batches: int
    max_queue_size: int
    timeout: float | None


def deliver(futures: list[asyncio.Future[Any]], results: Any) -> None:
    """Give each future its own result; an Exception instance fails that caller only."""
    try:
        count = len(results)
    except TypeError:
        count = None
    if count != len(futures):
        error = ResultLengthError(len(futures), count)
        for fut in futures:
            if not fut.done():
                fut.set_exception(error)
        return
    for fut, result in zip(futures, results, strict=True):
        if fut.done():
            continue
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)


def fail(futures: list[asyncio.Future[Any]], error: BaseException) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_exception(error)


@dataclass(eq=False)
class _LoopQueue:
    """The waiting items and running batches of one batcher on one event loop."""

    batcher: InProcessBatcher
    loop: asyncio.AbstractEventLoop
    limits: Limits
    waiting: deque[tuple[Any, asyncio.Future[Any], float]] = field(default_factory=deque)
    running: set[asyncio.Task[None]] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None
    stopped: bool = False
    draining: bool = False

    def add(self, item: Any) -> asyncio.Future[Any]:
        if self.stopped:
            raise BatcherStoppedError("the batcher is stopped")
        waiting = self.waiting
        if len(waiting) >= self.limits.max_queue_size:
            raise QueueFullError(f"{len(waiting)} items already waiting (max_queue_size)")
        fut = self.loop.create_future()
        waiting.append((item, fut, self.loop.time()))
        if self.timer is None or len(waiting) >= self.limits.max_batch_size:
            self.dispatch()
        return fut

    def dispatch(self) -> None:
        """Start every batch that is due and has a free slot, then re-arm the timer."""
        limits, waiting = self.limits, self.waiting
        while waiting and len(self.running) < limits.max_concurrent_batches:
            full = len(waiting) >= limits.max_batch_size
            due = waiting[0][2] + limits.max_wait <= self.loop.time()
            if not (full or due or self.draining):
                break
            items: list[Any] = []
            futures: list[asyncio.Future[Any]] = []
            while waiting and len(items) < limits.max_batch_size:
                item, fut, _ = waiting.popleft()
                if not fut.done():
                    items.append(item)
                    futures.append(fut)
            if items:
                task = self.loop.create_task(self.run(items, futures))
                self.running.add(task)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if waiting and len(self.running) < limits.max_concurrent_batches:
            self.timer = self.loop.call_at(waiting[0][2] + limits.max_wait, self.on_timer)

    def on_timer(self) -> None:
        self.timer = None
        self.dispatch()

    async def run(self, items: list[Any], futures: list[asyncio.Future[Any]]) -> None:
        try:
            results = await self.batcher.invoke(items)
        except asyncio.CancelledError:
            fail(futures, BatcherStoppedError("the batcher was stopped during this batch"))
        except Exception as exc:
            fail(futures, exc)
        else:
            deliver(futures, results)
        finally:
            self.running.discard(asyncio.current_task())  # type: ignore[arg-type]
            if not self.loop.is_closed():
                self.dispatch()

    async def stop(self, drain: bool) -> None:
        self.stopped = True
        if drain:
            self.draining = True
            self.dispatch()
        else:
            error = BatcherStoppedError("the batcher was stopped before this item ran")
            fail([fut for _, fut, _ in self.waiting], error)
            self.waiting.clear()
            for task in self.running:
                task.cancel()
        while self.running:
            await asyncio.wait(list(self.running))
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class InProcessBatcher(BaseBatcher):
    """Coalesce concurrent calls into calls of ``func(items) -> results`` (sync or async).

    Options left as ``None`` come from :mod:`batch_requests.dynamic.conf` on first use.
    A sync ``func`` runs in the loop's default thread pool unless ``offload_sync=False``, so a
    slow batch never stalls the server's event loop.
    """

    def __init__(
        self,
        func: BatchFunction,
        *,
        max_batch_size: int | None = None,
        max_wait: float | None = None,
        max_concurrent_batches: int | None = None,
        max_queue_size: int | None = None,
        timeout: float | None = None,
        offload_sync: bool = True,
    ) -> None:
        self.func = func
        self._passed = (max_batch_size, max_wait, max_concurrent_batches, max_queue_size)
        self._timeout = timeout
        self._is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004
        )
        self._offload = offload_sync
        self._limits: Limits | None = None
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue] = (
            weakref.WeakKeyDictionary()
        )
        self._last: tuple[asyncio.AbstractEventLoop | None, _LoopQueue | None] = (None, None)
        self._stopped = False

    @property
    def limits(self) -> Limits:
        if self._limits is None:
            size, wait, concurrent, queue = self._passed
            limits = Limits(
                max_batch_size=conf.get("BATCH_SIZE", size),
                max_wait=conf.get("BATCH_TIME", wait),
                max_concurrent_batches=conf.get("MAX_CONCURRENT_BATCHES", concurrent),
                max_queue_size=conf.get("MAX_QUEUE_SIZE", queue),
                timeout=self._timeout,
            )
            if limits.max_batch_size < 1 or limits.max_concurrent_batches < 1:
                raise ValueError("max_batch_size and max_concurrent_batches must be at least 1")
            if limits.max_wait < 0:
                raise ValueError("max_wait must not be negative")
            self._limits = limits
        return self._limits

    def _queue(self, loop: asyncio.AbstractEventLoop) -> _LoopQueue:
        last_loop, last_queue = self._last
        if last_loop is loop and last_queue is not None:
            return last_queue
        queue = self._queues.get(loop)
        if queue is None:
            queue = _LoopQueue(self, loop, self.limits, stopped=self._stopped)
            self._queues[loop] = queue
        self._last = (loop, queue)
        return queue

    async def invoke(self, items: list[Any]) -> Any:
        if self._is_async:
            return await self.func(items)
        if self._offload:
            return await asyncio.get_running_loop().run_in_executor(None, self.func, items)
        return self.func(items)

    async def acall(self, item: Any) -> Any:
        fut = self._queue(asyncio.get_running_loop()).add(item)
        timeout = self._timeout
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError as exc:
            raise BatchTimeoutError(f"no result within {timeout} s") from exc

    async def astop(self, drain: bool = True) -> None:
        self._stopped = True
        here = asyncio.get_running_loop()
        waits = []
        for loop, queue in list(self._queues.items()):
            if loop is here:
                waits.append(queue.stop(drain))
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(queue.stop(drain), loop)
                waits.append(asyncio.wrap_future(future))
            else:
                queue.stopped = True
                fail([fut for _, fut, _ in queue.waiting], BatcherStoppedError("loop not running"))
        await asyncio.gather(*waits)

    @property
    def pending(self) -> int:
        """Items waiting for a batch, over all loops (for metrics and tests)."""
        return sum(len(q.waiting) for q in list(self._queues.values()))
