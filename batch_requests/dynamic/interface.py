"""The one calling convention every backend offers, so views never change with the backend.

A backend implements two coroutines, ``acall(item)`` and ``astop(drain)``. This base class derives
the rest: ``call()`` and ``stop()`` for code without a running event loop (sync views), which run
the coroutine on the shared background loop, and ``__call__``, which picks the right one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from abc import ABC, abstractmethod
from typing import Any

from . import loop_thread
from .errors import BatcherStoppedError, BatchTimeoutError


def has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def check_blocking_call(stopped: bool) -> None:
    """What a backend's blocking ``call()`` checks before it waits: not inside an event loop,
    not on the batcher's own loop thread (it would wait for itself), not stopped."""
    if has_running_loop():
        raise RuntimeError("call() blocks; inside an event loop use 'await batcher.acall()'")
    if loop_thread.in_loop_thread():
        raise RuntimeError("blocking call from the batcher's own loop thread; use 'await'")
    if stopped:
        raise BatcherStoppedError("the batcher is stopped")


class BaseBatcher(ABC):
    """Submit one item, get its result: ``await b(item)`` in async code, ``b(item)`` in sync."""

    @abstractmethod
    async def acall(self, item: Any) -> Any:
        """Queue ``item`` for the next batch and wait for its own result."""

    @abstractmethod
    async def astop(self, drain: bool = True) -> None:
        """Refuse new items; finish (``drain=True``) or fail (``drain=False``) queued ones."""

    def call(self, item: Any, timeout: float | None = None) -> Any:
        """Blocking form of :meth:`acall`, for threads without a running event loop."""
        if has_running_loop():
            raise RuntimeError("call() blocks; inside an event loop use 'await batcher.acall()'")
        try:
            return loop_thread.run_sync(self.acall(item), timeout)
        except concurrent.futures.TimeoutError as exc:
            raise BatchTimeoutError(f"no result within {timeout} s") from exc

    def stop(self, drain: bool = True) -> None:
        """Blocking form of :meth:`astop`."""
        if has_running_loop():
            raise RuntimeError("stop() blocks; inside an event loop use 'await batcher.astop()'")
        loop_thread.run_sync(self.astop(drain))

    def __call__(self, item: Any) -> Any:
        """An awaitable when an event loop runs in this thread, else the result itself."""
        if has_running_loop():
            return self.acall(item)
        return self.call(item)
