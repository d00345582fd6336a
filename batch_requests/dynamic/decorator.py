"""``@batched``: a batch function that callers invoke one item at a time.

The backend (in-process or Redis) is chosen from settings at first use and chosen again after
``BATCH_REQUESTS`` changes (``override_settings``), so the same decorated function serves a
laptop with no Redis and a fleet of web processes with shared workers, and views never change.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

from . import conf
from .inprocess import BatchFunction, InProcessBatcher
from .interface import BaseBatcher

_instances: weakref.WeakSet[BatchedFunction] = weakref.WeakSet()
_receiver_connected = False


def function_name(func: Callable[..., Any]) -> str:
    """The stream name a function is served under unless ``name=`` says otherwise."""
    return f"{func.__module__}.{func.__qualname__}"


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "BATCH_REQUESTS":
        for instance in list(_instances):
            instance._impl = None


def _connect_receiver() -> None:
    global _receiver_connected
    if _receiver_connected:
        return
    try:
        from django.test.signals import setting_changed
    except ImportError:
        return
    setting_changed.connect(_on_setting_changed, dispatch_uid="batch_requests.dynamic.batched")
    _receiver_connected = True


class BatchedFunction(BaseBatcher):
    """A batch function wrapped for single items; ``.func`` is the original."""

    def __init__(
        self,
        func: BatchFunction,
        *,
        backend: str | None = None,
        name: str | None = None,
        max_batch_size: int | None = None,
        max_wait: float | None = None,
        max_concurrent_batches: int | None = None,
        max_queue_size: int | None = None,
        timeout: float | None = None,
        redis_url: str | None = None,
        split_on_error: bool | None = None,
    ) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.name = name or function_name(func)
        self._backend = backend
        self._inprocess = {
            "max_batch_size": max_batch_size,
            "max_wait": max_wait,
            "max_concurrent_batches": max_concurrent_batches,
            "max_queue_size": max_queue_size,
            "timeout": timeout,
            "split_on_error": split_on_error,
            "name": self.name,
        }
        self._redis = {"timeout": timeout, "redis_url": redis_url, "pack_size": max_batch_size}
        self._impl: BaseBatcher | None = None
        _instances.add(self)

    @property
    def backend(self) -> BaseBatcher:
        impl = self._impl
        if impl is None:
            _connect_receiver()
            kind = conf.get("BACKEND", self._backend)
            if kind == "inprocess":
                impl = InProcessBatcher(self.func, **self._inprocess)
            elif kind == "redis":
                from .redis_client import RedisBatcher

                impl = RedisBatcher(self.name, **self._redis)
            else:
                raise ValueError(f"unknown dynamic batching backend {kind!r}")
            self._impl = impl
        return impl

    async def acall(self, item: Any) -> Any:
        return await self.backend.acall(item)

    async def astop(self, drain: bool = True) -> None:
        impl, self._impl = self._impl, None
        if impl is not None:
            await impl.astop(drain)


def batched(
    func: BatchFunction | None = None, **options: Any
) -> BatchedFunction | Callable[[BatchFunction], BatchedFunction]:
    """Decorate ``f(items) -> results``; ``@batched`` or ``@batched(max_batch_size=32, ...)``."""
    if func is not None:
        return BatchedFunction(func, **options)
    return functools.partial(BatchedFunction, **options)
