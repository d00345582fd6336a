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
    "assign_executor",
    "get_executor",
    "reset_executors",
    "waves",
]

_sequential = SequentialExecutor(1)
_executors: dict[tuple[str, int], BaseExecutor] = {}
_executors_lock = threading.Lock()
# An executor chosen in code (``br_settings.executor = ...``, the 2015 app's way), which
# takes the place of the settings' choice; None: the settings choose.
_assigned: BaseExecutor | None = None


def get_executor() -> BaseExecutor:
    """The executor the batch view uses: one assigned with ``assign_executor``, else
    ``configured_executor()``."""
    assigned = _assigned
    return configured_executor() if assigned is None else assigned


def assign_executor(executor: BaseExecutor | None) -> None:
    """Make the batch view run every batch on ``executor`` (what the 2015 app's
    ``br_settings.executor = ThreadBasedExecutor(10)`` did); None goes back to the settings.

    Assigning the settings' own executor (what ``br_settings.executor`` read before anything
    was assigned) also goes back to the settings, so a test that saves and restores
    ``br_settings.executor`` leaves no assignment behind. The caller owns an assigned
    executor: it is never shut down here.
    """
    global _assigned
    if executor is not None and not isinstance(executor, BaseExecutor):
        raise TypeError(f"The executor must be a batch_requests.concurrent.executor."
                        f"BaseExecutor, such as ThreadBasedExecutor(10), not "
                        f"{type(executor).__name__}.")
    _assigned = None if _is_configured(executor) else executor


def _is_configured(executor: BaseExecutor | None) -> bool:
    """Whether ``executor`` is the one the settings select (none is created to find out)."""
    if not batch_settings.EXECUTE_PARALLEL:
        return executor is _sequential
    key = (batch_settings.CONCURRENT_EXECUTOR, batch_settings.NUM_WORKERS)
    return executor is not None and _executors.get(key) is executor


def configured_executor() -> BaseExecutor:
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
