"""The in-process batcher: callers anywhere in one process share batches of one function call.

Every batcher has one home loop, the shared background loop of :mod:`.loop_thread`, so a batch
gathers callers from every thread and every event loop of the process: uvicorn's loop, the
short-lived loop of each async view under WSGI, and sync views' threads alike (:mod:`.handoff`
carries their items over and their results back). The batch function runs on that loop (a sync
one in its thread pool). The cost per caller is one future and one deque entry; the timer is
armed from the oldest waiting item, so no item waits longer than ``max_wait`` for a free slot,
and a full batch leaves at once. A batch whose function raises is split and retried
(:mod:`.split`), so one bad item fails only its own caller.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import conf, loop_thread, metrics
from .errors import BatcherStoppedError, BatchTimeoutError, QueueFullError
from .handoff import Inbox, Waiter, fail_all, settle_results
from .interface import BaseBatcher, check_blocking_call, has_running_loop
from .split import Failed, call_split

BatchFunction = Callable[[list[Any]], Any]


@dataclass(frozen=True)
class Limits:
    max_batch_size: int
    max_wait: float
    max_concurrent_batches: int
    max_queue_size: int
    timeout: float | None
    split_on_error: bool = True


@dataclass(eq=False)
class _LoopQueue:
    """The waiting items and running batches of one batcher on its home loop.

    Waiting items are three parallel deques (item, waiter, time queued) rather than a tuple
    per item: fewer objects for the cyclic garbage collector to track while thousands wait.
    Only the home loop's thread touches them.
    """

    batcher: InProcessBatcher
    loop: asyncio.AbstractEventLoop
    limits: Limits
    items: deque[Any] = field(default_factory=deque)
    waiters: deque[Waiter] = field(default_factory=deque)
    times: deque[float] = field(default_factory=deque)
    running: set[asyncio.Task[None]] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None
    stopped: bool = False
    draining: bool = False
    inbox: Inbox = field(init=False)

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.loop, self.accept)
        self.recorder = metrics.recorder(self.batcher.name, "inprocess")

    def __len__(self) -> int:
        return len(self.waiters)

    def add(self, item: Any) -> asyncio.Future[Any]:
        """Queue an item from the home loop itself; refusals raise here."""
        if self.stopped:
            raise BatcherStoppedError("the batcher is stopped")
        if len(self.waiters) >= self.limits.max_queue_size:
            raise QueueFullError(f"{len(self.waiters)} items already waiting (max_queue_size)")
        fut = self.loop.create_future()
        self.items.append(item)
        self.waiters.append(fut)
        self.times.append(self.loop.time())
        self._maybe_dispatch()
        return fut

    def accept(self, new_items: list[Any], new_waiters: list[Waiter]) -> None:
        """Queue items handed over from other loops or threads; refusals go to their waiters.

        A caller that gave up meanwhile is dropped when its batch is formed (``dispatch``).
        """
        items, waiters, times = self.items, self.waiters, self.times
        now = self.loop.time()
        if not self.stopped and len(waiters) + len(new_waiters) <= self.limits.max_queue_size:
            items.extend(new_items)  # the common case: room for the whole burst
            waiters.extend(new_waiters)
            times.extend([now] * len(new_waiters))
            self._maybe_dispatch()
            return
        refused: list[Waiter] = []
        errors: list[Any] = []
        for item, waiter in zip(new_items, new_waiters, strict=True):
            if self.stopped:
                refused.append(waiter)
                errors.append(Failed(BatcherStoppedError("the batcher is stopped")))
                continue
            if len(waiters) >= self.limits.max_queue_size:
                self._maybe_dispatch()  # batches that can start make room first
                if len(waiters) >= self.limits.max_queue_size:
                    refused.append(waiter)
                    errors.append(Failed(QueueFullError(
                        f"{len(waiters)} items already waiting (max_queue_size)")))
                    continue
            items.append(item)
            waiters.append(waiter)
            times.append(now)
        if refused:
            settle_results(self.loop, refused, errors)
        self._maybe_dispatch()

    def _maybe_dispatch(self) -> None:
        # With every slot busy there is no timer: the batch that finishes dispatches.
        waiting = len(self.waiters)
        if (
            waiting
            and len(self.running) < self.limits.max_concurrent_batches
            and (waiting >= self.limits.max_batch_size or self.timer is None)
        ):
            self.dispatch()

    def dispatch(self) -> None:
        """Start every batch that is due and has a free slot, then re-arm the timer."""
        limits, items, waiters, times = self.limits, self.items, self.waiters, self.times
        size = limits.max_batch_size
        while waiters and len(self.running) < limits.max_concurrent_batches:
            full = len(waiters) >= size
            due = times[0] + limits.max_wait <= self.loop.time()
            if not (full or due or self.draining):
                break
            oldest = times[0]
            batch_items: list[Any] = []
            batch_waiters: list[Waiter] = []
            while waiters and len(batch_items) < size:
                item, waiter = items.popleft(), waiters.popleft()
                times.popleft()
                if not waiter.done():
                    batch_items.append(item)
                    batch_waiters.append(waiter)
            if batch_items:
                task = self.loop.create_task(self.run(batch_items, batch_waiters, oldest))
                self.running.add(task)
                self.recorder.set_queue_depth(len(waiters))
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if waiters and len(self.running) < limits.max_concurrent_batches:
            self.timer = self.loop.call_at(times[0] + limits.max_wait, self.on_timer)

    def on_timer(self) -> None:
        self.timer = None
        self.dispatch()

    async def run(self, items: list[Any], waiters: list[Waiter], oldest: float) -> None:
        recorder = self.recorder
        waited = self.loop.time() - oldest

        def observe(size: int, ran: float, raised: bool) -> None:
            recorder.observe_batch(size, waited, ran)
            if raised:
                recorder.observe_error(size)

        try:
            results = await call_split(
                self.batcher.invoke, items, split=self.limits.split_on_error, observe=observe
            )
        except asyncio.CancelledError:
            stopped = BatcherStoppedError("the batcher was stopped during this batch")
            fail_all(self.loop, waiters, stopped)
        except Exception as exc:  # a bug of ours: never leave callers hanging
            fail_all(self.loop, waiters, exc)
        else:
            settle_results(self.loop, waiters, results)
        finally:
            self.running.discard(asyncio.current_task())  # type: ignore[arg-type]
            if not self.loop.is_closed():
                self.dispatch()

    async def stop(self, drain: bool) -> None:
        self.inbox.drain()  # items handed over before the stop are still served (or failed)
        self.stopped = True
        if drain:
            self.draining = True
            self.dispatch()
        else:
            self.abort()
        while self.running:
            await asyncio.wait(list(self.running))
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def abort(self) -> None:
        """Fail every waiting caller and cancel running batches (their callers fail too)."""
        self.stopped = True
        self.inbox.drain()
        error = BatcherStoppedError("the batcher was stopped before this item ran")
        fail_all(self.loop, list(self.waiters), error)
        self.items.clear()
        self.waiters.clear()
        self.times.clear()
        for task in self.running:
            task.cancel()


class InProcessBatcher(BaseBatcher):
    """Coalesce concurrent calls into calls of ``func(items) -> results`` (sync or async).

    Options left as ``None`` come from :mod:`batch_requests.dynamic.conf` on first use.
    A sync ``func`` runs in the home loop's default thread pool unless ``offload_sync=False``,
    so a slow batch never stalls the loop. ``name`` labels the metrics (default: the function's
    dotted name).
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
        split_on_error: bool | None = None,
        name: str | None = None,
    ) -> None:
        self.func = func
        self.name = name or _function_name(func)
        self._passed = (max_batch_size, max_wait, max_concurrent_batches, max_queue_size,
                        split_on_error)
        self._timeout = timeout
        self._is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004
        )
        self._offload = offload_sync
        self._limits: Limits | None = None
        self._home: _LoopQueue | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def limits(self) -> Limits:
        if self._limits is None:
            size, wait, concurrent, queue, split = self._passed
            limits = Limits(
                max_batch_size=conf.get("BATCH_SIZE", size),
                max_wait=conf.get("BATCH_TIME", wait),
                max_concurrent_batches=conf.get("MAX_CONCURRENT_BATCHES", concurrent),
                max_queue_size=conf.get("MAX_QUEUE_SIZE", queue),
                timeout=self._timeout,
                split_on_error=conf.get("SPLIT_ON_ERROR", split),
            )
            if limits.max_batch_size < 1 or limits.max_concurrent_batches < 1:
                raise ValueError("max_batch_size and max_concurrent_batches must be at least 1")
            if limits.max_wait < 0:
                raise ValueError("max_wait must not be negative")
            self._limits = limits
        return self._limits

    def _queue(self) -> _LoopQueue:
        """The queue on the home loop; a new one after a fork or a loop shutdown."""
        return loop_thread.home_object(
            self, lambda loop: _LoopQueue(self, loop, self.limits, stopped=self._stopped))

    async def invoke(self, items: list[Any]) -> Any:
        if self._is_async:
            return await self.func(items)
        if self._offload:
            return await asyncio.get_running_loop().run_in_executor(None, self.func, items)
        return self.func(items)

    async def acall(self, item: Any) -> Any:
        if self._stopped:
            raise BatcherStoppedError("the batcher is stopped")
        home = self._home
        if home is None or home.loop is not loop_thread.current_loop():
            home = self._queue()
        here = asyncio.get_running_loop()
        if here is home.loop:
            fut = home.add(item)
        else:
            fut = here.create_future()
            home.inbox.put(item, fut)
        timeout = self._timeout
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError as exc:
            raise BatchTimeoutError(f"no result within {timeout} s") from exc

    def call(self, item: Any, timeout: float | None = None) -> Any:
        """Blocking form of :meth:`acall`, for threads without a running event loop."""
        check_blocking_call(self._stopped)
        if timeout is None:
            timeout = self._timeout
        waiter: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue().inbox.put(item, waiter)
        try:
            return waiter.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            waiter.cancel()  # left out of its batch if it has not started
            raise BatchTimeoutError(f"no result within {timeout} s") from exc

    async def astop(self, drain: bool = True) -> None:
        self._stopped = True
        home = self._home
        if home is None or home.loop.is_closed():
            return
        if home.loop is asyncio.get_running_loop():
            await home.stop(drain)
        else:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(home.stop(drain), home.loop))

    def stop(self, drain: bool = True) -> None:
        """Blocking form of :meth:`astop`."""
        if has_running_loop():
            raise RuntimeError("stop() blocks; inside an event loop use 'await batcher.astop()'")
        self._stopped = True
        home = self._home
        if home is None or home.loop.is_closed() or not home.loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(home.stop(drain), home.loop).result()

    @property
    def pending(self) -> int:
        """Items waiting for a batch (for metrics and tests)."""
        home = self._home
        return 0 if home is None else len(home) + len(home.inbox)


def _function_name(func: Any) -> str:
    module = getattr(func, "__module__", None) or type(func).__module__
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{qualname}"
