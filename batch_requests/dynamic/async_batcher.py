"""``AsyncBatcher``: async-batcher's class, on this package's in-process engine.

Users of async-batcher switch by changing one import::

    from batch_requests.dynamic import AsyncBatcher

and keep their subclasses: ``process_batch(self, batch)`` (a coroutine, or a plain method that
runs in ``executor``), the constructor's keywords, ``await batcher.process(item)``,
``await batcher.is_running()`` and ``await batcher.stop(force=..., timeout=...)``.

Underneath, each ``AsyncBatcher`` holds an :class:`~.inprocess.InProcessBatcher` (exposed as
:attr:`AsyncBatcher.engine`) whose batch function calls ``self.process_batch(batch=items)``.
What that brings, and how it differs from async-batcher 0.2.2, is in
``docs/dynamic-ready-made.md``; in short: callers on every event loop and thread of the process
share batches, ``process_batch`` runs on the engine's own loop thread, and a batch whose
``process_batch`` raises is split and retried so only the failing items get the error.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import inspect
import logging
import sys
import warnings
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import BatcherStoppedError, QueueFullError
from .inprocess import InProcessBatcher

if TYPE_CHECKING:
    from concurrent.futures import Executor

__all__ = ["AsyncBatcher", "QueueFullException"]

In = TypeVar("In")
Out = TypeVar("Out")

#: async-batcher's name for "too many items are waiting". It *is* :class:`QueueFullError`, so
#: ``except QueueFullException`` and ``except QueueFullError`` catch the same thing.
QueueFullException = QueueFullError

#: What "no limit" becomes for the engine, which counts with plain integers.
UNLIMITED = sys.maxsize

_DEPRECATED_NO_EFFECT = {
    "sleep_time": "The 'sleep_time' argument has no effect and is ignored: a caller waits on "
    "its own future until its result is ready.",
    "buffering_time": "The 'buffering_time' argument has no effect and is ignored: a batch "
    "leaves when it is full or when its oldest item has waited 'max_queue_time'.",
}


class AsyncBatcher(Generic[In, Out], abc.ABC):
    """Batch items given to :meth:`process` into calls of :meth:`process_batch`.

    Args:
        max_batch_size: most items per batch; a negative value (default ``-1``) means no limit.
            ``0``, ``1`` and ``None`` raise ``ValueError``, as in async-batcher.
        max_queue_time: seconds the oldest waiting item may wait for a batch to fill before the
            batch leaves anyway (default 0.01; a negative value counts as 0).
        concurrency: most batches running at once (default 1); ``0`` or less means no limit.
            ``None`` raises ``ValueError``.
        max_queue_size: most items waiting for a batch; more raise :data:`QueueFullException`
            to their caller. ``0`` or less (default ``-1``) or ``None`` means no limit.
        executor: where a plain (non-async) ``process_batch`` runs; ``None`` (default) is the
            default thread pool of the engine's event loop.
        split_on_error: when ``process_batch`` raises for a batch of several items, retry its
            halves so only the items that fail alone get the error (default: the
            ``SPLIT_ON_ERROR`` option, on). ``False`` gives every caller of the batch the
            exception, as async-batcher does.
        sleep_time, buffering_time, batch_size: async-batcher's deprecated arguments, accepted
            with the same warnings; ``batch_size`` is used as ``max_batch_size``.
    """

    logger = logging.getLogger(__name__)

    def __init__(
        self,
        *,
        max_batch_size: int = -1,
        max_queue_time: float = 0.01,
        concurrency: int = 1,
        max_queue_size: int = -1,
        executor: Executor | None = None,
        split_on_error: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if max_batch_size is None or 0 <= max_batch_size <= 1:
            raise ValueError("Valid max_batch_size value is greater than 1 or -1 for infinite")
        if concurrency is None:
            raise ValueError("Valid concurrency value is an integer; 0 or less for infinite")
        for name, message in _DEPRECATED_NO_EFFECT.items():
            if name in kwargs:
                del kwargs[name]
                warnings.warn(message, stacklevel=2)
        if "batch_size" in kwargs:
            warnings.warn(
                "The 'batch_size' argument is deprecated; use 'max_batch_size' instead.",
                stacklevel=2,
            )
            max_batch_size = kwargs.pop("batch_size")
        if kwargs:
            warnings.warn(
                f"{type(self).__name__} ignores unknown argument(s): {', '.join(sorted(kwargs))}",
                stacklevel=2,
            )
        self.max_batch_size = max_batch_size
        self.max_queue_time = max_queue_time
        self.concurrency = concurrency
        self.max_queue_size = max_queue_size
        self.executor = executor
        self._started = False
        self._stopped = False
        cls = type(self)
        self.engine = InProcessBatcher(
            self._run_batch,
            max_batch_size=max_batch_size if max_batch_size > 0 else UNLIMITED,
            max_wait=max(float(max_queue_time), 0.0),
            max_concurrent_batches=concurrency if concurrency > 0 else UNLIMITED,
            max_queue_size=(
                max_queue_size if max_queue_size is not None and max_queue_size > 0
                else UNLIMITED
            ),
            timeout=None,
            split_on_error=split_on_error,
            name=f"{cls.__module__}.{cls.__qualname__}",
        )

    @abc.abstractmethod
    def process_batch(self, batch: list[In]) -> list[Out] | None | Awaitable[list[Out] | None]:
        """Return one result per item of ``batch``, in order (or ``None``: every result is None).

        Override it as ``async def`` (awaited on the engine's event loop) or as a plain method
        (run in ``executor``). It is always called with the keyword ``batch=``. A result that is
        an exception instance fails only its own caller.
        """

    async def _run_batch(self, items: list[In]) -> list[Out | None]:
        """The engine's batch function: one call of ``process_batch`` for one batch."""
        process_batch = self.process_batch
        if inspect.iscoroutinefunction(process_batch):
            results = await process_batch(batch=items)
        else:
            loop = asyncio.get_running_loop()
            call = functools.partial(process_batch, batch=items)
            results = await loop.run_in_executor(self.executor, call)
            if inspect.isawaitable(results):
                results = await results
        if results is None:
            return [None] * len(items)
        return results

    async def process(self, item: In) -> Out:
        """Queue ``item`` for a batch and return its own result.

        Raises:
            RuntimeError: the batcher is stopped (a :class:`BatcherStoppedError`).
            QueueFullException: ``max_queue_size`` items are already waiting.
        """
        if self._stopped:
            raise BatcherStoppedError("Batcher is stopped")
        self._started = True
        return await self.engine.acall(item)

    async def is_running(self) -> bool:
        """True from the first :meth:`process` call until :meth:`stop`."""
        return self._started and not self._stopped

    async def stop(self, force: bool = False, timeout: float | None = None) -> None:
        """Refuse new items, then finish the queued ones, or with ``force=True`` fail them.

        ``force=False`` waits until every queued item has been processed and its caller
        answered (at most ``timeout`` seconds, then ``TimeoutError``; the batches left keep
        running). ``force=True`` fails waiting callers and cancels running batches: their
        callers get :class:`BatcherStoppedError`. Stopping twice is harmless.
        """
        self._stopped = True
        stopping = self.engine.astop(drain=not force)
        if timeout is None:
            await stopping
        else:
            await asyncio.wait_for(stopping, timeout)
