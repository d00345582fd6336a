"""Executors, chosen by dotted path in ``BATCH_REQUESTS["CONCURRENT_EXECUTOR"]``.

This module holds the public names that users' settings already name
(``batch_requests.concurrent.executor.ThreadBasedExecutor`` / ``ProcessBasedExecutor``), the
async executor, and the lookup of the configured executor.
"""

from __future__ import annotations

import threading

from django.utils.module_loading import import_string

from batch_requests.concurrent.aio import AsyncExecutor
from batch_requests.concurrent.base import BaseExecutor, SequentialExecutor, waves
from batch_requests.concurrent.processes import ProcessBasedExecutor
from batch_requests.concurrent.threads import ThreadBasedExecutor
from batch_requests.conf import batch_settings

__all__ = [
    "AsyncExecutor",
    "BaseExecutor",
    "ProcessBasedExecutor",
    "SequentialExecutor",
    "ThreadBasedExecutor",
    "get_executor",
    "reset_executors",
    "waves",
]

_sequential = SequentialExecutor(1)
_executors: dict[tuple[str, int], BaseExecutor] = {}
_executors_lock = threading.Lock()


def get_executor() -> BaseExecutor:
    """The executor for the current settings: one shared instance per path and size."""
    if not batch_settings.EXECUTE_PARALLEL:
        return _sequential
    key = (batch_settings.CONCURRENT_EXECUTOR, batch_settings.NUM_WORKERS)
    executor = _executors.get(key)
    if executor is None:
        with _executors_lock:
            executor = _executors.get(key)
            if executor is None:
                executor = import_string(key[0])(key[1])
                _executors[key] = executor
    return executor


def reset_executors(keep_current: bool = False) -> None:
    """Shut pools down; with ``keep_current``, all but the one the settings now select."""
    current = (batch_settings.CONCURRENT_EXECUTOR, batch_settings.NUM_WORKERS)
    with _executors_lock:
        dropped = [key for key in _executors if not (keep_current and key == current)]
        executors = [_executors.pop(key) for key in dropped]
    for executor in executors:
        executor.shutdown()
